#include "server/server.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <boost/url/parse.hpp>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "authority/authority.h"
#include "base/file.h"
#include "base/status_macros.h"
#include "ca/ca_directory.h"
#include "core/agent_name.h"
#include "core/certificate.h"
#include "core/scope.h"
#include "crypto/signer_factory.h"
#include "crypto/software_signer.h"
#include "server/api.h"
#include "server/services.h"
#include "spdlog/spdlog.h"
#include "toml++/toml.h"

namespace tw::server {
namespace {

constexpr absl::Duration kServerSvidTtl = absl::Hours(24);
constexpr absl::Duration kUpkeepInterval = absl::Minutes(1);

absl::Status Invalid(absl::string_view key, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("config: ", key, ": ", why));
}

std::string Path(const std::string& dir, absl::string_view name) {
  return absl::StrCat(dir, "/", name);
}

}  // namespace

struct Server::Parts {
  const base::Clock* clock;
  ServerConfig config;
  std::string host;
  std::unique_ptr<Services> services;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<HttpServer> bundle_endpoint;  // when configured
  absl::Time certificate_renew_at;
};

absl::Status SplitHostPort(absl::string_view listen, std::string* host, uint16_t* port) {
  auto parsed =
      boost::urls::parse_authority(boost::core::string_view(listen.data(), listen.size()));
  if (!parsed || parsed->has_userinfo() || parsed->host_address().empty() || !parsed->has_port()) {
    return absl::InvalidArgumentError(absl::StrCat("listen \"", listen, "\" is not HOST:PORT"));
  }
  uint32_t number;
  if (!absl::SimpleAtoi(std::string(parsed->port()), &number) || number > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("listen \"", listen, "\" has a bad port"));
  }
  *host = parsed->host_address();
  *port = static_cast<uint16_t>(number);
  return absl::OkStatus();
}

absl::Status LoadServerConfig(const std::string& path, ServerConfig* c) {
  TW_ASSIGN_OR_RETURN(std::string text, base::ReadFile(path));
  toml::table root;
  try {
    root = toml::parse(text);
  } catch (const toml::parse_error& e) {
    return Invalid(absl::StrCat(path, " line ", e.source().begin.line),
                   std::string(e.description()));
  }
  auto string = [](const toml::node& n, absl::string_view key, std::string* out) {
    const auto* v = n.as_string();
    if (v == nullptr) return Invalid(key, "must be a string");
    *out = v->get();
    return absl::OkStatus();
  };
  // A table [TABLE] of one duration `name`, at least `least`.
  // A table of durations, each at least its `least`.
  struct DurationKey {
    absl::string_view name;
    absl::Duration least;
    absl::string_view least_text;
    absl::Duration* out;
  };
  auto duration_table = [&string](const toml::node& n, absl::string_view table,
                                  std::initializer_list<DurationKey> keys) {
    const toml::table* t = n.as_table();
    if (t == nullptr) return Invalid(table, "must be a table");
    for (const auto& [k, v] : *t) {
      const std::string full = absl::StrCat(table, ".", std::string(k.str()));
      const DurationKey* key = nullptr;
      for (const DurationKey& d : keys) {
        if (k.str() == std::string_view(d.name.data(), d.name.size())) key = &d;
      }
      if (key == nullptr) return Invalid(full, "unknown key");
      std::string text;
      TW_RETURN_IF_ERROR(string(v, full, &text));
      auto d = core::ParseDuration(text);
      if (!d.ok()) return Invalid(full, d.status().message());
      if (*d < key->least) return Invalid(full, absl::StrCat("must be at least ", key->least_text));
      *key->out = *d;
    }
    return absl::OkStatus();
  };
  auto number = [](const toml::node& n, absl::string_view key, double* out) {
    if (const auto* i = n.as_integer()) {
      *out = static_cast<double>(i->get());
    } else if (const auto* f = n.as_floating_point()) {
      *out = f->get();
    } else {
      return Invalid(key, "must be a number");
    }
    if (*out < 0) return Invalid(key, "must not be negative");
    return absl::OkStatus();
  };
  for (const auto& [k, node] : root) {
    const std::string key(k.str());
    double n = 0;
    if (key == "trust_domain") {
      TW_RETURN_IF_ERROR(string(node, key, &c->trust_domain));
    } else if (key == "listen") {
      TW_RETURN_IF_ERROR(string(node, key, &c->listen));
    } else if (key == "data_dir") {
      TW_RETURN_IF_ERROR(string(node, key, &c->data_dir));
    } else if (key == "upstream_chain") {
      TW_RETURN_IF_ERROR(string(node, key, &c->upstream_chain));
    } else if (key == "bundle_endpoint") {
      TW_RETURN_IF_ERROR(string(node, key, &c->bundle_endpoint));
    } else if (key == "bundle_endpoint_cert") {
      TW_RETURN_IF_ERROR(string(node, key, &c->bundle_endpoint_cert));
    } else if (key == "bundle_endpoint_key") {
      TW_RETURN_IF_ERROR(string(node, key, &c->bundle_endpoint_key));
    } else if (key == "store") {
      TW_RETURN_IF_ERROR(string(node, key, &c->store));
    } else if (key == "log_level") {
      TW_RETURN_IF_ERROR(string(node, key, &c->log_level));
    } else if (key == "threads" || key == "worker_threads") {
      TW_RETURN_IF_ERROR(number(node, key, &n));
      if (n < 1 || n > 1024) return Invalid(key, "must be from 1 to 1024");
      (key == "threads" ? c->threads : c->worker_threads) = static_cast<int>(n);
    } else if (key == "keys") {
      const toml::table* keys = node.as_table();
      if (keys == nullptr) return Invalid(key, "must be a table");
      for (const auto& [kk, knode] : *keys) {
        const std::string name = absl::StrCat("keys.", std::string(kk.str()));
        std::string* out = kk == "ca"       ? &c->ca_key
                           : kk == "jwt"    ? &c->jwt_key
                           : kk == "ledger" ? &c->ledger_key
                                            : nullptr;
        if (out == nullptr) return Invalid(name, "unknown key (ca, jwt or ledger)");
        TW_RETURN_IF_ERROR(string(knode, name, out));
      }
    } else if (key == "ca") {
      TW_RETURN_IF_ERROR(
          duration_table(node, key,
                         {{"rotate_every", absl::Hours(1), "1h", &c->rotate_every},
                          {"refresh_hint", absl::Seconds(5), "5s", &c->bundle_refresh_hint}}));
    } else if (key == "ledger") {
      TW_RETURN_IF_ERROR(duration_table(
          node, key, {{"sth_interval", absl::Milliseconds(100), "100ms", &c->sth_interval}}));
    } else if (key == "limits") {
      const toml::table* limits = node.as_table();
      if (limits == nullptr) return Invalid(key, "must be a table");
      for (const auto& [lk, lnode] : *limits) {
        const std::string name = absl::StrCat("limits.", std::string(lk.str()));
        TW_RETURN_IF_ERROR(number(lnode, name, &n));
        if (lk == "max_body_bytes") {
          if (n < 1024) return Invalid(name, "must be at least 1024");
          c->max_body_bytes = static_cast<size_t>(n);
        } else if (lk == "request_timeout_seconds") {
          if (n < 1) return Invalid(name, "must be at least 1");
          c->request_timeout = absl::Seconds(n);
        } else if (lk == "rate_per_principal") {
          c->rate_per_principal = n;
        } else if (lk == "rate_per_address") {
          c->rate_per_address = n;
        } else if (lk == "auth_failures_per_address") {
          c->auth_failures_per_address = n;
        } else if (lk == "ledger_events_per_instance") {
          c->ledger_events_per_instance = n;
        } else if (lk == "max_connections") {
          if (n < 1) return Invalid(name, "must be at least 1");
          c->max_connections = static_cast<size_t>(n);
        } else if (lk == "max_stream_subscribers") {
          if (n < 1) return Invalid(name, "must be at least 1");
          c->max_stream_subscribers = static_cast<size_t>(n);
        } else if (lk == "max_stream_subscribers_per_address") {
          if (n < 1 || n > 1e6) return Invalid(name, "must be from 1 to 1000000");
          c->max_stream_subscribers_per_address = static_cast<int>(n);
        } else if (lk == "max_instance_lifetime_seconds") {
          if (n < 60) return Invalid(name, "must be at least 60");
          c->max_instance_lifetime = absl::Seconds(n);
        } else {
          return Invalid(name, "unknown key");
        }
      }
    } else {
      return Invalid(key, "unknown key");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ServerKeys> OpenServerKeys(const ServerConfig& config, const base::Clock& clock) {
  TW_ASSIGN_OR_RETURN(core::TrustDomain td, core::TrustDomain::FromName(config.trust_domain));
  const std::string& dir = config.data_dir;
  TW_RETURN_IF_ERROR(base::MakeDirectory(dir, 0700));
  ca::CaSigners::Uris ca_uris = ca::CaSigners::FilesIn(dir);
  if (!config.ca_key.empty()) ca_uris.ca = config.ca_key;
  if (!config.jwt_key.empty()) ca_uris.jwt = config.jwt_key;
  const bool new_ca = ::access(Path(dir, "ca.pem").c_str(), F_OK) != 0;
  const bool upstream = !config.upstream_chain.empty();
  if (new_ca && upstream && config.ca_key.empty() &&
      ::access(Path(dir, "ca.key.pem").c_str(), F_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the upstream chain certifies a key this server must hold: give --ca-key, or keep the "
        "key `ca request-intermediate --key` made in ",
        Path(dir, "ca.key.pem")));
  }
  if (new_ca && !upstream && config.ca_key.empty() && config.jwt_key.empty()) {
    TW_RETURN_IF_ERROR(ca::CaDirectory::Init(dir, {.trust_domain = td}, clock));
  }
  if (new_ca && (upstream || !config.ca_key.empty() || !config.jwt_key.empty())) {
    // A key not named lives in software, in its file in the data directory.
    for (const std::string& name : {std::string("ca.key.pem"), std::string("jwt.key.pem")}) {
      const bool configured =
          name == "ca.key.pem" ? !config.ca_key.empty() : !config.jwt_key.empty();
      if (configured || ::access(Path(dir, name).c_str(), F_OK) == 0) continue;
      TW_ASSIGN_OR_RETURN(auto key, crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256));
      TW_RETURN_IF_ERROR(key->WriteFile(Path(dir, name)));
    }
    TW_ASSIGN_OR_RETURN(ca::CaSigners signers, ca::CaSigners::Open(ca_uris));
    if (upstream) {
      TW_ASSIGN_OR_RETURN(std::string chain, base::ReadFile(config.upstream_chain));
      TW_RETURN_IF_ERROR(ca::CaDirectory::InitUpstream(dir, chain, signers, clock));
    } else {
      TW_RETURN_IF_ERROR(
          ca::CaDirectory::InitWithSigners(dir, {.trust_domain = td}, signers, clock));
    }
  }
  if (new_ca) spdlog::info("created the CA of trust domain {} in {}", std::string(td.name()), dir);
  // After the first start the rotation state names the keys (the active authority's may not
  // be the one the config named then).
  const ca::RotatingCaOptions rotation{.max_svid_lifetime = config.max_instance_lifetime,
                                       .refresh_hint = config.bundle_refresh_hint};
  std::unique_ptr<ca::RotatingCa> rotating;
  if (ca::RotatingCa::Exists(dir)) {
    TW_ASSIGN_OR_RETURN(rotating, ca::RotatingCa::Open(dir, rotation));
  } else {
    TW_ASSIGN_OR_RETURN(ca::CaSigners signers, ca::CaSigners::Open(ca_uris));
    TW_ASSIGN_OR_RETURN(ca::CaDirectory ca, ca::CaDirectory::Load(dir, std::move(signers)));
    TW_ASSIGN_OR_RETURN(rotating, ca::RotatingCa::Adopt(dir, std::move(ca), ca_uris, rotation));
  }
  if (rotating->trust_domain() != td) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " holds the CA of trust domain \"",
                                                      rotating->trust_domain().name(), "\", not \"",
                                                      td.name(), "\""));
  }
  std::string ledger_uri = config.ledger_key;
  if (ledger_uri.empty()) {
    const std::string path = Path(dir, "ledger.key.pem");
    ledger_uri = crypto::FileKeyUri(path);
    if (::access(path.c_str(), F_OK) != 0) {
      TW_ASSIGN_OR_RETURN(auto key, crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256));
      TW_RETURN_IF_ERROR(base::WriteFile(path, key->ToPkcs8Pem().view(), 0600));
    }
  }
  ServerKeys keys;
  TW_ASSIGN_OR_RETURN(keys.ledger, crypto::OpenSigner(ledger_uri));
  if (keys.ledger->public_key().type() != crypto::KeyType::kEcP256) {
    return absl::FailedPreconditionError(ledger_uri + " is not an ECDSA P-256 key");
  }
  // The public half beside the data, for auditors to copy (whatever holds the private one).
  // The ledger's key never changes: every server event and tree head is signed with it.
  const std::string pub = Path(dir, "ledger.pub.pem");
  const std::string pub_pem = core::PemEncode("PUBLIC KEY", keys.ledger->public_key_der());
  if (auto existing = base::ReadFile(pub); existing.ok() && *existing != pub_pem) {
    return absl::FailedPreconditionError(absl::StrCat(
        ledger_uri, " is not the key of this ledger (", pub, "): a ledger keeps its key"));
  } else if (!existing.ok()) {
    TW_RETURN_IF_ERROR(base::WriteFile(pub, pub_pem, 0644));
  }
  keys.ca = std::move(rotating);
  return keys;
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerConfig& config,
                                                      std::unique_ptr<store::Store> store,
                                                      ServerKeys keys, const base::Clock& clock) {
  std::unique_ptr<Server> server(new Server());
  server->parts_ = std::make_unique<Parts>();
  Parts& p = *server->parts_;
  p.clock = &clock;
  p.config = config;
  uint16_t port;
  TW_RETURN_IF_ERROR(SplitHostPort(config.listen, &p.host, &port));
  const std::string& dir = config.data_dir;
  TW_ASSIGN_OR_RETURN(p.services, Services::Wire(config, std::move(store), std::move(keys), clock,
                                                 [&dir](const std::string& token) {
                                                   return base::WriteFile(Path(dir, "admin.token"),
                                                                          absl::StrCat(token, "\n"),
                                                                          0600);
                                                 }));
  server->new_admin_token_ = p.services->new_admin_token;
  Services& s = *p.services;
  int io_threads = config.threads > 0
                       ? config.threads
                       : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  p.http = std::make_unique<HttpServer>(
      *s.api, *s.hub, s.metrics,
      HttpServerOptions{.host = p.host,
                        .port = port,
                        .io_threads = io_threads,
                        .worker_threads = config.worker_threads,
                        .max_body_bytes = config.max_body_bytes,
                        .request_timeout = config.request_timeout,
                        .max_connections = config.max_connections,
                        .max_subscribers = config.max_stream_subscribers,
                        .max_subscribers_per_address = config.max_stream_subscribers_per_address});
  if (!config.bundle_endpoint.empty()) {
    std::string host;
    uint16_t bundle_port;
    TW_RETURN_IF_ERROR(SplitHostPort(config.bundle_endpoint, &host, &bundle_port));
    if (config.bundle_endpoint_cert.empty() != config.bundle_endpoint_key.empty()) {
      return absl::InvalidArgumentError(
          "the bundle endpoint's https_web certificate needs both bundle_endpoint_cert and "
          "bundle_endpoint_key");
    }
    p.bundle_endpoint =
        std::make_unique<HttpServer>(*s.api, *s.hub, s.metrics,
                                     HttpServerOptions{.host = host,
                                                       .port = bundle_port,
                                                       .io_threads = 1,
                                                       .worker_threads = 2,
                                                       .max_body_bytes = 4096,
                                                       .request_timeout = config.request_timeout,
                                                       .max_connections = config.max_connections,
                                                       .bundle_endpoint = true});
    if (!config.bundle_endpoint_cert.empty()) {
      TW_ASSIGN_OR_RETURN(std::string chain, base::ReadFile(config.bundle_endpoint_cert));
      TW_ASSIGN_OR_RETURN(std::string key, base::ReadFile(config.bundle_endpoint_key));
      TW_RETURN_IF_ERROR(p.bundle_endpoint->Start(chain, key));
    }
  }
  TW_RETURN_IF_ERROR(server->RenewServerCertificate());
  // After a rotation the server's own certificate comes from the active authority, so that
  // it verifies against the bundle as published now (a revoked authority's would not).
  s.ca->OnChange([raw = server.get()](const core::Bundle&) {
    if (absl::Status renewed = raw->RenewServerCertificate(); !renewed.ok()) {
      spdlog::error("renewing the server certificate after a CA change: {}",
                    std::string(renewed.message()));
    }
  });
  TW_RETURN_IF_ERROR(s.ledger->SignIfGrown().status());
  server->upkeep_ = std::thread([s = server.get()] { s->Upkeep(); });
  server->tree_heads_ = std::thread([s = server.get()] { s->SignTreeHeads(); });
  server->federations_ = std::thread([s = server.get()] { s->RefreshFederations(); });
  return server;
}

// The server's own X.509-SVID for TLS, spiffe://TD/trustwarden/server, with the DNS and IP
// names it listens on so that ordinary HTTPS clients verify it against bundle.pem.
absl::Status Server::RenewServerCertificate() {
  Parts& p = *parts_;
  TW_ASSIGN_OR_RETURN(std::unique_ptr<crypto::SoftwareSigner> key,
                      crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256));
  const std::shared_ptr<const core::X509Issuer> issuer = p.services->ca->issuer();
  const core::TrustDomain& td = issuer->trust_domain();
  TW_ASSIGN_OR_RETURN(core::SpiffeId id,
                      core::SpiffeId::FromSegments(td, {"trustwarden", "server"}));
  const absl::Time now = p.clock->Now();
  core::LeafRequest leaf{
      .spiffe_id = std::move(id),
      .not_before = now - ca::kBackdate,
      .not_after = now + kServerSvidTtl,
      .dns_names = {"localhost"},
      .ip_addresses = {{127, 0, 0, 1}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}}};
  {
    // A literal listen address joins the IP SANs; a name joins the DNS SANs.
    in6_addr v6;
    in_addr v4;
    if (inet_pton(AF_INET, p.host.c_str(), &v4) == 1) {
      const auto* b = reinterpret_cast<const uint8_t*>(&v4);
      base::Bytes ip(b, b + 4);
      if (ip != base::Bytes{0, 0, 0, 0} && ip != base::Bytes{127, 0, 0, 1}) {
        leaf.ip_addresses.push_back(ip);
      }
    } else if (inet_pton(AF_INET6, p.host.c_str(), &v6) == 1) {
      const auto* b = reinterpret_cast<const uint8_t*>(&v6);
      base::Bytes ip(b, b + 16);
      if (ip != base::Bytes(16, 0) && ip != leaf.ip_addresses[1]) leaf.ip_addresses.push_back(ip);
    } else if (p.host != "localhost") {
      leaf.dns_names.push_back(p.host);
    }
  }
  TW_ASSIGN_OR_RETURN(base::Bytes der, issuer->IssueLeaf(leaf, key->public_key()));
  std::vector<base::ByteView> chain = {der};
  const auto& served = issuer->served_chain();
  chain.insert(chain.end(), served.begin(), served.end());
  const std::string chain_pem = core::CertificatesToPem(chain);
  crypto::SecretBytes key_pem = key->ToPkcs8Pem();
  // The first certificate starts a listener; later ones replace it.
  auto serve = [&](HttpServer& listener) {
    return listener.port() == 0 ? listener.Start(chain_pem, key_pem.view())
                                : listener.SetCertificate(chain_pem, key_pem.view());
  };
  TW_RETURN_IF_ERROR(serve(*p.http));
  // https_spiffe: the bundle endpoint presents the same SVID.
  if (p.bundle_endpoint != nullptr && p.config.bundle_endpoint_cert.empty()) {
    TW_RETURN_IF_ERROR(serve(*p.bundle_endpoint));
  }
  p.certificate_renew_at = now + kServerSvidTtl / 2;
  return absl::OkStatus();
}

bool Server::WaitForStop(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(
                                  +[](bool* stopping) { return *stopping; }, &stopping_),
                              timeout);
}

void Server::Upkeep() {
  Parts& p = *parts_;
  while (!WaitForStop(kUpkeepInterval)) {
    const absl::Time now = p.clock->Now();
    auto pruned = p.services->store->PruneRevocations(now);
    if (!pruned.ok()) spdlog::error("pruning the revocation log: {}", pruned.status().ToString());
    p.services->hub->Prune(now);
    p.services->hub->FillGaps();
    if (now >= p.certificate_renew_at) {
      absl::Status renewed = RenewServerCertificate();
      if (!renewed.ok()) spdlog::error("renewing the TLS certificate: {}", renewed.ToString());
    }
    if (p.config.rotate_every > absl::ZeroDuration()) {
      absl::Status rotated = p.services->authority->RotateOnSchedule(p.config.rotate_every);
      if (!rotated.ok()) spdlog::error("rotating the CA on schedule: {}", rotated.ToString());
    }
  }
}

void Server::RefreshFederations() {
  while (!WaitForStop(absl::Seconds(1))) {
    parts_->services->authority->RefreshDueFederations([this] {
      absl::MutexLock lock(&mu_);
      return stopping_;
    });
  }
}

void Server::SignTreeHeads() {
  Parts& p = *parts_;
  while (!WaitForStop(p.config.sth_interval)) {
    auto signed_head = p.services->ledger->SignIfGrown();
    if (!signed_head.ok()) {
      spdlog::error("signing a tree head: {}", signed_head.status().ToString());
    }
  }
}

uint16_t Server::port() const { return parts_->http->port(); }

uint16_t Server::bundle_endpoint_port() const {
  return parts_->bundle_endpoint != nullptr ? parts_->bundle_endpoint->port() : 0;
}

void Server::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (upkeep_.joinable()) upkeep_.join();
  if (tree_heads_.joinable()) tree_heads_.join();
  if (federations_.joinable()) federations_.join();
  parts_->http->Stop();
  if (parts_->bundle_endpoint != nullptr) parts_->bundle_endpoint->Stop();
}

Server::~Server() {
  if (parts_ && parts_->http) Stop();
}

}  // namespace tw::server
