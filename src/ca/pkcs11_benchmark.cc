// X.509-SVID issuance with the CA key in a PKCS#11 token (SoftHSM2), beside the token's raw
// sign rate in the same run: C_SignInit + C_Sign of a 32-byte digest on a session of the
// thread's own, the physical limit of any issuer over that token. On one thread and on two.
#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include <cstring>
#include <memory>
#include <string>

#include "benchmark/benchmark.h"
#include "core/spiffe_id.h"
#include "core/x509_issuer.h"
#include "crypto/pkcs11_signer.h"
#include "crypto/software_signer.h"
#include "crypto/testing/softhsm.h"

namespace tw {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

struct Fixture {
  Fixture() {
    auto made = crypto::testing::NewSoftHsmToken();
    if (!made.ok()) Die(std::string(made.status().message()));
    token = *std::move(made);
    auto uri = crypto::GeneratePkcs11Key(token.uri, "ca", crypto::KeyType::kEcP256);
    if (!uri.ok()) Die(std::string(uri.status().message()));
    auto signer = crypto::Pkcs11Signer::Open(*uri);
    if (!signer.ok()) Die(std::string(signer.status().message()));
    ca_key = *std::move(signer);
    auto ca = core::X509Issuer::SelfSignedCa(
        *ca_key, {.trust_domain = *core::TrustDomain::FromName("trustwarden"),
                  .not_before = kNow - absl::Minutes(1),
                  .not_after = kNow + absl::Hours(24),
                  .path_len = std::nullopt});
    if (!ca.ok()) Die(std::string(ca.status().message()));
    auto made_issuer = core::X509Issuer::Create(ca_key, {*ca});
    if (!made_issuer.ok()) Die(std::string(made_issuer.status().message()));
    issuer = std::make_unique<core::X509Issuer>(*std::move(made_issuer));
    // The raw path: the same module loaded once more, its own sessions.
    module = p11_kit_module_load(token.uri.module_path.c_str(), 0);
    if (module == nullptr || p11_kit_module_initialize(module) != CKR_OK) Die("module");
  }
  static core::LeafRequest MakeRequest() {
    core::LeafRequest r{
        .spiffe_id = *core::SpiffeId::FromString(
            "spiffe://trustwarden/acme-corp/finance-team/payment-processor/inst-x7k2mq4pad3bxxxx"),
        .not_before = kNow - absl::Seconds(30),
        .not_after = kNow + absl::Minutes(30),
        .attributes = {},
        .dns_names = {},
        .ip_addresses = {}};
    r.attributes.scopes = {*core::Scope::Parse("read:transactions")};
    r.attributes.trust_level = core::TrustLevel::kHigh;
    r.attributes.policy_version = 3;
    r.attributes.principal = "platform-team";
    return r;
  }
  [[noreturn]] static void Die(const std::string& why) {
    std::fprintf(stderr, "pkcs11_benchmark: %s\n", why.c_str());
    std::abort();
  }

  // A logged-in session of the calling thread, and the CA key's handle in it.
  std::pair<CK_SESSION_HANDLE, CK_OBJECT_HANDLE> Session() const {
    CK_ULONG count = 64;
    CK_SLOT_ID slots[64];
    module->C_GetSlotList(CK_TRUE, slots, &count);
    for (CK_ULONG i = 0; i < count; ++i) {
      CK_TOKEN_INFO info;
      module->C_GetTokenInfo(slots[i], &info);
      if (std::memcmp(info.label, token.uri.token.data(), token.uri.token.size()) != 0) continue;
      CK_SESSION_HANDLE s;
      module->C_OpenSession(slots[i], CKF_SERIAL_SESSION, nullptr, nullptr, &s);
      std::string pin = token.pin;
      module->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(pin.data()), pin.size());
      CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
      char label[] = "ca";
      CK_ATTRIBUTE match[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, label, 2}};
      CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
      CK_ULONG found = 0;
      module->C_FindObjectsInit(s, match, 2);
      module->C_FindObjects(s, &key, 1, &found);
      module->C_FindObjectsFinal(s);
      if (found == 1) return {s, key};
    }
    Die("no session on the token");
  }

  crypto::testing::SoftHsmToken token;
  std::shared_ptr<crypto::Pkcs11Signer> ca_key;
  std::unique_ptr<core::X509Issuer> issuer;
  std::unique_ptr<crypto::SoftwareSigner> agent_key =
      *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  core::LeafRequest request = MakeRequest();
  CK_FUNCTION_LIST* module = nullptr;
};

Fixture& F() {
  static Fixture* f = new Fixture();
  return *f;
}

void BM_RawSoftHsmSign(benchmark::State& state) {
  const Fixture& f = F();
  auto [session, key] = f.Session();
  CK_MECHANISM mechanism{CKM_ECDSA, nullptr, 0};
  unsigned char digest[32] = {1, 2, 3}, signature[64];
  for (auto _ : state) {
    CK_ULONG size = sizeof(signature);
    if (f.module->C_SignInit(session, &mechanism, key) != CKR_OK ||
        f.module->C_Sign(session, digest, sizeof(digest), signature, &size) != CKR_OK) {
      state.SkipWithError("C_Sign failed");
      break;
    }
    benchmark::DoNotOptimize(signature);
  }
  f.module->C_CloseSession(session);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawSoftHsmSign)->Threads(1)->Threads(2)->UseRealTime();

void BM_Pkcs11SignerSign(benchmark::State& state) {
  const Fixture& f = F();
  const base::Bytes data(200, 7);
  for (auto _ : state) {
    auto s = f.ca_key->Sign(data);
    if (!s.ok()) {
      state.SkipWithError("Sign failed");
      break;
    }
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Pkcs11SignerSign)->Threads(1)->Threads(2)->UseRealTime();

void BM_X509SvidIssuePkcs11(benchmark::State& state) {
  const Fixture& f = F();
  for (auto _ : state) {
    auto leaf = f.issuer->IssueLeaf(f.request, f.agent_key->public_key());
    if (!leaf.ok()) {
      state.SkipWithError("IssueLeaf failed");
      break;
    }
    benchmark::DoNotOptimize(leaf);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_X509SvidIssuePkcs11)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace tw

BENCHMARK_MAIN();
