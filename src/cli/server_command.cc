// `trustwarden server`: the composition root of the identity server (picks the store).
#include <signal.h>

#include <filesystem>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/bytes.h"
#include "base/file.h"
#include "base/status_macros.h"
#include "cli/command.h"
#include "cli/usage.h"
#include "core/bundle.h"
#include "crypto/digest.h"
#include "server/server.h"
#include "spdlog/spdlog.h"
#include "store/sqlite/sqlite_store.h"

namespace tw::cli {
namespace {

struct ServerFlags {
  std::string config, data_dir, listen, trust_domain, store, log_level, ca_key, jwt_key, ledger_key,
      upstream_chain, bundle_endpoint, bundle_endpoint_cert, bundle_endpoint_key;
};

absl::StatusOr<std::unique_ptr<store::Store>> OpenStore(const server::ServerConfig& config) {
  std::string url = config.store.empty()
                        ? absl::StrCat("sqlite:", config.data_dir, "/trustwarden.db")
                        : config.store;
  absl::string_view path = url;
  if (absl::ConsumePrefix(&path, "sqlite:")) {
    if (path.empty()) return absl::InvalidArgumentError("--store sqlite:PATH needs a path");
    TW_ASSIGN_OR_RETURN(auto store, store::SqliteStore::Open(std::string(path)));
    return std::unique_ptr<store::Store>(std::move(store));
  }
  if (absl::StartsWith(url, "postgres://") || absl::StartsWith(url, "postgresql://")) {
    return absl::UnimplementedError("the PostgreSQL store is not part of this build yet");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--store \"", url, "\" is neither sqlite:PATH nor postgres://"));
}

int RunServer(const ServerFlags& flags) {
  server::ServerConfig config;
  if (!flags.config.empty()) {
    if (absl::Status s = server::LoadServerConfig(flags.config, &config); !s.ok()) return Fail(s);
  }
  if (!flags.data_dir.empty()) config.data_dir = flags.data_dir;
  if (!flags.listen.empty()) config.listen = flags.listen;
  if (!flags.trust_domain.empty()) config.trust_domain = flags.trust_domain;
  if (!flags.store.empty()) config.store = flags.store;
  if (!flags.log_level.empty()) config.log_level = flags.log_level;
  if (!flags.ca_key.empty()) config.ca_key = flags.ca_key;
  if (!flags.jwt_key.empty()) config.jwt_key = flags.jwt_key;
  if (!flags.ledger_key.empty()) config.ledger_key = flags.ledger_key;
  if (!flags.upstream_chain.empty()) config.upstream_chain = flags.upstream_chain;
  if (!flags.bundle_endpoint.empty()) config.bundle_endpoint = flags.bundle_endpoint;
  if (!flags.bundle_endpoint_cert.empty()) config.bundle_endpoint_cert = flags.bundle_endpoint_cert;
  if (!flags.bundle_endpoint_key.empty()) config.bundle_endpoint_key = flags.bundle_endpoint_key;
  spdlog::level::level_enum level = spdlog::level::from_str(config.log_level);
  if (level == spdlog::level::off && config.log_level != "off") {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("log level \"", config.log_level, "\" is not trace|debug|info|warn|error")));
  }
  spdlog::set_level(level);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l %v", spdlog::pattern_time_type::utc);

  // Signals are taken synchronously by this thread; every thread started below inherits
  // the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // A start that fails leaves no half-made data directory (store, CA, token) behind.
  // (Exit 1: a server that cannot start is not an unreachable one.)
  std::error_code ec;
  const bool existed = std::filesystem::exists(config.data_dir, ec);
  const bool fresh = !existed || std::filesystem::is_empty(config.data_dir, ec);
  auto fail = [&](const absl::Status& status) {
    if (!existed) {
      std::filesystem::remove_all(config.data_dir, ec);
    } else if (fresh) {
      for (const auto& entry : std::filesystem::directory_iterator(config.data_dir, ec)) {
        std::filesystem::remove_all(entry.path(), ec);
      }
    }
    Fail(status);
    return kExitRefused;
  };
  if (absl::Status s = base::MakeDirectory(config.data_dir, 0700); !s.ok()) return Fail(s);
  auto store = OpenStore(config);
  if (!store.ok()) return fail(store.status());
  auto keys = server::OpenServerKeys(config, base::Clock::System());
  if (!keys.ok()) return fail(keys.status());
  auto server = server::Server::Start(config, *std::move(store), *std::move(keys));
  if (!server.ok()) return fail(server.status());
  if (!(*server)->new_admin_token().empty()) {
    std::cout << "admin token (shown once; also in " << config.data_dir
              << "/admin.token): " << (*server)->new_admin_token() << "\n";
  }
  // What clients pin with `trustwarden bootstrap --fingerprint`.
  if (auto text = base::ReadFile(config.data_dir + "/bundle.json"); text.ok()) {
    if (auto bundle = core::Bundle::Parse(*text); bundle.ok()) {
      for (const auto& authority : bundle->x509_authorities()) {
        std::cout << "CA fingerprint (SHA-256, for trustwarden bootstrap): "
                  << base::HexEncode(crypto::Sha256(authority->certificate.der())) << "\n";
      }
    }
  }
  std::string host = config.listen.substr(0, config.listen.rfind(':'));
  std::cout << "trustwarden listening on https://" << host << ":" << (*server)->port()
            << " (trust domain " << config.trust_domain << ", data " << config.data_dir << ")"
            << std::endl;
  if ((*server)->bundle_endpoint_port() != 0) {
    const std::string& be = config.bundle_endpoint;
    std::cout << "bundle endpoint on https://" << be.substr(0, be.rfind(':')) << ":"
              << (*server)->bundle_endpoint_port() << "/ (profile "
              << (config.bundle_endpoint_cert.empty()
                      ? "https_spiffe, SPIFFE ID spiffe://" + config.trust_domain +
                            "/trustwarden/server"
                      : std::string("https_web"))
              << ")" << std::endl;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {}: stopping", sig);
  (*server)->Stop();
  return 0;
}

}  // namespace

void RegisterServerCommand(CLI::App& app, Action* action) {
  auto flags = std::make_shared<ServerFlags>();
  CLI::App* cmd = app.add_subcommand("server", "Run the identity server (HTTPS API)");
  cmd->add_option("--config", flags->config, "TOML config file");
  cmd->add_option("--data-dir", flags->data_dir, "Data directory (default ./trustwarden-data)");
  cmd->add_option("--listen", flags->listen, "HOST:PORT (default 127.0.0.1:8443)");
  cmd->add_option("--trust-domain", flags->trust_domain, "Trust domain (default trustwarden)");
  cmd->add_option("--store", flags->store, "sqlite:PATH (default: in the data directory)");
  cmd->add_option("--log-level", flags->log_level, "trace|debug|info|warn|error (default info)");
  cmd->add_option("--ca-key", flags->ca_key,
                  "The X.509 CA key: file:PATH or an RFC 7512 pkcs11: URI (default: "
                  "ca.key.pem in the data directory)");
  cmd->add_option("--jwt-key", flags->jwt_key,
                  "The JWT-SVID signing key, as --ca-key (default: jwt.key.pem)");
  cmd->add_option("--upstream-chain", flags->upstream_chain,
                  "Upstream mode: the CA certificate `ca sign-intermediate` made for --ca-key, "
                  "then the chain to the root (PEM), installed at the first start");
  cmd->add_option("--bundle-endpoint", flags->bundle_endpoint,
                  "HOST:PORT of the SPIFFE bundle endpoint for federation (port 0: any free)");
  cmd->add_option("--bundle-endpoint-cert", flags->bundle_endpoint_cert,
                  "With --bundle-endpoint-key: serve it with this certificate chain (PEM; "
                  "profile https_web) rather than the server's SVID (https_spiffe)");
  cmd->add_option("--bundle-endpoint-key", flags->bundle_endpoint_key,
                  "The private key (PEM) of --bundle-endpoint-cert");
  cmd->add_option("--ledger-key", flags->ledger_key,
                  "The ledger key (ECDSA P-256), as --ca-key (default: ledger.key.pem)");
  cmd->callback([flags, action] { *action = [flags] { return RunServer(*flags); }; });
}

}  // namespace tw::cli
