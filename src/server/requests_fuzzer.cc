// libFuzzer: whole HTTP API requests through target parsing, routing, authentication and
// the handlers, on a server's real parts over a temporary store. The input is
//   FLAGS METHOD '\n' TARGET '\n' BODY
// where FLAGS picks the credentials (none, the admin token, an auditor token, a wrong
// token, an agent's SVID) and a Last-Event-ID. A response must be a 2xx, 3xx or 4xx with a
// body that is valid UTF-8 (and JSON when it says so; a ledger export is binary); a 5xx, an
// exception or a crash is a finding.
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "authority/authority.h"
#include "base/text.h"
#include "core/certificate.h"
#include "core/csr.h"
#include "core/foreign_grant.h"
#include "core/json.h"
#include "crypto/software_signer.h"
#include "nlohmann/json.hpp"
#include "policy/policy.h"
#include "server/api.h"
#include "server/requests.h"
#include "server/services.h"
#include "store/sqlite/sqlite_store.h"

namespace tw::server {
namespace {

// One server's parts, made once per process in a directory of its own (on tmpfs when
// there is one: every mutation is a durable commit).
struct World {
  World() {
    const std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string tmpl = base + "/tw-requests-fuzzer-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) abort();
    dir = tmpl;
    // No limits: every input reaches its handler.
    ServerConfig config{.trust_domain = "fuzz.example",
                        .data_dir = dir,
                        .auth_failures_per_address = 0,
                        .ledger_events_per_instance = 0};
    auto keys = OpenServerKeys(config, base::Clock::System());
    auto store = store::SqliteStore::Open(dir + "/tw.db");
    if (!keys.ok() || !store.ok()) abort();
    auto wired = Services::Wire(config, *std::move(store), *std::move(keys), base::Clock::System());
    if (!wired.ok()) abort();
    services = *std::move(wired);
    authority::Authority* authority = services->authority.get();
    admin_token = services->new_admin_token;
    const authority::Caller admin{.principal = "admin", .admin = true};
    auditor_token = authority->CreateToken(admin, "auditor", /*auditor=*/true)->token;
    // An agent whose SVID some inputs present.
    auto key = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
    authority::CreateIdentityRequest create{
        .name = *core::AgentName::Parse("acme/fin/payer"),
        .scopes = {*core::Scope::Parse("read:*")},
        .ttl = absl::Hours(1),
        .csr = core::PemEncode("CERTIFICATE REQUEST", *core::BuildCertificateRequest(*key))};
    auto issued = authority->CreateIdentity(admin, create);
    if (!issued.ok()) abort();
    const std::vector<core::Certificate> chain = *core::Certificate::ParseChain(issued->svid_pem);
    for (const core::Certificate& c : chain) {
      agent_chain.emplace_back(c.der().begin(), c.der().end());
    }
  }

  std::string dir;
  std::unique_ptr<Services> services;
  std::string admin_token, auditor_token;
  std::vector<base::Bytes> agent_chain;
};

World& TheWorld() {
  static World* world = [] {
    auto* w = new World();
    std::atexit([] { std::filesystem::remove_all(TheWorld().dir); });
    return w;
  }();
  return *world;
}

}  // namespace
}  // namespace tw::server

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using tw::server::HttpRequest;
  tw::server::World& w = tw::server::TheWorld();
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  absl::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);

  // The body decoders on their own, as before.
  tw::server::DecodeCreateIdentity(rest).IgnoreError();
  tw::server::DecodeLedgerEvents(rest).IgnoreError();
  tw::server::DecodeRetire(rest).IgnoreError();
  tw::server::DecodeActivate(rest).IgnoreError();
  tw::server::DecodeFederation(rest).IgnoreError();
  tw::policy::Policy::Parse(rest).IgnoreError();  // [[foreign]] grants too
  if (auto grants = tw::core::ParseStrictJson(rest, "grants"); grants.ok()) {
    tw::core::ParseForeignGrants(*grants).IgnoreError();
  }

  const size_t method_end = rest.find('\n');
  if (method_end == absl::string_view::npos) return 0;
  const size_t target_end = rest.find('\n', method_end + 1);
  if (target_end == absl::string_view::npos) return 0;
  HttpRequest request;
  request.method = std::string(rest.substr(0, method_end));
  const absl::string_view target = rest.substr(method_end + 1, target_end - method_end - 1);
  request.body = std::string(rest.substr(target_end + 1));
  request.remote = "127.0.0.1";
  request.request_id = "fuzz";
  switch (flags & 7) {
    case 1:
      request.authorization = "Bearer " + w.admin_token;
      break;
    case 2:
      request.authorization = "Bearer " + w.auditor_token;
      break;
    case 3:
      request.authorization = "Bearer tw_0123456789abcdef_wrong";
      break;
    case 4:
      request.peer_chain = w.agent_chain;
      break;
    case 5:
      request.authorization = std::string(target.substr(0, 64));  // whatever bytes
      break;
    default:
      break;
  }
  if (flags & 8) request.last_event_id = std::string(target.substr(0, 20));
  // The server answers a bad target itself; the rest goes to the API as the server sends it.
  if (!tw::server::ParseTarget(target, &request).ok()) return 0;
  tw::server::Api::StreamStart(request).IgnoreError();
  // The bundle endpoint's listener: every request answered, never a 5xx.
  const tw::server::HttpResponse served = w.services->api->HandleBundleEndpoint(request);
  if (served.status < 200 || served.status >= 500 || !nlohmann::json::accept(served.body)) abort();
  // As the server does: the headers' verdict first, then the handler with its caller.
  if (!w.services->api->Preflight(request).ok()) return 0;
  const tw::server::HttpResponse response = w.services->api->Handle(request);
  if (response.status < 200 || response.status >= 500) abort();
  const bool binary = response.content_type == "application/octet-stream";  // ledger export
  if (!binary && !tw::base::IsUtf8(response.body)) abort();
  if (response.content_type == "application/json" && !nlohmann::json::accept(response.body)) {
    abort();
  }
  return 0;
}
