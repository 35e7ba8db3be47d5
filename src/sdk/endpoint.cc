#include "sdk/endpoint.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "base/file.h"
#include "base/status_macros.h"
#include "sdk/status_error.h"

namespace trustwarden::internal {
namespace {

using nlohmann::json;
namespace core = tw::core;

}  // namespace

std::string Env(const std::string& value, const char* name, absl::string_view fallback) {
  if (!value.empty()) return value;
  const char* env = std::getenv(name);
  return env != nullptr && *env != '\0' ? std::string(env) : std::string(fallback);
}

absl::StatusOr<Endpoint> Resolve(const Connection& c) {
  Endpoint e;
  e.server = Env(c.server, "TRUSTWARDEN_SERVER", "https://127.0.0.1:8443");
  e.token = Env(c.token, "TRUSTWARDEN_TOKEN", "");
  e.spool_dir = Env(c.spool_dir, "TRUSTWARDEN_SPOOL", "./trustwarden-spool");
  e.max_staleness = absl::FromChrono(c.max_staleness);
  const std::string path = Env(c.bundle, "TRUSTWARDEN_BUNDLE", "./trustwarden-data/bundle.json");
  TW_ASSIGN_OR_RETURN(const std::string text, tw::base::ReadFile(path));
  TW_ASSIGN_OR_RETURN(core::Bundle bundle, core::Bundle::Parse(text));
  if (bundle.x509_authorities().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " has no X.509 authority"));
  }
  e.trust_domains.push_back(bundle.trust_domain());
  e.bundles = std::make_shared<core::BundleSet>();
  e.bundles->Put(std::move(bundle));
  return e;
}

absl::StatusOr<Endpoint> ResolveWatched(const Connection& connection,
                                        const tw::base::Clock& stream_clock) {
  TW_ASSIGN_OR_RETURN(Endpoint e, Resolve(connection));
  e.watcher = RevocationWatcher::Shared(e.server, CaPem(e), stream_clock);
  e.watcher->Follow(e.bundles, e.trust_domains.front());
  // The federated bundles come with the stream's first heartbeat: a peer of a federated
  // domain is then trusted from the first handshake (at once after the process's first).
  const bool federated = e.watcher->WaitFederation(absl::Seconds(2));
  if (connection.federated_revocations.empty()) return e;
  // A federated domain's stream is authenticated by that domain's bundle, as our server
  // federates it.
  if (!federated) {
    return absl::UnavailableError(
        absl::StrCat("the federated bundles of ", e.server, " did not arrive"));
  }
  for (const auto& [name, server] : connection.federated_revocations) {
    TW_ASSIGN_OR_RETURN(const core::TrustDomain td, core::TrustDomain::FromNameOrId(name));
    if (td == e.trust_domains.front()) {
      return absl::InvalidArgumentError(absl::StrCat("federated_revocations: ", td.name(),
                                                     " is our own trust domain (its stream is ",
                                                     e.server, "'s)"));
    }
    std::shared_ptr<const core::Bundle> bundle = e.bundles->Get(td.name());
    if (bundle == nullptr || bundle->x509_authorities().empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("federated_revocations: ", e.server, " does not federate with ", td.name(),
                       ", so its stream at ", server, " cannot be authenticated"));
    }
    auto cas = std::make_shared<core::BundleSet>();
    cas->Put(*bundle);
    std::shared_ptr<RevocationWatcher> watcher =
        RevocationWatcher::Shared(server, bundle->ToPem(), stream_clock);
    watcher->Follow(cas, td);
    (void)watcher->WaitConnected(absl::Seconds(5));  // else its peers are refused: fail closed
    e.foreign_watchers.emplace(td.name(), std::move(watcher));
    e.foreign_cas.push_back(std::move(cas));
  }
  return e;
}

const RevocationWatcher* WatcherFor(const Endpoint& e, const core::SpiffeId& id) {
  if (id.MemberOf(e.trust_domains.front())) return e.watcher.get();
  auto it = e.foreign_watchers.find(id.trust_domain_name());
  return it != e.foreign_watchers.end() ? it->second.get() : nullptr;
}

std::string CaPem(const Endpoint& e) {
  std::shared_ptr<const core::Bundle> bundle = e.bundles->Get(e.trust_domains.front().name());
  return bundle != nullptr ? bundle->ToPem() : "";
}

std::string TrustedPem(const Endpoint& e) {
  std::string pem;
  for (const std::shared_ptr<const core::Bundle>& b : e.bundles->All()) pem += b->ToPem();
  return pem;
}

absl::StatusOr<std::unique_ptr<tw::net::HttpsClient>> Connect(const Endpoint& e,
                                                              const Credential* c) {
  tw::net::ClientOptions options{.server = e.server, .ca_pem = CaPem(e)};
  if (c != nullptr) {
    options.client_chain_pem = c->svid_pem;
    options.client_key = c->key;
  }
  return tw::net::HttpsClient::Create(options);
}

absl::StatusOr<std::string> EncodeJson(const json& value) {
  try {
    return value.dump();
  } catch (const json::exception&) {  // the encoder's only complaint: a string not UTF-8
    return absl::InvalidArgumentError("a string of the request is not UTF-8");
  }
}

std::optional<std::string> StringMember(const json& object, const std::string& key) {
  if (!object.is_object()) return std::nullopt;
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

absl::StatusOr<json> PostText(tw::net::HttpsClient& client, const std::string& target,
                              const std::string& body, const std::string& token) {
  tw::net::Headers headers;
  if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
  TW_ASSIGN_OR_RETURN(tw::net::Response r, client.Request("POST", target, body, headers));
  json reply = json::parse(r.body, nullptr, false);
  if (r.status >= 200 && r.status < 300 && reply.is_object()) return reply;
  if (reply.is_object() && reply.contains("error") && reply["error"].is_object()) {
    const json& error = reply["error"];
    return ServerError(StringMember(error, "code").value_or("unknown"),
                       absl::StrCat("server: ", StringMember(error, "message").value_or("")));
  }
  return absl::UnavailableError(absl::StrCat("server: HTTP ", r.status));
}

absl::StatusOr<json> Post(tw::net::HttpsClient& client, const std::string& target, const json& body,
                          const std::string& token) {
  TW_ASSIGN_OR_RETURN(const std::string text, EncodeJson(body));
  return PostText(client, target, text, token);
}

std::string InstanceOf(const core::SpiffeId& id) {
  // The last path segment, read in place: this runs on every peer verification.
  const absl::string_view path = id.path();
  return path.empty() ? "" : std::string(path.substr(path.rfind('/') + 1));
}

ConnectionPool& ConnectionPool::Process() {
  static auto* pool = new ConnectionPool();
  return *pool;
}

absl::StatusOr<std::unique_ptr<tw::net::HttpsClient>> ConnectionPool::Take(const Endpoint& e) {
  {
    absl::MutexLock lock(&mu_);
    auto& idle = idle_[{e.server, CaPem(e)}];
    if (!idle.empty()) {
      auto client = std::move(idle.back());
      idle.pop_back();
      return client;
    }
  }
  return Connect(e, nullptr);
}

void ConnectionPool::Give(const Endpoint& e, std::unique_ptr<tw::net::HttpsClient> client) {
  constexpr size_t kMaxIdle = 8;
  absl::MutexLock lock(&mu_);
  auto& idle = idle_[{e.server, CaPem(e)}];
  if (idle.size() < kMaxIdle) idle.push_back(std::move(client));
}

}  // namespace trustwarden::internal
