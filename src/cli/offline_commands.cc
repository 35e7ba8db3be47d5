// The offline tools: id check, ca init, svid issue|inspect|verify, jwt mint|verify.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "base/api_status.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/status_macros.h"
#include "ca/ca_directory.h"
#include "ca/rotating_ca.h"
#include "cli/api_client.h"
#include "cli/command.h"
#include "cli/output.h"
#include "cli/usage.h"
#include "core/agent_name.h"
#include "core/attributes.h"
#include "core/bundle.h"
#include "core/certificate.h"
#include "core/csr.h"
#include "core/jwt_svid.h"
#include "core/scope.h"
#include "core/spiffe_id.h"
#include "core/x509_issuer.h"
#include "core/x509_verifier.h"
#include "crypto/signer_factory.h"
#include "crypto/software_signer.h"
#include "nlohmann/json.hpp"

namespace tw::cli {

int Fail(const absl::Status& status) {
  std::cerr << "error: " << status.message() << "\n";
  if (JsonRequested()) {
    PrintJson(nlohmann::json{{"error",
                              {{"code", std::string(base::ApiStatusOf(status.code()).name)},
                               {"message", std::string(status.message())}}}});
  }
  return ExitCodeOf(status);
}

namespace {

// What signs for the CA in `dir` now: the active authority of a server's data directory
// (authorities.json, which follows rotations), else a `ca init` directory's key files.
// A server's authority signs no longer than `ca retire` assumes (the defaults of
// RotatingCaOptions); a `ca init` CA has no such limit.
struct SigningCa {
  std::shared_ptr<const core::X509Issuer> issuer;
  std::shared_ptr<const crypto::Signer> jwt;
  std::optional<absl::Duration> max_svid_ttl, max_jwt_ttl;

  // InvalidArgument when `ttl` is longer than `max` allows.
  static absl::Status CheckTtl(absl::Duration ttl, std::optional<absl::Duration> max,
                               absl::string_view what) {
    if (!max || ttl <= *max) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("a server's CA signs ", what, " for at most ", absl::FormatDuration(*max),
                     " (ca retire counts on it): give a shorter --ttl"));
  }
};

absl::StatusOr<SigningCa> OpenSigningCa(const std::string& dir) {
  if (ca::RotatingCa::Exists(dir)) {
    const ca::RotatingCaOptions limits;
    TW_ASSIGN_OR_RETURN(std::unique_ptr<ca::RotatingCa> rotating,
                        ca::RotatingCa::Open(dir, limits));
    return SigningCa{rotating->issuer(), rotating->jwt_signer(), limits.max_svid_lifetime,
                     limits.max_jwt_lifetime};
  }
  TW_ASSIGN_OR_RETURN(ca::CaDirectory opened, ca::CaDirectory::Open(dir));
  auto owner = std::make_shared<const ca::CaDirectory>(std::move(opened));
  return SigningCa{{owner, &owner->issuer()}, {owner, &owner->jwt_signer()}, {}, {}};
}

absl::StatusOr<absl::Time> ParseTime(const std::string& s) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, s, &t, &err)) {
    return absl::InvalidArgumentError(absl::StrCat("--at \"", s, "\" is not RFC 3339: ", err));
  }
  return t;
}

absl::StatusOr<std::optional<core::TrustDomain>> OptionalTrustDomain(const std::string& s) {
  if (s.empty()) return std::optional<core::TrustDomain>();
  TW_ASSIGN_OR_RETURN(core::TrustDomain td, core::TrustDomain::FromNameOrId(s));
  return std::optional<core::TrustDomain>(std::move(td));
}

// A BundleSet from `path`: one SPIFFE bundle (JSON or PEM) for its trust domain, or a
// bundle map {"trust_domains": ...} of several.
absl::StatusOr<std::shared_ptr<core::BundleSet>> LoadBundle(const std::string& path,
                                                            const std::string& trust_domain) {
  TW_ASSIGN_OR_RETURN(std::string text, base::ReadFile(path));
  auto named = [&path](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  };
  auto set = std::make_shared<core::BundleSet>();
  if (text.find("\"trust_domains\"") != std::string::npos) {
    auto bundles = core::ParseBundleMap(text);
    if (!bundles.ok()) return named(bundles.status());
    set->ReplaceAll(*std::move(bundles));
    return set;
  }
  TW_ASSIGN_OR_RETURN(std::optional<core::TrustDomain> td, OptionalTrustDomain(trust_domain));
  auto bundle = core::Bundle::Parse(text, std::move(td));
  if (!bundle.ok()) return named(bundle.status());
  set->Put(*std::move(bundle));
  return set;
}

absl::StatusOr<core::SvidAttributes> Attributes(const std::vector<std::string>& scopes,
                                                const std::string& trust_level) {
  core::SvidAttributes a;
  TW_ASSIGN_OR_RETURN(a.scopes, core::ParseScopes(scopes));
  TW_ASSIGN_OR_RETURN(a.trust_level, core::ParseTrustLevel(trust_level));
  return a;
}

crypto::KeyType KeyTypeFromFlag(const std::string& s) {
  return s == "ec-p384" ? crypto::KeyType::kEcP384 : crypto::KeyType::kEcP256;
}

void RegisterId(CLI::App& app, Action* action) {
  CLI::App* id = app.add_subcommand("id", "SPIFFE ID tools");
  id->require_subcommand(1);
  CLI::App* check = id->add_subcommand("check", "Check a SPIFFE ID against SPIFFE-ID §2");
  auto value = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  check->add_option("ID", *value, "the SPIFFE ID")->required();
  AddJsonFlag(check, as_json.get());
  check->callback([action, value, as_json] {
    *action = [value, as_json] {
      auto id = core::SpiffeId::FromString(*value);
      if (!id.ok()) return Fail(id.status());
      Emit(*as_json,
           {{"spiffe_id", id->str()},
            {"trust_domain", std::string(id->trust_domain_name())},
            {"path", std::string(id->path())}},
           id->str());
      return 0;
    };
  });
}

void RegisterCa(CLI::App& app, Action* action) {
  CLI::App* ca = app.add_subcommand("ca", "Offline certificate authority");
  ca->require_subcommand(1);
  CLI::App* init =
      ca->add_subcommand("init", "Create a self-signed CA and JWT key for a trust domain");
  struct Opts {
    std::string trust_domain, out, key_type = "ec-p256", ttl = "365d", parent;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* td_opt = init->add_option("--trust-domain", o->trust_domain, "trust domain name");
  auto* parent_opt = init->add_option("--parent", o->parent,
                                      "create an intermediate CA under the CA in this directory");
  td_opt->excludes(parent_opt);
  init->add_option("--out", o->out, "directory to create")->required();
  init->add_option("--key-type", o->key_type, "ec-p256 or ec-p384")
      ->check(CLI::IsMember({"ec-p256", "ec-p384"}));
  init->add_option("--ttl", o->ttl, "CA lifetime (default 365d)");
  AddJsonFlag(init, &o->json);
  init->callback([action, o] {
    *action = [o] {
      auto ttl = core::ParseDuration(o->ttl);
      if (!ttl.ok()) return Fail(ttl.status());
      if (!o->parent.empty()) {
        absl::Status s = ca::CaDirectory::InitIntermediate(
            o->out, o->parent, KeyTypeFromFlag(o->key_type), *ttl, base::Clock::System());
        if (!s.ok()) return Fail(s);
      } else {
        if (o->trust_domain.empty()) {
          return Fail(absl::InvalidArgumentError("give --trust-domain (or --parent)"));
        }
        auto td = core::TrustDomain::FromNameOrId(o->trust_domain);
        if (!td.ok()) return Fail(td.status());
        ca::CaInitOptions options{
            .trust_domain = *td, .key_type = KeyTypeFromFlag(o->key_type), .ttl = *ttl};
        absl::Status s = ca::CaDirectory::Init(o->out, options, base::Clock::System());
        if (!s.ok()) return Fail(s);
      }
      auto loaded = ca::CaDirectory::Open(o->out);
      if (!loaded.ok()) return Fail(loaded.status());
      const core::Certificate& cert = loaded->issuer().certificate();
      Emit(o->json,
           {{"trust_domain", loaded->issuer().trust_domain().name()},
            {"serial", cert.SerialHex()},
            {"not_after", base::Rfc3339(cert.not_after())},
            {"directory", o->out},
            {"files", {"ca.key.pem", "ca.pem", "jwt.key.pem", "bundle.json", "bundle.pem"}}},
           absl::StrCat("trust domain: ", loaded->issuer().trust_domain().name(),
                        "\nCA serial:    ", cert.SerialHex(), "\nvalid until:  ",
                        base::Rfc3339(cert.not_after()), "\nwrote:        ", o->out,
                        "/{ca.key.pem,ca.pem,jwt.key.pem,bundle.json,bundle.pem}"));
      return 0;
    };
  });
}

// `ca request-intermediate --key URI --out FILE`: a PKCS#10 request over the key an
// upstream root will certify (made here as a P-256 file when a file: key does not exist).
int RequestIntermediate(const std::string& key_uri, const std::string& out, bool as_json) {
  absl::string_view path = key_uri;
  const bool file = !absl::StartsWith(key_uri, "pkcs11:");
  absl::ConsumePrefix(&path, "file:");
  bool made = false;
  if (file && ::access(std::string(path).c_str(), F_OK) != 0) {
    auto key = crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
    if (!key.ok()) return Fail(key.status());
    if (absl::Status s = (*key)->WriteFile(std::string(path)); !s.ok()) return Fail(s);
    made = true;
  }
  auto signer = crypto::OpenSigner(key_uri);
  if (!signer.ok()) return Fail(signer.status());
  auto csr = core::BuildCertificateRequest(**signer);
  if (!csr.ok()) return Fail(csr.status());
  if (absl::Status s = base::WriteFile(out, core::PemEncode("CERTIFICATE REQUEST", *csr));
      !s.ok()) {
    return Fail(s);
  }
  Emit(as_json, {{"csr", out}, {"key", key_uri}, {"key_created", made}},
       absl::StrCat("wrote ", out, made ? absl::StrCat(" (and the key ", path, ")") : "",
                    ": have it signed where the root lives (ca sign-intermediate --csr ", out,
                    "), then start the server with --upstream-chain"));
  return 0;
}

// `ca sign-intermediate --ca DIR [--ca-key URI] --csr FILE --out FILE`: run where the root
// lives (it may be offline).
int SignIntermediate(const std::string& dir, const std::string& key_uri, const std::string& csr,
                     const std::string& ttl_text, const std::string& out, bool as_json) {
  auto ttl = core::ParseDuration(ttl_text);
  if (!ttl.ok()) return Fail(ttl.status());
  auto root_key = crypto::OpenSigner(key_uri.empty() ? ca::CaSigners::FilesIn(dir).ca : key_uri);
  if (!root_key.ok()) return Fail(root_key.status());
  auto request = base::ReadFile(csr, 1 << 20);
  if (!request.ok()) return Fail(request.status());
  auto chain = ca::CaDirectory::SignIntermediate(dir, *std::move(root_key), *request, *ttl,
                                                 base::Clock::System());
  if (!chain.ok()) return Fail(chain.status());
  if (absl::Status s = base::WriteFile(out, *chain); !s.ok()) return Fail(s);
  auto certs = core::Certificate::ParseChain(*chain);
  if (!certs.ok()) return Fail(certs.status());
  const core::Certificate& made = certs->front();
  const std::string not_after = base::Rfc3339(made.not_after());
  const std::string td = made.uri_sans().empty() ? "" : std::string(made.uri_sans().front());
  Emit(as_json, {{"chain", out}, {"trust_domain_id", td}, {"not_after", not_after}},
       absl::StrCat("wrote ", out, ": the intermediate CA ", td, " (valid until ", not_after,
                    ") and its chain to the root"));
  return 0;
}

// `ca request-intermediate` and `ca sign-intermediate`: upstream mode.
void RegisterUpstream(CLI::App& ca, Action* action) {
  struct Opts {
    std::string key, out, dir, ca_key, csr, ttl = "8760h";
    bool json = false;
  };
  auto r = std::make_shared<Opts>();
  CLI::App* request = ca.add_subcommand(
      "request-intermediate", "A CSR over the key an upstream root will certify as this CA");
  request->add_option("--key", r->key, "The CA key: file:PATH (made when missing) or a pkcs11: URI")
      ->required();
  request->add_option("--out", r->out, "Where the CSR goes (PEM)")->required();
  AddJsonFlag(request, &r->json);
  request->callback(
      [action, r] { *action = [r] { return RequestIntermediate(r->key, r->out, r->json); }; });

  auto s = std::make_shared<Opts>();
  CLI::App* sign = ca.add_subcommand(
      "sign-intermediate", "Certify a server's CA key as an intermediate of this root (offline)");
  sign->add_option("--ca", s->dir, "The root's CA directory (ca init --out)")->required();
  sign->add_option("--ca-key", s->ca_key,
                   "The root's key when not DIR/ca.key.pem: file:PATH or a pkcs11: URI");
  sign->add_option("--csr", s->csr, "The request (ca request-intermediate --out)")->required();
  sign->add_option("--ttl", s->ttl,
                   "The intermediate's lifetime (default 8760h, at most the root's)");
  sign->add_option("--out", s->out,
                   "The chain for server --upstream-chain: the intermediate, then the root")
      ->required();
  AddJsonFlag(sign, &s->json);
  sign->callback([action, s] {
    *action = [s] { return SignIntermediate(s->dir, s->ca_key, s->csr, s->ttl, s->out, s->json); };
  });
}

struct IssueOptions {
  std::string ca, spiffe_id, csr, public_key, ttl, trust_level = "low", out;
  std::vector<std::string> scopes, dns;
  bool json = false;
};

int IssueSvid(const IssueOptions& o) {
  auto ca = OpenSigningCa(o.ca);
  if (!ca.ok()) return Fail(ca.status());
  auto id = core::SpiffeId::FromString(o.spiffe_id);
  if (!id.ok()) return Fail(id.status());
  auto ttl = core::ParseDuration(o.ttl);
  if (!ttl.ok()) return Fail(ttl.status());
  if (absl::Status s = SigningCa::CheckTtl(*ttl, ca->max_svid_ttl, "X.509-SVIDs"); !s.ok()) {
    return Fail(s);
  }
  auto attributes = Attributes(o.scopes, o.trust_level);
  if (!attributes.ok()) return Fail(attributes.status());
  auto input = base::ReadFile(o.csr.empty() ? o.public_key : o.csr, 1 << 20);
  if (!input.ok()) return Fail(input.status());
  absl::StatusOr<crypto::PublicKey> key = absl::UnknownError("");
  if (!o.csr.empty()) {
    auto csr = core::ParseCertificateRequest(*input);
    if (!csr.ok()) return Fail(csr.status());
    for (const std::string& uri : csr->uri_sans) {
      if (uri != id->str()) {
        return Fail(absl::InvalidArgumentError(absl::StrCat("CSR asks for URI SAN \"",
                                                            absl::CHexEscape(uri.substr(0, 256)),
                                                            "\", not ", id->str())));
      }
    }
    key = csr->public_key;
  } else if (input->find("-----BEGIN") != std::string::npos) {
    key = crypto::PublicKey::FromPem(*input);
  } else {
    key = crypto::PublicKey::FromSpkiDer(base::AsBytes(*input));
  }
  if (!key.ok()) return Fail(key.status());
  absl::Time now = absl::Now();
  // An SVID never outlives its CA (SPIFFE.md §2.1): a longer --ttl is cut, and said so.
  if (const absl::Time ca_end = ca->issuer->certificate().not_after(); now + *ttl > ca_end) {
    std::cerr << "warning: --ttl " << o.ttl << " ends after the CA certificate; cut to its end, "
              << base::Rfc3339(ca_end) << "\n";
  }
  core::LeafRequest request{.spiffe_id = *id,
                            .not_before = now - ca::kBackdate,
                            .not_after = now + *ttl,
                            .attributes = *std::move(attributes),
                            .dns_names = o.dns,
                            .ip_addresses = {}};
  auto der = ca->issuer->IssueLeaf(request, *key);
  if (!der.ok()) return Fail(der.status());
  std::vector<base::ByteView> chain = {*der};
  for (base::ByteView c : ca->issuer->served_chain()) chain.push_back(c);
  if (absl::Status s = base::WriteFile(o.out, core::CertificatesToPem(chain)); !s.ok())
    return Fail(s);
  auto cert = core::Certificate::Parse(*der);
  Emit(o.json,
       {{"spiffe_id", id->str()},
        {"serial", cert->SerialHex()},
        {"not_after", base::Rfc3339(cert->not_after())},
        {"out", o.out}},
       absl::StrCat(id->str(), "\nserial ", cert->SerialHex(), ", valid until ",
                    base::Rfc3339(cert->not_after())));
  return 0;
}

int InspectSvid(const std::string& path, bool json) {
  auto text = base::ReadFile(path);
  if (!text.ok()) return Fail(text.status());
  auto chain = core::Certificate::ParseChain(*text);
  if (!chain.ok()) return Fail(chain.status());
  const core::Certificate& leaf = chain->front();
  std::optional<core::SvidAttributes> attrs;
  if (leaf.attributes()) {
    auto a = core::DecodeAttributes(*leaf.attributes());
    if (!a.ok()) return Fail(a.status());
    attrs = *std::move(a);
  }
  nlohmann::json j;
  j["spiffe_id"] = leaf.uri_sans().size() == 1 ? nlohmann::json(std::string(leaf.uri_sans()[0]))
                                               : nlohmann::json();
  j["uri_sans"] = nlohmann::json::array();
  for (absl::string_view u : leaf.uri_sans()) j["uri_sans"].push_back(std::string(u));
  j["dns_sans"] = nlohmann::json::array();
  for (absl::string_view d : leaf.dns_sans()) j["dns_sans"].push_back(std::string(d));
  j["serial"] = leaf.SerialHex();
  j["not_before"] = base::Rfc3339(leaf.not_before());
  j["not_after"] = base::Rfc3339(leaf.not_after());
  j["is_ca"] = leaf.is_ca();
  j["scopes"] = nlohmann::json::array();
  j["trust_level"] = nullptr;
  j["policy_version"] = nullptr;
  j["parent"] = nullptr;
  j["principal"] = nullptr;
  if (attrs) {
    for (const core::Scope& s : attrs->scopes) j["scopes"].push_back(s.str());
    j["trust_level"] = std::string(core::TrustLevelName(attrs->trust_level));
    j["policy_version"] = attrs->policy_version;
    if (attrs->parent) j["parent"] = attrs->parent->str();
    if (!attrs->principal.empty()) j["principal"] = attrs->principal;
  }
  j["chain_length"] = chain->size();
  if (json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  auto text_of = [](const nlohmann::json& v) {
    if (v.is_null()) return std::string("-");
    if (v.is_string()) return v.get<std::string>();
    if (v.is_array()) {
      std::vector<std::string> parts;
      for (const auto& e : v) parts.push_back(e.get<std::string>());
      return parts.empty() ? std::string("-") : absl::StrJoin(parts, " ");
    }
    return v.dump();
  };
  for (const char* k :
       {"spiffe_id", "serial", "not_before", "not_after", "scopes", "trust_level", "policy_version",
        "parent", "principal", "dns_sans", "is_ca", "chain_length"}) {
    std::cout << k << ": " << text_of(j[k]) << "\n";
  }
  return 0;
}

// The revocation of instance `instance_id` in `server`'s log (GET /v1/revocations, every
// page), if any: a revoked SVID verifies offline, so `svid verify --server` asks.
absl::StatusOr<std::optional<nlohmann::json>> RevocationOf(const std::string& server,
                                                           const std::string& bundle_path,
                                                           const std::string& instance_id) {
  ClientFlags flags{.server = server, .bundle = bundle_path, .no_token = true};
  TW_ASSIGN_OR_RETURN(auto client, Connect(flags));
  int64_t after = 0;
  for (;;) {
    TW_ASSIGN_OR_RETURN(
        nlohmann::json page,
        CallJson(*client, flags, "GET", absl::StrCat("/v1/revocations?limit=1000&after=", after)));
    for (const nlohmann::json& e : page.value("entries", nlohmann::json::array())) {
      for (const nlohmann::json& id : e.value("instances", nlohmann::json::array())) {
        if (id.is_string() && id.get<std::string>() == instance_id) return e;
      }
    }
    if (!page.value("more", false)) return std::nullopt;
    after = page.value("next_after", after);
  }
}

int VerifySvid(const std::string& bundle_path, const std::string& trust_domain,
               const std::string& at, const std::string& chain_path, const std::string& server,
               bool as_json) {
  auto bundles = LoadBundle(bundle_path, trust_domain);
  if (!bundles.ok()) return Fail(bundles.status());
  absl::Time now = absl::Now();
  if (!at.empty()) {
    auto t = ParseTime(at);
    if (!t.ok()) return Fail(t.status());
    now = *t;
  }
  auto text = base::ReadFile(chain_path);
  if (!text.ok()) return Fail(text.status());
  auto chain = core::Certificate::ParseChain(*text);
  if (!chain.ok()) return Fail(chain.status());
  std::vector<base::ByteView> ders;
  for (const core::Certificate& c : *chain) ders.push_back(c.der());
  core::X509Verifier verifier(*bundles);
  auto svid = verifier.VerifyAt(ders, now);
  if (!svid.ok()) return Fail(svid.status());
  if (!server.empty()) {
    auto instance = core::ParseAgentSpiffeId(svid->spiffe_id);
    if (!instance.ok()) return Fail(instance.status());
    auto revoked = RevocationOf(server, bundle_path, instance->instance_id);
    if (!revoked.ok()) return Fail(revoked.status());
    if (*revoked) {
      const nlohmann::json& e = **revoked;
      return Fail(absl::PermissionDeniedError(absl::StrCat(
          svid->spiffe_id.str(), " is revoked (sequence ", e.value("sequence", int64_t{0}), ", ",
          e.value("revoked_at", ""), ", as ", e.value("kind", ""), " ", e.value("target", ""), ": ",
          e.value("reason", ""), ")")));
    }
  }
  Emit(as_json,
       {{"valid", true},
        {"spiffe_id", svid->spiffe_id.str()},
        {"revocation_checked", !server.empty()}},
       svid->spiffe_id.str());
  return 0;
}

void RegisterSvid(CLI::App& app, Action* action) {
  CLI::App* svid = app.add_subcommand("svid", "X.509-SVID tools");
  svid->require_subcommand(1);

  auto io = std::make_shared<IssueOptions>();
  CLI::App* issue = svid->add_subcommand("issue", "Issue an X.509-SVID from a CSR or a public key");
  issue->add_option("--ca", io->ca, "CA directory (ca init --out, or a server's data directory)")
      ->required();
  issue->add_option("--spiffe-id", io->spiffe_id, "SPIFFE ID of the SVID")->required();
  auto* csr = issue->add_option("--csr", io->csr, "PKCS#10 request, PEM or DER");
  auto* pk = issue->add_option("--public-key", io->public_key, "SubjectPublicKeyInfo, PEM or DER");
  csr->excludes(pk);
  issue->add_option("--ttl", io->ttl, "lifetime, e.g. 30m")->required();
  issue->add_option("--scope", io->scopes, "scope action:object (repeatable)");
  issue->add_option("--trust-level", io->trust_level, "low, medium, high or critical");
  issue->add_option("--dns", io->dns, "extra DNS SAN (repeatable)");
  issue->add_option("--out", io->out, "output PEM chain")->required();
  AddJsonFlag(issue, &io->json);
  issue->callback([action, io, csr, pk] {
    *action = [io, csr, pk] {
      if (csr->count() == 0 && pk->count() == 0) {
        return Fail(absl::InvalidArgumentError("give --csr or --public-key"));
      }
      return IssueSvid(*io);
    };
  });

  struct InspectOpts {
    std::string file;
    bool json = false;
  };
  auto in = std::make_shared<InspectOpts>();
  CLI::App* inspect =
      svid->add_subcommand("inspect", "Show an X.509-SVID's identity and attributes");
  inspect->add_option("FILE", in->file, "PEM chain or DER certificate")->required();
  AddJsonFlag(inspect, &in->json);
  inspect->callback([action, in] { *action = [in] { return InspectSvid(in->file, in->json); }; });

  struct VerifyOpts {
    std::string bundle, trust_domain, at, chain, server;
    bool json = false;
  };
  auto vo = std::make_shared<VerifyOpts>();
  CLI::App* verify = svid->add_subcommand("verify", "Verify an X.509-SVID chain against a bundle");
  verify->add_option("--bundle", vo->bundle,
                     "SPIFFE bundle JSON or PEM (default $TRUSTWARDEN_BUNDLE or "
                     "./trustwarden-data/bundle.json)");
  verify->add_option("--trust-domain", vo->trust_domain, "whose bundle it is");
  verify->add_option("--at", vo->at, "verification time, RFC 3339");
  verify->add_option("CHAIN", vo->chain, "PEM chain, leaf first")->required();
  verify->add_option("--server", vo->server,
                     "Also refuse an SVID this server's revocation log names (an agent's)");
  AddJsonFlag(verify, &vo->json);
  verify->callback([action, vo] {
    *action = [vo] {
      return VerifySvid(FlagOrEnv(vo->bundle, "TRUSTWARDEN_BUNDLE", kDefaultBundle),
                        vo->trust_domain, vo->at, vo->chain, vo->server, vo->json);
    };
  });
}

void RegisterJwt(CLI::App& app, Action* action) {
  CLI::App* jwt = app.add_subcommand("jwt", "JWT-SVID tools");
  jwt->require_subcommand(1);

  struct MintOpts {
    std::string ca, spiffe_id, ttl = "5m", trust_level = "low";
    bool json = false;
    std::vector<std::string> audience, scopes;
  };
  auto mo = std::make_shared<MintOpts>();
  CLI::App* mint = jwt->add_subcommand("mint", "Mint a JWT-SVID with the CA's JWT key");
  mint->add_option("--ca", mo->ca, "CA directory (ca init --out, or a server's data directory)")
      ->required();
  mint->add_option("--spiffe-id", mo->spiffe_id, "subject SPIFFE ID")->required();
  mint->add_option("--audience", mo->audience, "audience (repeatable; one is advised)")->required();
  mint->add_option("--ttl", mo->ttl, "lifetime (default 5m)");
  mint->add_option("--scope", mo->scopes, "scope action:object (repeatable)");
  mint->add_option("--trust-level", mo->trust_level, "low, medium, high or critical");
  AddJsonFlag(mint, &mo->json);
  mint->callback([action, mo] {
    *action = [mo] {
      auto ca = OpenSigningCa(mo->ca);
      if (!ca.ok()) return Fail(ca.status());
      auto id = core::SpiffeId::FromString(mo->spiffe_id);
      if (!id.ok()) return Fail(id.status());
      if (!id->MemberOf(ca->issuer->trust_domain())) {
        return Fail(absl::InvalidArgumentError("the SPIFFE ID is not in the CA's trust domain"));
      }
      auto ttl = core::ParseDuration(mo->ttl);
      if (!ttl.ok()) return Fail(ttl.status());
      if (absl::Status s = SigningCa::CheckTtl(*ttl, ca->max_jwt_ttl, "JWT-SVIDs"); !s.ok()) {
        return Fail(s);
      }
      auto attributes = Attributes(mo->scopes, mo->trust_level);
      if (!attributes.ok()) return Fail(attributes.status());
      auto token = core::MintJwtSvid(*ca->jwt, {.subject = *id,
                                                .audience = mo->audience,
                                                .issued_at = absl::Now(),
                                                .ttl = *ttl,
                                                .attributes = *std::move(attributes)});
      if (!token.ok()) return Fail(token.status());
      Emit(mo->json,
           {{"token", *token},
            {"spiffe_id", id->str()},
            {"expires_at", base::Rfc3339(absl::Now() + *ttl)}},
           *token);
      return 0;
    };
  });

  struct VerifyOpts {
    std::string bundle, trust_domain, audience, at, token;
    bool json = false;
  };
  auto vo = std::make_shared<VerifyOpts>();
  CLI::App* verify = jwt->add_subcommand("verify", "Validate a JWT-SVID against a bundle");
  verify->add_option("--bundle", vo->bundle,
                     "SPIFFE bundle JSON (or PEM) (default $TRUSTWARDEN_BUNDLE or "
                     "./trustwarden-data/bundle.json)");
  verify->add_option("--trust-domain", vo->trust_domain, "whose bundle it is");
  verify->add_option("--audience", vo->audience, "the audience this validator is")->required();
  verify->add_option("--at", vo->at, "validation time, RFC 3339");
  verify->add_option("TOKEN", vo->token, "compact JWT-SVID")->required();
  AddJsonFlag(verify, &vo->json);
  verify->callback([action, vo] {
    *action = [vo] {
      vo->bundle = FlagOrEnv(vo->bundle, "TRUSTWARDEN_BUNDLE", kDefaultBundle);
      auto bundles = LoadBundle(vo->bundle, vo->trust_domain);
      if (!bundles.ok()) return Fail(bundles.status());
      if (auto text = base::ReadFile(vo->bundle);
          text.ok() && absl::StartsWith(absl::StripLeadingAsciiWhitespace(*text), "-----")) {
        return Fail(absl::InvalidArgumentError(
            absl::StrCat(vo->bundle,
                         " is a PEM bundle: it holds X.509 authorities only; JWT-SVIDs need the "
                         "SPIFFE bundle JSON (bundle.json), which holds the JWT keys")));
      }
      absl::Time now = absl::Now();
      if (!vo->at.empty()) {
        auto t = ParseTime(vo->at);
        if (!t.ok()) return Fail(t.status());
        now = *t;
      }
      auto svid = core::ValidateJwtSvid(vo->token, vo->audience, **bundles, now);
      if (!svid.ok()) return Fail(svid.status());
      Emit(vo->json,
           {{"valid", true},
            {"spiffe_id", svid->subject.str()},
            {"expires_at", base::Rfc3339(svid->expiry)}},
           svid->subject.str());
      return 0;
    };
  });
}

}  // namespace

void RegisterOfflineCommands(CLI::App& app, Action* action) {
  RegisterId(app, action);
  RegisterCa(app, action);
  RegisterUpstream(*app.get_subcommand("ca"), action);
  RegisterSvid(app, action);
  RegisterJwt(app, action);
}

}  // namespace tw::cli
