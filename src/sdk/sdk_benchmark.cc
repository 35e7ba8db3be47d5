// The SDK end to end against an in-process server on loopback (TLS included): create()
// latency, revocation fan-out to 100 watchers, call() with its ledger events, and Verifier
// throughput beside raw ECDSA P-256 verification measured in the same run. With
// TW_BENCH_SERVER set, create() and call() run against that server instead (with
// TRUSTWARDEN_TOKEN and TRUSTWARDEN_BUNDLE), as the Python SDK's benchmark does to compare
// the two SDKs on one server.
#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "base/file.h"
#include "crypto/software_signer.h"
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
