#include "ca/ca_directory.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/file.h"
#include "base/status_macros.h"
#include "core/certificate.h"
#include "core/csr.h"
#include "core/x509_verifier.h"
#include "crypto/signer_factory.h"

namespace tw::ca {
namespace {

constexpr int64_t kBundleRefreshHintSeconds = 300;

std::string Path(const std::string& dir, absl::string_view name) {
  return absl::StrCat(dir, "/", name);
}

absl::Status Annotate(const absl::Status& s, const std::string& file) {
  return absl::Status(s.code(), absl::StrCat(file, ": ", s.message()));
}

absl::Status RefuseExisting(const std::string& dir) {
  for (const char* name : {"ca.pem", "ca.key.pem"}) {
    if (::access(Path(dir, name).c_str(), F_OK) == 0) {
      return absl::AlreadyExistsError(absl::StrCat(dir, " already holds a CA (", name, ")"));
    }
  }
  return absl::OkStatus();
}

// The bundle and the CA chain; the key files first when the keys are in software. ca.pem
// last: its presence marks a complete directory.
absl::Status WriteDirectory(const std::string& dir, const std::vector<base::ByteView>& ca_chain,
                            const core::Bundle& bundle, const crypto::SoftwareSigner* jwt_key,
                            const crypto::SoftwareSigner* ca_key) {
  TW_RETURN_IF_ERROR(base::MakeDirectory(dir, 0700));
  TW_RETURN_IF_ERROR(base::WriteFile(Path(dir, "bundle.json"), bundle.ToJson()));
  TW_RETURN_IF_ERROR(base::WriteFile(Path(dir, "bundle.pem"), bundle.ToPem()));
  if (jwt_key != nullptr) TW_RETURN_IF_ERROR(jwt_key->WriteFile(Path(dir, "jwt.key.pem")));
  if (ca_key != nullptr) TW_RETURN_IF_ERROR(ca_key->WriteFile(Path(dir, "ca.key.pem")));
  return base::WriteFile(Path(dir, "ca.pem"), core::CertificatesToPem(ca_chain));
}

// A self-signed root over `ca` and the first bundle, publishing it and `jwt`.
absl::Status WriteRoot(const std::string& dir, const CaInitOptions& options,
                       const crypto::Signer& ca, const crypto::Signer& jwt,
                       const base::Clock& clock, const crypto::SoftwareSigner* jwt_file,
                       const crypto::SoftwareSigner* ca_file) {
  absl::Time now = clock.Now();
  TW_ASSIGN_OR_RETURN(
      base::Bytes ca_der,
      core::X509Issuer::SelfSignedCa(ca, core::CaRequest{.trust_domain = options.trust_domain,
                                                         .not_before = now - kBackdate,
                                                         .not_after = now + options.ttl,
                                                         .path_len = std::nullopt}));
  core::Bundle bundle(options.trust_domain);
  TW_RETURN_IF_ERROR(bundle.AddX509Authority(ca_der));
  bundle.AddJwtAuthority(jwt.key_id(), jwt.public_key());
  bundle.set_sequence(1);
  bundle.set_refresh_hint_seconds(kBundleRefreshHintSeconds);
  return WriteDirectory(dir, {ca_der}, bundle, jwt_file, ca_file);
}

}  // namespace

absl::Status CaDirectory::Init(const std::string& dir, const CaInitOptions& options,
                               const base::Clock& clock) {
  TW_RETURN_IF_ERROR(RefuseExisting(dir));
  TW_ASSIGN_OR_RETURN(std::unique_ptr<crypto::SoftwareSigner> ca_key,
                      crypto::SoftwareSigner::Generate(options.key_type));
  TW_ASSIGN_OR_RETURN(std::unique_ptr<crypto::SoftwareSigner> jwt_key,
                      crypto::SoftwareSigner::Generate(options.key_type));
  return WriteRoot(dir, options, *ca_key, *jwt_key, clock, jwt_key.get(), ca_key.get());
}

absl::Status CaDirectory::InitWithSigners(const std::string& dir, const CaInitOptions& options,
                                          const CaSigners& signers, const base::Clock& clock) {
  TW_RETURN_IF_ERROR(RefuseExisting(dir));
  return WriteRoot(dir, options, *signers.ca, *signers.jwt, clock, nullptr, nullptr);
}

absl::StatusOr<core::X509Issuer> UpstreamIssuer(std::shared_ptr<const crypto::Signer> ca,
                                                const std::vector<base::Bytes>& chain,
                                                const base::Clock& clock) {
  if (chain.size() < 2) {
    return absl::InvalidArgumentError(
        "the upstream chain holds the intermediate and the certificates up to its root: at "
        "least two");
  }
  TW_ASSIGN_OR_RETURN(core::Certificate root, core::Certificate::Parse(chain.back()));
  if (!root.is_ca() || !root.SelfIssued()) {
    return absl::InvalidArgumentError("the upstream chain does not end with a self-signed root");
  }
  auto issuer = core::X509Issuer::Create(std::move(ca), chain);
  if (!issuer.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the upstream chain is not for this CA key: ", issuer.status().message()));
  }
  core::Bundle roots(issuer->trust_domain());
  TW_RETURN_IF_ERROR(roots.AddX509Authority(chain.back()));
  // A leaf issued under the chain must verify against the root alone.
  const absl::Time now = clock.Now();
  TW_ASSIGN_OR_RETURN(core::SpiffeId probe, core::SpiffeId::FromString(absl::StrCat(
                                                "spiffe://", issuer->trust_domain().name(),
                                                "/trustwarden/upstream-check")));
  TW_ASSIGN_OR_RETURN(auto probe_key, crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256));
  TW_ASSIGN_OR_RETURN(base::Bytes leaf, issuer->IssueLeaf({.spiffe_id = probe,
                                                           .not_before = now - kBackdate,
                                                           .not_after = now + absl::Minutes(1)},
                                                          probe_key->public_key()));
  auto bundles = std::make_shared<core::BundleSet>();
  bundles->Put(std::move(roots));
  core::X509Verifier verifier(bundles, {.clock = &clock});
  std::vector<base::ByteView> presented = {leaf};
  for (base::ByteView c : issuer->served_chain()) presented.push_back(c);
  if (auto verified = verifier.Verify(presented); !verified.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "an SVID issued under the upstream chain does not verify: ", verified.status().message()));
  }
  return issuer;
}

absl::Status CaDirectory::InitUpstream(const std::string& dir, absl::string_view chain_pem,
                                       const CaSigners& signers, const base::Clock& clock) {
  TW_RETURN_IF_ERROR(RefuseExisting(dir));
  std::vector<base::Bytes> chain = core::DecodePemBlocks(chain_pem, "CERTIFICATE");
  TW_ASSIGN_OR_RETURN(core::X509Issuer issuer, UpstreamIssuer(signers.ca, chain, clock));
  core::Bundle bundle(issuer.trust_domain());
  TW_RETURN_IF_ERROR(bundle.AddX509Authority(chain.back()));
  bundle.AddJwtAuthority(signers.jwt->key_id(), signers.jwt->public_key());
  bundle.set_sequence(1);
  bundle.set_refresh_hint_seconds(kBundleRefreshHintSeconds);
  std::vector<base::ByteView> views(chain.begin(), chain.end());
  return WriteDirectory(dir, views, bundle, nullptr, nullptr);
}

absl::StatusOr<std::string> CaDirectory::SignIntermediate(const std::string& dir,
                                                          std::shared_ptr<const crypto::Signer> key,
                                                          absl::string_view csr, absl::Duration ttl,
                                                          const base::Clock& clock) {
  const std::string ca_path = Path(dir, "ca.pem");
  TW_ASSIGN_OR_RETURN(std::string ca_pem, base::ReadFile(ca_path));
  auto issuer =
      core::X509Issuer::Create(std::move(key), core::DecodePemBlocks(ca_pem, "CERTIFICATE"));
  if (!issuer.ok()) return Annotate(issuer.status(), ca_path);
  TW_ASSIGN_OR_RETURN(core::CertificateRequest request, core::ParseCertificateRequest(csr));
  const absl::Time now = clock.Now();
  const absl::Time not_after = std::min(now + ttl, issuer->certificate().not_after());
  TW_ASSIGN_OR_RETURN(base::Bytes der, issuer->IssueCa({.trust_domain = issuer->trust_domain(),
                                                        .not_before = now - kBackdate,
                                                        .not_after = not_after,
                                                        .path_len = 0},
                                                       request.public_key));
  std::vector<base::ByteView> chain = {der};
  for (const core::Certificate& c : issuer->chain()) chain.push_back(c.der());
  return core::CertificatesToPem(chain);
}

absl::Status CaDirectory::InitIntermediate(const std::string& dir, const std::string& parent_dir,
                                           crypto::KeyType key_type, absl::Duration ttl,
                                           const base::Clock& clock) {
  TW_RETURN_IF_ERROR(RefuseExisting(dir));
  TW_ASSIGN_OR_RETURN(CaDirectory parent, Open(parent_dir));
  TW_ASSIGN_OR_RETURN(std::unique_ptr<crypto::SoftwareSigner> ca_key,
                      crypto::SoftwareSigner::Generate(key_type));
  TW_ASSIGN_OR_RETURN(std::unique_ptr<crypto::SoftwareSigner> jwt_key,
                      crypto::SoftwareSigner::Generate(key_type));
  absl::Time now = clock.Now();
  const core::X509Issuer& up = parent.issuer();
  TW_ASSIGN_OR_RETURN(base::Bytes ca_der, up.IssueCa({.trust_domain = up.trust_domain(),
                                                      .not_before = now - kBackdate,
                                                      .not_after = now + ttl,
                                                      .path_len = std::nullopt},
                                                     ca_key->public_key()));
  std::vector<base::ByteView> chain = {ca_der};
  for (const core::Certificate& c : up.chain()) chain.push_back(c.der());
  core::Bundle bundle = parent.bundle();
  bundle.AddJwtAuthority(jwt_key->key_id(), jwt_key->public_key());
  bundle.set_sequence(parent.bundle().sequence().value_or(0) + 1);
  return WriteDirectory(dir, chain, bundle, jwt_key.get(), ca_key.get());
}

CaSigners::Uris CaSigners::FilesIn(const std::string& dir) {
  return Uris{.ca = crypto::FileKeyUri(Path(dir, "ca.key.pem")),
              .jwt = crypto::FileKeyUri(Path(dir, "jwt.key.pem"))};
}

absl::StatusOr<CaSigners> CaSigners::Open(const Uris& uris) {
  CaSigners out;
  TW_ASSIGN_OR_RETURN(out.ca, crypto::OpenSigner(uris.ca));
  TW_ASSIGN_OR_RETURN(out.jwt, crypto::OpenSigner(uris.jwt));
  return out;
}

absl::StatusOr<CaDirectory> CaDirectory::Open(const std::string& dir) {
  TW_ASSIGN_OR_RETURN(CaSigners signers, CaSigners::Open(CaSigners::FilesIn(dir)));
  return Load(dir, std::move(signers));
}

absl::StatusOr<CaDirectory> CaDirectory::Load(const std::string& dir, CaSigners signers) {
  CaDirectory out;
  std::string ca_path = Path(dir, "ca.pem");
  TW_ASSIGN_OR_RETURN(std::string ca_pem, base::ReadFile(ca_path));
  std::vector<base::Bytes> chain = core::DecodePemBlocks(ca_pem, "CERTIFICATE");
  if (chain.empty()) return absl::InvalidArgumentError(absl::StrCat(ca_path, ": no certificate"));
  auto issuer = core::X509Issuer::Create(std::move(signers.ca), std::move(chain));
  if (!issuer.ok()) return Annotate(issuer.status(), ca_path);
  out.issuer_ = std::make_shared<const core::X509Issuer>(*std::move(issuer));

  std::string bundle_path = Path(dir, "bundle.json");
  TW_ASSIGN_OR_RETURN(std::string bundle_json, base::ReadFile(bundle_path));
  auto bundle = core::Bundle::Parse(bundle_json, out.issuer_->trust_domain());
  if (!bundle.ok()) return Annotate(bundle.status(), bundle_path);
  // A JWT key the bundle does not publish would mint tokens nobody can verify.
  const auto& published = bundle->jwt_authorities();
  if (std::none_of(published.begin(), published.end(), [&signers](const core::JwtAuthority& a) {
        return a.key_id == signers.jwt->key_id() && a.key == signers.jwt->public_key();
      })) {
    return absl::FailedPreconditionError(
        absl::StrCat(bundle_path, ": the JWT signing key is not among its JWT authorities"));
  }
  out.jwt_signer_ = std::move(signers.jwt);
  out.bundle_ = std::make_shared<const core::Bundle>(*std::move(bundle));
  return out;
}

}  // namespace tw::ca
