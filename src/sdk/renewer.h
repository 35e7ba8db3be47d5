// Keeps one identity's certificate fresh: renews it at half-life (give or take 5%) on the
// identity's clock, retries a failure with backoff until the certificate expires, and
// stops on a refusal or Stop(). Its thread also offers the identity's spooled ledger
// records to the server every second while there are any. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/clock.h"

namespace trustwarden::internal {

// When a certificate arrived (its notBefore is backdated) and when it expires.
struct Lifetime {
  absl::Time issued;
  absl::Time not_after;
};

// When to renew a certificate of `lifetime`: halfway through it, moved by up to 5% of it
// either way (drawn from `rng`) so that identities created together renew apart.
absl::Time RenewalTime(const Lifetime& lifetime, std::mt19937_64& rng);

class Renewer {
 public:
  // What the renewer does for its identity; each is called on the renewer's thread only.
  struct Hooks {
    std::function<Lifetime()> lifetime;  // of the current certificate
    // One renewal attempt; when it succeeds, lifetime() is the new certificate's. A
    // refusal (IsRefusal: the server no longer accepts the instance) ends the renewals.
    std::function<absl::Status()> renew;
    // Offers spooled ledger records to the server; true while some remain.
    std::function<bool()> ship;
  };

  // `clock` paces everything, and must outlive the renewer. The jitter is drawn with
  // `seed` (tests fix it), or else with one from std::random_device, taken on the
  // renewer's thread: it costs tens of microseconds, which creation need not wait for.
  Renewer(const tw::base::Clock& clock, Hooks hooks, std::optional<uint64_t> seed = std::nullopt);
  ~Renewer();  // Stop()
  Renewer(const Renewer&) = delete;
  Renewer& operator=(const Renewer&) = delete;

  // Starts the thread: it ships first (a crashed process may have left records), then
  // renews on schedule. The process's exit stops it too.
  void Start();
  // Records were just spooled: the thread ships them a second from now, and every second
  // after until none remain.
  void ShipSoon() ABSL_LOCKS_EXCLUDED(mu_);
  // Asks the thread to end, without waiting for it.
  void StopSoon() ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the thread and waits for it (unless called on it). Idempotent, from any thread.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_, join_mu_);

 private:
  void Run() ABSL_LOCKS_EXCLUDED(mu_);

  const tw::base::Clock& clock_;
  const Hooks hooks_;
  const std::optional<uint64_t> seed_;
  absl::Mutex mu_;  // taken last: no hook is called with it held
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;  // ShipSoon() since the thread last looked
  absl::Mutex join_mu_;                       // one Stop() joins at a time
  std::thread thread_;
  std::optional<uint64_t> exit_stop_;  // this renewer's stop at process exit
};

}  // namespace trustwarden::internal
