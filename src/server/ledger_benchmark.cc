// Ledger rates beside their physical floors in the same run: SHA-256 leaf hashing and raw
// ECDSA P-256 verification; durable signature-checked appends; and, over a 1,000,000-event
// ledger, inclusion proofs, the audit trace and instance query routes, and offline
// verification of the export.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "base/file.h"
#include "ca/rotating_ca.h"
#include "core/certificate.h"
#include "core/x509_verifier.h"
#include "crypto/software_signer.h"
#include "ledger/service.h"
#include "ledger/verifier.h"
#include "server/api.h"
#include "server/services.h"
#include "store/sqlite/sqlite_store.h"

namespace tw::server {
namespace {

constexpr int kAgents = 64;
// The forensic benchmarks' ledger: 1M events, fewer for a smoke run (TW_BENCH_LEDGER_EVENTS).
const uint64_t kBigLedger = [] {
  const char* env = std::getenv("TW_BENCH_LEDGER_EVENTS");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : uint64_t{1'000'000};
}();
constexpr uint16_t kBatch = 125;
constexpr int kAppendIterations = 200;  // batches per thread: long enough to span checkpoints

std::string TempDir(const char* name) {
  std::string dir = (std::filesystem::temp_directory_path() / name).string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

struct Agent {
  std::unique_ptr<crypto::SoftwareSigner> key;
  base::Bytes cert;
  std::optional<core::VerifiedX509Svid> svid;
  store::IdentityRecord record;
};

// A CA, its agents, and a server's ledger over a fresh SQLite store.
struct World {
  std::string dir;
  std::unique_ptr<Services> services;  // wired as the server wires them, without limits
  ca::RotatingCa* ca;
  store::Store* store;
  ledger::Service* ledger;
  Api* api;
  std::vector<Agent> agents;
  std::string admin;

  explicit World(const char* name) : dir(TempDir(name)) {
    auto td = *core::TrustDomain::FromName("trustwarden");
    const ServerConfig config{.data_dir = dir, .ledger_events_per_instance = 0};
    services =
        *Services::Wire(config, *store::SqliteStore::Open(dir + "/trustwarden.db"),
                        *OpenServerKeys(config, base::Clock::System()), base::Clock::System());
    ca = services->ca.get();
    store = services->store.get();
    ledger = services->ledger.get();
    api = services->api.get();
    admin = services->new_admin_token;
    auto bundles = std::make_shared<core::BundleSet>();
    bundles->Put(*ca->bundle());
    core::X509Verifier verifier(bundles, {.attribute_trust_domains = {td}});
    absl::Time now = absl::Now();
    for (int i = 0; i < kAgents; ++i) {
      Agent a;
      a.key = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
      std::string id = absl::StrCat("inst-bench", 1000000 + i);
      core::LeafRequest leaf{
          .spiffe_id = *core::SpiffeId::FromString(
              absl::StrCat("spiffe://trustwarden/acme-corp/finance-team/agent", i % 8, "/", id)),
          .not_before = now - absl::Minutes(1),
          .not_after = now + absl::Hours(12)};
      leaf.attributes.principal = "admin";
      leaf.attributes.policy_version = 1;
      a.cert = *ca->issuer()->IssueLeaf(leaf, a.key->public_key());
      a.svid = *verifier.Verify({base::ByteView(a.cert)});
      a.record = store::IdentityRecord{.instance_id = id,
                                       .spiffe_id = a.svid->spiffe_id.str(),
                                       .name = absl::StrCat("acme-corp/finance-team/agent", i % 8),
                                       .principal = "admin",
                                       .policy_version = 1,
                                       .serial_hex = a.svid->serial_hex,
                                       .trust_level = "high",
                                       .not_before = leaf.not_before,
                                       .not_after = leaf.not_after,
                                       .created_at = now};
      agents.push_back(std::move(a));
    }
    for (const Agent& a : agents) (void)store->InsertIdentity(a.record, nullptr);
  }
  ~World() {
    services.reset();
    std::filesystem::remove_all(dir);
  }

  ledger::Event Action(const Agent& a, uint64_t n) const {
    return ledger::Event{.id = ledger::NewEventId(),
                         .time_ms = absl::ToUnixMillis(absl::Now()),
                         .type = "action",
                         .instance = a.record.spiffe_id,
                         .serial = a.record.serial_hex,
                         .principal = "admin",
                         .policy_version = 1,
                         .resource = absl::StrCat("postgres://ledger-db/records/", n % 1000),
                         .action = n % 10 == 0 ? "delete:records" : "read:transactions",
                         .decision = n % 10 == 0 ? "deny" : "allow",
                         .reason = n % 10 == 0 ? "scope delete:records not granted" : "",
                         .input_digest = ledger::DigestOf(absl::StrCat("prompt ", n))};
  }
};

// A signed batch as an agent sends it: base64url events and the signature.
struct WireBatch {
  int agent;
  std::vector<std::string> events;
  std::string signature;
};

WireBatch MakeWireBatch(const World& w, int agent, int size, uint64_t seed) {
  WireBatch b{agent, {}, {}};
  std::vector<std::string> bytes;
  for (int i = 0; i < size; ++i)
    bytes.push_back(ledger::EncodeEvent(w.Action(w.agents[agent], seed + i)));
  base::Bytes sig = *ledger::SignBatch(*w.agents[agent].key, bytes);
  for (const std::string& e : bytes) b.events.push_back(base::Base64UrlEncode(e));
  b.signature = base::Base64UrlEncode(base::AsChars(sig));
  return b;
}

void BM_Sha256Leaf(benchmark::State& state) {
  std::string entry(600, 'x');
  for (auto _ : state) benchmark::DoNotOptimize(ledger::LeafHash(base::AsBytes(entry)));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Sha256Leaf);

void BM_EcdsaP256Verify(benchmark::State& state) {
  auto key = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  base::Bytes msg(64, 1);
  base::Bytes sig = *key->Sign(msg);
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        key->public_key().Verify(crypto::SignatureScheme::kEcdsaSha256, msg, sig));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EcdsaP256Verify);

// POST /v1/ledger/events minus TLS: decode, canonical check, subject check, one ECDSA
// verify per batch, durable group-committed append with subtree hashes.
void BM_DurableSignedAppend(benchmark::State& state) {
  static World* world = nullptr;
  static std::vector<std::vector<WireBatch>>* pools = nullptr;
  const int batch = static_cast<int>(state.range(0));
  if (state.thread_index() == 0) {
    world = new World("tw-bench-append");
    pools = new std::vector<std::vector<WireBatch>>(state.threads());
    for (int t = 0; t < state.threads(); ++t) {
      for (int i = 0; i < kAppendIterations; ++i) {
        (*pools)[t].push_back(MakeWireBatch(*world, t % kAgents, batch, i * 1000 + t));
      }
    }
  }
  size_t next = 0;
  for (auto _ : state) {
    const WireBatch& b = (*pools)[state.thread_index()][next++ % (*pools)[0].size()];
    const Agent& a = world->agents[b.agent];
    auto appended = world->ledger->AppendSigned(*a.svid, a.cert, b.events, b.signature);
    if (!appended.ok()) state.SkipWithError(std::string(appended.status().message()).c_str());
  }
  state.SetItemsProcessed(state.iterations() * batch);
  if (state.thread_index() == 0) {
    delete pools;
    delete world;
  }
}
BENCHMARK(BM_DurableSignedAppend)
    ->Arg(64)
    ->Threads(1)
    ->Threads(4)
    ->Threads(8)
    ->UseRealTime()
    ->Iterations(kAppendIterations);

// The 1,000,000-event ledger, built once through the store (batches of 125 signed events).
World* big_world = nullptr;  // built on first use, removed (with its files) at exit

World& BigWorld() {
  static World* w = big_world = [] {
    auto* world = new World("tw-bench-1m");
    std::vector<std::string> bytes;
    std::vector<ledger::Event> events;
    for (uint64_t done = 0; done < kBigLedger;) {
      const Agent& a = world->agents[(done / kBatch) % kAgents];
      bytes.clear();
      events.clear();
      for (int i = 0; i < kBatch; ++i) {
        events.push_back(world->Action(a, done + i));
        bytes.push_back(ledger::EncodeEvent(events.back()));
      }
      ledger::MemoryTree tree = ledger::BatchTree(bytes);
      base::Bytes sig = *ledger::SignBatch(*a.key, bytes);
      store::LedgerAppend batch;
      batch.signer.signer = {ledger::SignerKind::kSvid, a.cert};
      batch.signer.id = batch.signer.signer.id();
      for (size_t i = 0; i < bytes.size(); ++i) {
        batch.entries.push_back(
            ledger::Entry{.signer_kind = ledger::SignerKind::kSvid,
                          .signer_id = batch.signer.id,
                          .batch_size = kBatch,
                          .batch_position = static_cast<uint16_t>(i),
                          .batch_path = *ledger::InclusionProof(tree, i, kBatch),
                          .signature = sig,
                          .event = bytes[i]});
      }
      batch.events = events;
      auto appended = world->store->AppendLedger(batch);
      if (!appended.ok()) abort();
      done = appended->tree_size;
    }
    (void)world->ledger->SignTreeHead();
    return world;
  }();
  return *w;
}

void BM_InclusionProof_1M(benchmark::State& state) {
  World& w = BigWorld();
  std::mt19937_64 rng(1);
  const uint64_t size = w.ledger->LatestTreeHead()->tree_size;
  for (auto _ : state) benchmark::DoNotOptimize(w.ledger->InclusionProof(rng() % size, size));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_InclusionProof_1M)->Unit(benchmark::kMicrosecond);

HttpRequest Get(const World& w, std::string target) {
  HttpRequest r;
  r.method = "GET";
  (void)ParseTarget(target, &r);
  r.authorization = "Bearer " + w.admin;
  r.remote = "127.0.0.1";
  return r;
}

void BM_AuditTrace_1M(benchmark::State& state) {
  World& w = BigWorld();
  std::vector<std::string> ids;
  auto rows = w.store->LedgerEntries(500000, 500100);
  if (!rows.ok() || rows->empty()) {
    state.SkipWithError("no entries");
    return;
  }
  for (const ledger::EntryRow& row : *rows) ids.push_back(row.event_id);
  size_t i = 0;
  for (auto _ : state) {
    HttpResponse r = w.api->Handle(Get(w, "/v1/audit/trace/" + ids[i++ % ids.size()]));
    if (r.status != 200) state.SkipWithError(r.body.c_str());
  }
}
BENCHMARK(BM_AuditTrace_1M)->Unit(benchmark::kMillisecond);

void BM_AuditQueryInstance_1M(benchmark::State& state) {
  World& w = BigWorld();
  size_t i = 0, events = 0;
  for (auto _ : state) {
    const Agent& a = w.agents[i++ % kAgents];
    HttpResponse r = w.api->Handle(Get(w, "/v1/audit/events?instance=" + a.record.instance_id));
    if (r.status != 200) state.SkipWithError(r.body.c_str());
    events += r.body.size();
  }
  state.counters["bytes_per_reply"] = static_cast<double>(events) / state.iterations();
}
BENCHMARK(BM_AuditQueryInstance_1M)->Unit(benchmark::kMillisecond);

void BM_OfflineVerify_1M(benchmark::State& state) {
  World& w = BigWorld();
  const std::string file = w.dir + "/export.bin";
  {
    std::ofstream out(file, std::ios::binary);
    ledger::ExportWriter writer([&out](base::ByteView b) {
      out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
      return absl::OkStatus();
    });
    (void)w.store->ExportLedger(
        w.ledger->ExportHeaderTemplate(), 0, kBigLedger * 2,
        [&writer](const ledger::ExportRecord& r) { return writer.Write(r); });
  }
  uint64_t entries = 0;
  const ledger::ExportHeader anchors = w.ledger->ExportHeaderTemplate();
  for (auto _ : state) {
    std::ifstream in(file, std::ios::binary);
    ledger::VerifyReport report =
        ledger::VerifyExport(in, {.ledger_key = anchors.ledger_key, .bundle = anchors.bundle_json});
    if (!report.ok()) state.SkipWithError(report.error.c_str());
    entries += report.entries;
  }
  state.SetItemsProcessed(static_cast<int64_t>(entries));
}
BENCHMARK(BM_OfflineVerify_1M)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();

}  // namespace
}  // namespace tw::server

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  delete tw::server::big_world;  // its database and export are gigabytes in the temp dir
  return 0;
}
