// Issuance, verification and scope-check rates, each beside the raw ECDSA P-256 sign and
// verify rates measured in the same run (scripts/bench prints the ratios).
#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <chrono>
#include <cstdlib>

#include "core/jwt_svid.h"
#include "core/x509_issuer.h"
#include "core/x509_verifier.h"
#include "crypto/ossl_ptr.h"
#include "crypto/software_signer.h"

namespace tw::core {
namespace {

const absl::Time kNow = absl::Now();

struct Fixture {
  std::shared_ptr<crypto::SoftwareSigner> ca_key =
      *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  std::shared_ptr<crypto::SoftwareSigner> jwt_key =
      *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  std::shared_ptr<crypto::SoftwareSigner> agent_key =
      *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  base::Bytes ca_der =
      *X509Issuer::SelfSignedCa(*ca_key, {.trust_domain = *TrustDomain::FromName("trustwarden"),
                                          .not_before = kNow - absl::Minutes(1),
                                          .not_after = kNow + absl::Hours(24),
                                          .path_len = std::nullopt});
  X509Issuer issuer = *X509Issuer::Create(ca_key, {ca_der});
  std::shared_ptr<BundleSet> bundles = MakeBundles();
  LeafRequest request = MakeRequest();
  JwtSvidRequest jwt_request{.subject = request.spiffe_id,
                             .audience = {"spiffe://trustwarden/payments-api"},
                             .issued_at = kNow,
                             .ttl = absl::Minutes(5),
                             .attributes = request.attributes};

  // A verifier that sees every leaf as new (no cache), honouring our attributes.
  X509Verifier UncachedVerifier() const {
    return X509Verifier(bundles, {.clock = &base::Clock::System(),
                                  .revocation_check = {},
                                  .attribute_trust_domains = {issuer.trust_domain()},
                                  .cache_capacity = 0});
  }

  std::shared_ptr<BundleSet> MakeBundles() {
    Bundle b(*TrustDomain::FromName("trustwarden"));
    (void)b.AddX509Authority(ca_der);
    b.AddJwtAuthority(jwt_key->key_id(), jwt_key->public_key());
    auto set = std::make_shared<BundleSet>();
    set->Put(std::move(b));
    return set;
  }
  static LeafRequest MakeRequest() {
    LeafRequest r{
        .spiffe_id = *SpiffeId::FromString(
            "spiffe://trustwarden/acme-corp/finance-team/payment-processor/inst-x7k2mq4p9d3bxxxx"),
        .not_before = kNow - absl::Seconds(30),
        .not_after = kNow + absl::Minutes(30),
        .attributes = {},
        .dns_names = {},
        .ip_addresses = {}};
    r.attributes.scopes = {*Scope::Parse("read:transactions"), *Scope::Parse("write:ledger")};
    r.attributes.trust_level = TrustLevel::kHigh;
    r.attributes.policy_version = 3;
    r.attributes.principal = "platform-team";
    return r;
  }
};

Fixture& F() {
  static Fixture* f = new Fixture();
  return *f;
}

// The physical floor: one ECDSA P-256 signature, or verification, over a 32-byte digest
// with the OpenSSL context reused.
class RawEcdsa {
 public:
  RawEcdsa()
      : key_(EVP_EC_gen("P-256")),
        sign_(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr)),
        verify_(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr)) {
    EVP_PKEY_sign_init(sign_.get());
    EVP_PKEY_verify_init(verify_.get());
    sig_len_ = sizeof sig_;
    EVP_PKEY_sign(sign_.get(), sig_, &sig_len_, digest_, sizeof digest_);
  }
  void Sign() {
    unsigned char sig[80];
    size_t len = sizeof sig;
    EVP_PKEY_sign(sign_.get(), sig, &len, digest_, sizeof digest_);
    benchmark::DoNotOptimize(sig);
  }
  void Verify() {
    benchmark::DoNotOptimize(
        EVP_PKEY_verify(verify_.get(), sig_, sig_len_, digest_, sizeof digest_));
  }

 private:
  unsigned char digest_[32] = {1, 2, 3};
  unsigned char sig_[80];
  size_t sig_len_;
  crypto::UniquePtr<EVP_PKEY> key_;
  crypto::UniquePtr<EVP_PKEY_CTX> sign_, verify_;
};

RawEcdsa& Raw() {
  static RawEcdsa* raw = new RawEcdsa();
  return *raw;
}

// Times `subject` in blocks alternating with blocks of `floor`, so both see the same
// machine at the same moment; reports the subject's rate and "vs_floor", its rate as a
// fraction of the floor's.
template <typename Floor, typename Subject>
void Paired(benchmark::State& state, Floor floor, Subject subject) {
  using Clock = std::chrono::steady_clock;
  constexpr int kBlock = 8;
  std::chrono::duration<double> floor_time{0}, subject_time{0};
  for (auto _ : state) {
    auto t0 = Clock::now();
    for (int i = 0; i < kBlock; ++i) floor();
    auto t1 = Clock::now();
    for (int i = 0; i < kBlock; ++i) subject();
    auto t2 = Clock::now();
    floor_time += t1 - t0;
    subject_time += t2 - t1;
    state.SetIterationTime(std::chrono::duration<double>(t2 - t1).count());
  }
  state.SetItemsProcessed(state.iterations() * kBlock);
  state.counters["vs_floor"] = floor_time.count() / subject_time.count();
}

void BM_RawEcdsaP256Sign(benchmark::State& state) {
  for (auto _ : state) Raw().Sign();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawEcdsaP256Sign);

void BM_RawEcdsaP256Verify(benchmark::State& state) {
  for (auto _ : state) Raw().Verify();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawEcdsaP256Verify);

void BM_X509SvidIssueFromPublicKey(benchmark::State& state) {
  Fixture& f = F();
  const crypto::PublicKey& key = f.agent_key->public_key();
  Paired(
      state, [] { Raw().Sign(); },
      [&] { benchmark::DoNotOptimize(f.issuer.IssueLeaf(f.request, key)); });
}
BENCHMARK(BM_X509SvidIssueFromPublicKey)->UseManualTime();

// Includes validating the subject's SubjectPublicKeyInfo (as received over the wire).
void BM_X509SvidIssueFromSpkiDer(benchmark::State& state) {
  Fixture& f = F();
  const base::Bytes& spki = f.agent_key->public_key_der();
  Paired(
      state, [] { Raw().Sign(); },
      [&] {
        auto key = crypto::PublicKey::FromSpkiDer(spki);
        benchmark::DoNotOptimize(f.issuer.IssueLeaf(f.request, *key));
      });
}
BENCHMARK(BM_X509SvidIssueFromSpkiDer)->UseManualTime();

// A leaf never seen before: parse + path to the cached bundle + SPIFFE rules.
void BM_X509SvidVerifyNew(benchmark::State& state) {
  Fixture& f = F();
  std::vector<base::Bytes> leaves;
  for (int i = 0; i < 64; ++i) {
    leaves.push_back(*f.issuer.IssueLeaf(f.request, f.agent_key->public_key()));
  }
  X509Verifier verifier = f.UncachedVerifier();
  size_t i = 0;
  Paired(
      state, [] { Raw().Verify(); },
      [&] {
        auto r = verifier.Verify({leaves[i++ % leaves.size()]});
        if (!r.ok()) std::abort();
      });
}
BENCHMARK(BM_X509SvidVerifyNew)->UseManualTime();

// A leaf never seen before under an intermediate CA (upstream mode): two signatures.
void BM_X509SvidVerifyNewViaIntermediate(benchmark::State& state) {
  Fixture& f = F();
  std::shared_ptr<const crypto::Signer> key =
      *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  base::Bytes inter = *f.issuer.IssueCa({.trust_domain = f.issuer.trust_domain(),
                                         .not_before = kNow - absl::Minutes(1),
                                         .not_after = kNow + absl::Hours(1),
                                         .path_len = 0},
                                        key->public_key());
  X509Issuer issuer = *X509Issuer::Create(key, {inter, f.ca_der});
  std::vector<base::Bytes> leaves;
  for (int i = 0; i < 64; ++i) {
    leaves.push_back(*issuer.IssueLeaf(f.request, f.agent_key->public_key()));
  }
  X509Verifier verifier = f.UncachedVerifier();
  size_t i = 0;
  Paired(
      state,
      [] {
        Raw().Verify();
        Raw().Verify();
      },
      [&] {
        auto r = verifier.Verify({leaves[i++ % leaves.size()], inter});
        if (!r.ok()) std::abort();
      });
}
BENCHMARK(BM_X509SvidVerifyNewViaIntermediate)->UseManualTime();

// Leaves already verified: the DER-keyed cache, still checking expiry and revocation. A
// gateway sees many agents (256: each thread cycles through them from its own offset); one
// leaf on every thread is the worst case for the shards.
void BM_X509SvidVerifyCached(benchmark::State& state) {
  Fixture& f = F();
  static const std::vector<base::Bytes> leaves = [&f] {
    std::vector<base::Bytes> out;
    for (int i = 0; i < 256; ++i) {
      out.push_back(*f.issuer.IssueLeaf(f.request, f.agent_key->public_key()));
    }
    return out;
  }();
  static X509Verifier verifier(
      f.bundles, {.clock = &base::Clock::System(),
                  .revocation_check = [](const VerifiedX509Svid&) { return absl::OkStatus(); },
                  .attribute_trust_domains = {f.issuer.trust_domain()},
                  .cache_capacity = 65536});
  const size_t distinct = static_cast<size_t>(state.range(0));
  size_t i = static_cast<size_t>(state.thread_index()) * 97;
  for (auto _ : state) {
    std::vector<base::ByteView> chain = {leaves[i++ % distinct]};
    auto r = verifier.Verify(chain);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_X509SvidVerifyCached)->Arg(256)->Arg(1)->ThreadRange(1, 2)->UseRealTime();

void BM_JwtSvidMint(benchmark::State& state) {
  Fixture& f = F();
  Paired(
      state, [] { Raw().Sign(); },
      [&] { benchmark::DoNotOptimize(MintJwtSvid(*f.jwt_key, f.jwt_request)); });
}
BENCHMARK(BM_JwtSvidMint)->UseManualTime();

void BM_JwtSvidValidate(benchmark::State& state) {
  Fixture& f = F();
  std::string token = *MintJwtSvid(*f.jwt_key, f.jwt_request);
  Paired(
      state, [] { Raw().Verify(); },
      [&] {
        auto r = ValidateJwtSvid(token, "spiffe://trustwarden/payments-api", *f.bundles, kNow,
                                 {f.issuer.trust_domain()});
        if (!r.ok()) std::abort();
      });
}
BENCHMARK(BM_JwtSvidValidate)->UseManualTime();

// Is `delete:records` allowed by a typical grant? (parsed scopes, the enforcement hot path)
void BM_ScopeCheck(benchmark::State& state) {
  std::vector<Scope> granted = *ParseScopes(
      {"read:transactions", "write:ledger.*", "read:customers", "write:audit", "read:reports.*"});
  Scope requested = *Scope::Parse("delete:records");
  for (auto _ : state) benchmark::DoNotOptimize(ScopesAllow(granted, requested));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ScopeCheck);

// The same, parsing the requested scope from text first.
void BM_ScopeParseAndCheck(benchmark::State& state) {
  std::vector<Scope> granted = *ParseScopes(
      {"read:transactions", "write:ledger.*", "read:customers", "write:audit", "read:reports.*"});
  for (auto _ : state) {
    auto requested = Scope::Parse("write:ledger.entries");
    benchmark::DoNotOptimize(ScopesAllow(granted, *requested));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ScopeParseAndCheck);

void BM_SpiffeIdParse(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(SpiffeId::FromString(
        "spiffe://trustwarden/acme-corp/finance-team/payment-processor/inst-x7k2mq4p9d3bxxxx"));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SpiffeIdParse);

}  // namespace
}  // namespace tw::core

BENCHMARK_MAIN();
