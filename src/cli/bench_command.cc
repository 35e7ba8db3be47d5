// `trustwarden bench issue`: creates identities over HTTPS with keep-alive from N
// connections and reports throughput and latency percentiles, next to the raw ECDSA
// P-256 sign and verify rates measured in the same run (the physical floor).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "cli/api_client.h"
#include "cli/command.h"
#include "cli/output.h"
#include "core/certificate.h"
#include "core/x509_issuer.h"
#include "crypto/software_signer.h"

namespace tw::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchFlags {
  ClientFlags client;
  int concurrency = 32;
  double duration = 10;
  double warmup = 1;
  double rate = 0;  // 0: as fast as possible (closed loop)
  bool json = false;
};

// Operations per second of `op` over about `seconds` of one thread.
template <typename F>
double RatePerSecond(F op, double seconds) {
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  uint64_t n = 0;
  auto start = Clock::now();
  while (Clock::now() < end) {
    for (int i = 0; i < 64; ++i) op();
    n += 64;
  }
  return static_cast<double>(n) / std::chrono::duration<double>(Clock::now() - start).count();
}

absl::Status BenchIssue(const BenchFlags& f) {
  TW_ASSIGN_OR_RETURN(auto key, crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256));
  // The floor, measured first on an idle machine: one signature and one verification.
  const base::Bytes message(200, 0x42);
  TW_ASSIGN_OR_RETURN(base::Bytes signature, key->Sign(message));
  const double sign_rate = RatePerSecond([&] { key->Sign(message).IgnoreError(); }, 1.0);
  const double verify_rate = RatePerSecond(
      [&] {
        key->public_key()
            .Verify(crypto::SignatureScheme::kEcdsaSha256, message, signature)
            .IgnoreError();
      },
      1.0);

  // Every request carries the same CSR: the server signs a new certificate (and creates
  // a new instance) for each, and the client's own key work stays out of the measurement.
  TW_ASSIGN_OR_RETURN(base::Bytes csr, core::BuildCertificateRequest(*key));
  const std::string body = nlohmann::json{{"name", "bench/load/agent"},
                                          {"scope", {"read:bench"}},
                                          {"ttl", "10m"},
                                          {"csr", core::PemEncode("CERTIFICATE REQUEST", csr)}}
                               .dump();

  std::vector<std::unique_ptr<net::HttpsClient>> clients;
  for (int i = 0; i < f.concurrency; ++i) {
    TW_ASSIGN_OR_RETURN(auto client, Connect(f.client));
    // Connect now, outside the measurement.
    TW_RETURN_IF_ERROR(client->Request("GET", "/healthz").status());
    clients.push_back(std::move(client));
  }
  const char* env_token = std::getenv("TRUSTWARDEN_TOKEN");
  const std::string token = !f.client.token.empty() ? f.client.token
                            : env_token != nullptr  ? env_token
                                                    : "";
  const net::Headers headers = {{"Authorization", absl::StrCat("Bearer ", token)}};

  const auto start = Clock::now() + std::chrono::milliseconds(100);
  const auto measure_from =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(f.warmup));
  const auto end = measure_from + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(f.duration));
  std::vector<std::vector<double>> latencies(f.concurrency);
  std::atomic<uint64_t> errors{0};
  std::atomic<bool> first_error_printed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < f.concurrency; ++t) {
    threads.emplace_back([&, t] {
      // Open loop at f.rate: request k of thread t is due at start + (k*N + t)/rate, and
      // latency counts from when it was due (no coordinated omission).
      const double interval = f.rate > 0 ? f.concurrency / f.rate : 0;
      auto due = start + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(f.rate > 0 ? t / f.rate : 0));
      std::this_thread::sleep_until(start);
      while (true) {
        if (f.rate > 0) std::this_thread::sleep_until(due);
        auto sent = f.rate > 0 ? due : Clock::now();
        if (sent >= end) break;
        auto response = clients[t]->Request("POST", "/v1/identities", body, headers);
        auto done = Clock::now();
        if (!response.ok() || response->status != 201) {
          errors.fetch_add(1);
          if (!first_error_printed.exchange(true)) {
            std::cerr << "bench: first error: "
                      << (response.ok()
                              ? absl::StrCat("HTTP ", response->status, " ", response->body)
                              : response.status().ToString())
                      << "\n";
          }
        } else if (sent >= measure_from) {
          latencies[t].push_back(std::chrono::duration<double>(done - sent).count());
        }
        if (f.rate > 0) {
          due +=
              std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval));
        }
      }
    });
  }
  for (auto& th : threads) th.join();

  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    if (all.empty()) return 0.0;
    size_t i = std::min(all.size() - 1, static_cast<size_t>(p * static_cast<double>(all.size())));
    return all[i] * 1000;
  };
  const double throughput = static_cast<double>(all.size()) / f.duration;
  const double floor_per_core = 1.0 / (1.0 / sign_rate + 1.0 / verify_rate);
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  nlohmann::json report{{"issuances", all.size()},
                        {"errors", errors.load()},
                        {"concurrency", f.concurrency},
                        {"target_rate", f.rate},
                        {"duration_s", f.duration},
                        {"throughput_per_s", throughput},
                        {"p50_ms", pct(0.50)},
                        {"p99_ms", pct(0.99)},
                        {"p999_ms", pct(0.999)},
                        {"max_ms", all.empty() ? 0.0 : all.back() * 1000},
                        {"ecdsa_p256_sign_per_s", sign_rate},
                        {"ecdsa_p256_verify_per_s", verify_rate},
                        {"floor_per_core_per_s", floor_per_core},
                        {"cores", cores},
                        {"vs_floor_all_cores", throughput / (floor_per_core * cores)}};
  if (f.json) {
    std::cout << report.dump() << "\n";
  } else {
    std::cout << absl::StrFormat(
        "issuances %d in %.1fs (%d errors), concurrency %d%s\n"
        "throughput %.0f/s   p50 %.2f ms   p99 %.2f ms   p999 %.2f ms   max %.2f ms\n"
        "floor: ECDSA P-256 sign %.0f/s, verify %.0f/s -> one sign + one verify = %.0f/s "
        "per core; throughput is %.0f%% of that on all %d cores\n",
        all.size(), f.duration, errors.load(), f.concurrency,
        f.rate > 0 ? absl::StrFormat(", open loop at %.0f/s", f.rate) : std::string(), throughput,
        pct(0.5), pct(0.99), pct(0.999), report["max_ms"].get<double>(), sign_rate, verify_rate,
        floor_per_core, 100 * throughput / (floor_per_core * cores), cores);
  }
  if (errors.load() > 0) {
    return absl::UnavailableError(absl::StrCat(errors.load(), " requests failed"));
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterBenchCommand(CLI::App& app, Action* action) {
  CLI::App* bench = app.add_subcommand("bench", "Load generators");
  bench->require_subcommand(1);
  auto f = std::make_shared<BenchFlags>();
  CLI::App* issue = bench->add_subcommand("issue", "Create identities over HTTPS under load");
  issue->add_option("--concurrency", f->concurrency, "Connections (default 32)")
      ->check(CLI::Range(1, 4096));
  issue->add_option("--duration", f->duration, "Measured seconds (default 10)")
      ->check(CLI::Range(0.1, 3600.0));
  issue->add_option("--warmup", f->warmup, "Unmeasured seconds first (default 1)")
      ->check(CLI::Range(0.0, 600.0));
  issue->add_option("--rate", f->rate, "Requests per second, open loop (default: max)")
      ->check(CLI::Range(0.0, 1e6));
  AddJsonFlag(issue, &f->json);
  AddClientFlags(issue, &f->client);
  issue->callback([f, action] {
    *action = [f] {
      absl::Status s = BenchIssue(*f);
      return s.ok() ? 0 : Fail(s);
    };
  });
}

}  // namespace tw::cli
