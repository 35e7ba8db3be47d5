// The SDK end to end against an in-process server on loopback (TLS included): create()
// latency, revocation fan-out to 100 watchers, call() with its ledger events, Verifier
// throughput beside raw ECDSA P-256 verification measured in the same run, and mTLS
// handshakes between two agents beside openssl s_server/s_time with the same keys. With
// TW_BENCH_SERVER set, create() and call() run against that server instead (with
// TRUSTWARDEN_TOKEN and TRUSTWARDEN_BUNDLE), as the Python SDK's benchmark does to compare
// the two SDKs on one server.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "base/file.h"
#include "base/testing/loopback.h"
#include "crypto/software_signer.h"
#include "sdk/identity_state.h"
#include "sdk/revocation_watcher.h"
#include "server/testing/test_server.h"
#include "trustwarden/trustwarden.h"

namespace trustwarden {
namespace {

constexpr int kWatchers = 100;

// One server for the whole run, and the connection to it.
struct World {
  std::unique_ptr<tw::server::TestServer> server;  // null with TW_BENCH_SERVER
  Connection connection;

  World() {
    if (const char* external = std::getenv("TW_BENCH_SERVER"); external != nullptr) {
      connection.server = external;  // the token and bundle from TRUSTWARDEN_*
      connection.spool_dir = std::filesystem::temp_directory_path() / "tw-bench-spool";
      return;
    }
    auto started = tw::server::TestServer::Start([](tw::server::ServerConfig& c) {
      c.worker_threads = 32;                        // the server's default
      c.ledger_events_per_instance = 0;             // one instance drives the whole call load
      c.max_stream_subscribers_per_address = 1000;  // a hundred watchers on loopback
    });
    if (!started.ok()) throw std::runtime_error(std::string(started.status().message()));
    server = *std::move(started);
    connection.server = server->url();
    connection.token = server->admin_token();
    connection.bundle = server->data_dir() + "/bundle.json";
    connection.spool_dir = server->dir() + "/spool";
  }
  IdentityOptions Agent(const std::string& name = "payment-processor") const {
    return IdentityOptions{.name = "acme-corp/finance-team/" + name,
                           .scope = {"read:transactions", "write:ledger"},
                           .trust_level = "high",
                           .connection = connection};
  }
};

World& TheWorld() {
  static World* world = new World();
  return *world;
}

// Adds p50, p99 and max (ms) of `samples` to the benchmark's counters.
void Percentiles(benchmark::State& state, std::vector<double> samples) {
  if (samples.empty()) return;
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) { return samples[static_cast<size_t>(q * (samples.size() - 1))]; };
  state.counters["p50_ms"] = at(0.50);
  state.counters["p99_ms"] = at(0.99);
  state.counters["max_ms"] = samples.back();
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

void BM_Create(benchmark::State& state) {
  World& w = TheWorld();
  AgentIdentity::create(w.Agent()).detach();  // the process's revocation stream is up
  std::vector<double> samples;
  for (auto _ : state) {
    const absl::Time start = absl::Now();
    AgentIdentity agent = AgentIdentity::create(w.Agent());
    samples.push_back(Ms(absl::Now() - start));
    state.PauseTiming();
    agent.detach();
    state.ResumeTiming();
  }
  Percentiles(state, samples);
}
BENCHMARK(BM_Create)->Unit(benchmark::kMillisecond)->Iterations(400)->UseRealTime();

// From revoke() returning to each of 100 independent watchers (as 100 processes would
// run) knowing the instance is revoked.
void BM_RevocationFanOut(benchmark::State& state) {
  World& w = TheWorld();
  if (w.server == nullptr) {
    state.SkipWithError("runs on the in-process server only");
    return;
  }
  const std::string ca_pem = w.server->bundle_pem();
  std::vector<std::unique_ptr<internal::RevocationWatcher>> watchers;
  for (int i = 0; i < kWatchers; ++i) {
    watchers.push_back(std::make_unique<internal::RevocationWatcher>(w.connection.server, ca_pem));
  }
  for (auto& watcher : watchers) watcher->WaitLive(absl::Seconds(10));
  std::vector<double> samples;
  double before = 0;
  for (auto _ : state) {
    state.PauseTiming();
    AgentIdentity agent = AgentIdentity::create(w.Agent("fan-out"));
    const std::string id = agent.instance_id();
    agent.detach();
    state.ResumeTiming();
    revoke({.instance = id}, w.connection);
    const absl::Time returned = absl::Now();
    for (auto& watcher : watchers) {
      if (!watcher->WaitRevoked(id, absl::Seconds(10))) {
        state.SkipWithError("a watcher never learned of the revocation");
        return;
      }
      // The server pushes before it answers: a watcher often knows first (counted as 0).
      samples.push_back(std::max(0.0, Ms(*watcher->LearnedAt(id) - returned)));
      if (*watcher->LearnedAt(id) <= returned) ++before;
    }
  }
  Percentiles(state, samples);
  state.counters["known_before_return_pct"] = 100.0 * before / std::max<size_t>(samples.size(), 1);
}
BENCHMARK(BM_RevocationFanOut)->Unit(benchmark::kMillisecond)->Iterations(50)->UseRealTime();

// call() with a connector that does nothing: the checks, the signed allow and outcome
// events, and their delivery. One thread: each event waits for its own round trip; eight:
// concurrent events share one signature and one request (group commit).
void BM_Call(benchmark::State& state) {
  static AgentIdentity* agent = nullptr;
  if (state.thread_index() == 0) {
    AgentIdentity::register_connector(
        "noop", [](AgentIdentity&, const CallRequest&) { return std::string(); });
    agent = new AgentIdentity(AgentIdentity::create(TheWorld().Agent("caller")));
  }
  std::vector<double> samples;
  for (auto _ : state) {
    const absl::Time start = absl::Now();
    agent->call("noop://ledger-db/transactions", "read:transactions", "{}");
    samples.push_back(Ms(absl::Now() - start));
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) Percentiles(state, samples);
}
BENCHMARK(BM_Call)->Threads(1)->Threads(8)->Iterations(400)->UseRealTime();

struct VerifyFixture {
  std::unique_ptr<AgentIdentity> agent;
  std::unique_ptr<Verifier> verifier;
  std::string token;
  VerifyFixture() {
    World& w = TheWorld();
    agent = std::make_unique<AgentIdentity>(AgentIdentity::create(w.Agent("verified")));
    verifier = std::make_unique<Verifier>(
        VerifierOptions{.connection = w.connection, .audience = "https://ledger.acme"});
    token = agent->jwt("https://ledger.acme");
  }
};
VerifyFixture& Verified() {
  static auto* f = new VerifyFixture();
  return *f;
}

// An mTLS peer's chain as a resource sees it again and again (verified leaves are cached:
// the revocation, scope and trust checks still run every time).
void BM_VerifierX509(benchmark::State& state) {
  VerifyFixture& f = Verified();
  const std::string pem = f.agent->svid_pem();
  for (auto _ : state) {
    if (!f.verifier->verify_x509(pem, {.scope = "read:transactions"}).allowed) {
      state.SkipWithError("refused");
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerifierX509)->Threads(1)->Threads(2)->UseRealTime();

// A JWT-SVID bearer token: parse, one ECDSA verification, claims, revocation, scope.
void BM_VerifierJwt(benchmark::State& state) {
  VerifyFixture& f = Verified();
  for (auto _ : state) {
    if (!f.verifier->verify_jwt(f.token, {.scope = "read:transactions"}).allowed) {
      state.SkipWithError("refused");
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerifierJwt)->Threads(1)->Threads(2)->UseRealTime();

// Two agents for mTLS, and their keys and chains as files for openssl's CLI.
struct TlsPair {
  std::unique_ptr<AgentIdentity> server, client;
  std::string dir;
  TlsPair() {
    World& w = TheWorld();
    server = std::make_unique<AgentIdentity>(AgentIdentity::create(w.Agent("tls-server")));
    client = std::make_unique<AgentIdentity>(AgentIdentity::create(w.Agent("tls-client")));
    dir = std::filesystem::temp_directory_path() / "tw-bench-tls";
    std::filesystem::create_directories(dir);
    for (const auto& [name, agent] :
         {std::pair{"server", server.get()}, {"client", client.get()}}) {
      const internal::Credential c = internal::Access::Of(*agent)->Current();
      Check(tw::base::WriteFile(absl::StrCat(dir, "/", name, ".pem"), c.svid_pem));
      Check(tw::base::WriteFile(absl::StrCat(dir, "/", name, ".key"), c.key->ToPkcs8Pem().view(),
                                0600));
    }
    Check(tw::base::WriteFile(dir + "/bundle.pem", server->bundle_pem()));
  }
  static void Check(const absl::Status& s) {
    if (!s.ok()) throw std::runtime_error(std::string(s.message()));
  }
};
TlsPair& Pair() {
  static auto* p = new TlsPair();
  return *p;
}

int ConnectToLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) return fd;
  if (fd >= 0) close(fd);
  return -1;
}

// Full mTLS handshakes from `client_ctx` to `server_ctx` (which takes ownership of neither),
// the server on a thread of its own; the client waits for one byte the server sends once it
// accepted the client.
void Handshakes(benchmark::State& state, SSL_CTX* server_ctx, SSL_CTX* client_ctx) {
  uint16_t port;
  const int listener = tw::base::ListenOnLoopback(&port, 512);
  std::thread acceptor([&] {
    for (int fd; (fd = accept(listener, nullptr, nullptr)) >= 0; close(fd)) {
      SSL* ssl = SSL_new(server_ctx);
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) == 1) SSL_write(ssl, "k", 1);
      SSL_free(ssl);
    }
  });
  for (auto _ : state) {
    const int fd = ConnectToLoopback(port);
    SSL* ssl = SSL_new(client_ctx);
    SSL_set_fd(ssl, fd);
    char byte;
    if (SSL_connect(ssl) != 1 || SSL_read(ssl, &byte, 1) != 1) state.SkipWithError("refused");
    SSL_free(ssl);
    close(fd);
  }
  shutdown(listener, SHUT_RDWR);  // accept() returns
  acceptor.join();
  close(listener);
  state.SetItemsProcessed(state.iterations());
}

// Between two agents' contexts: each checks the other by SPIFFE rules (chain, ID,
// revocation, the server's scope requirement).
void BM_MtlsHandshakeSdk(benchmark::State& state) {
  TlsPair& p = Pair();
  SSL_CTX* server_ctx = server_tls_context(*p.server, {.scope = "read:transactions"});
  SSL_CTX* client_ctx = client_tls_context(*p.client, {.spiffe_ids = {p.server->spiffe_id()}});
  Handshakes(state, server_ctx, client_ctx);
  SSL_CTX_free(server_ctx);
  SSL_CTX_free(client_ctx);
}
BENCHMARK(BM_MtlsHandshakeSdk)->UseRealTime();

// The floor: OpenSSL's own contexts with the same keys and chains, verifying the peer's
// chain against the bundle and nothing else.
SSL_CTX* PlainContext(bool server, const std::string& dir, const std::string& name) {
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  const std::string pem = absl::StrCat(dir, "/", name, ".pem"),
                    key = absl::StrCat(dir, "/", name, ".key");
  if (SSL_CTX_use_certificate_chain_file(ctx, pem.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_load_verify_locations(ctx, (dir + "/bundle.pem").c_str(), nullptr) != 1) {
    throw std::runtime_error("cannot load " + pem);
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  return ctx;
}
void BM_MtlsHandshakeOpenSsl(benchmark::State& state) {
  TlsPair& p = Pair();
  SSL_CTX* server_ctx = PlainContext(true, p.dir, "server");
  SSL_CTX* client_ctx = PlainContext(false, p.dir, "client");
  Handshakes(state, server_ctx, client_ctx);
  SSL_CTX_free(server_ctx);
  SSL_CTX_free(client_ctx);
}
BENCHMARK(BM_MtlsHandshakeOpenSsl)->UseRealTime();

// The same handshakes between OpenSSL's own tools, with the same keys and chains:
// `openssl s_server -Verify` against `openssl s_time -new` presenting the client's SVID,
// for three seconds (a second with TW_BENCH_SMOKE); handshakes_per_second is its rate.
void BM_MtlsHandshakeOpenSslCli(benchmark::State& state) {
  TlsPair& p = Pair();
  const std::string& d = p.dir;
  uint16_t port;
  const int probe = tw::base::ListenOnLoopback(&port, 512);
  close(probe);  // a free port for s_server (a race with another process is harmless here)
  const std::string server_cmd = absl::StrCat(
      "exec openssl s_server -quiet -www -accept 127.0.0.1:", port, " -cert ", d,
      "/server.pem -key ", d, "/server.key -CAfile ", d,
      "/bundle.pem -Verify 2 -verify_return_error </dev/null >/dev/null 2>&1 & echo $!");
  FILE* started = popen(server_cmd.c_str(), "r");
  int pid = 0;
  if (started == nullptr || fscanf(started, "%d", &pid) != 1) state.SkipWithError("no s_server");
  if (started != nullptr) pclose(started);
  for (int i = 0; i < 100; ++i) {  // until it listens
    const int fd = ConnectToLoopback(port);
    if (fd >= 0) {
      close(fd);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const int seconds = std::getenv("TW_BENCH_SMOKE") != nullptr ? 1 : 3;
  double rate = 0;
  for (auto _ : state) {
    const std::string cmd = absl::StrCat("openssl s_time -connect 127.0.0.1:", port, " -new -time ",
                                         seconds, " -cert ", d, "/client.pem -key ", d,
                                         "/client.key -CAfile ", d, "/bundle.pem -verify 2 2>&1");
    FILE* out = popen(cmd.c_str(), "r");
    const absl::Time start = absl::Now();
    std::string text;
    char buffer[512];
    while (out != nullptr && fgets(buffer, sizeof(buffer), out) != nullptr) text += buffer;
    const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
    if (out == nullptr || pclose(out) != 0) state.SkipWithError("s_time failed");
    int connections = 0;
    const size_t at = text.find(" connections in ");
    if (at == std::string::npos ||
        sscanf(text.c_str() + text.rfind('\n', at) + 1, "%d", &connections) != 1) {
      state.SkipWithError("no rate in s_time's output");
    }
    rate = connections / elapsed;
  }
  if (pid > 0) kill(pid, SIGTERM);
  state.counters["handshakes_per_second"] = rate;
}
BENCHMARK(BM_MtlsHandshakeOpenSslCli)->Iterations(1)->UseRealTime();

void BM_EcdsaP256Verify(benchmark::State& state) {
  auto key = *tw::crypto::SoftwareSigner::Generate(tw::crypto::KeyType::kEcP256);
  tw::base::Bytes msg(64, 1);
  tw::base::Bytes sig = *key->Sign(msg);
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        key->public_key().Verify(tw::crypto::SignatureScheme::kEcdsaSha256, msg, sig));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EcdsaP256Verify)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace trustwarden

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
