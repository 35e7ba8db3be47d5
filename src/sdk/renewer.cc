#include "sdk/renewer.h"

#include <algorithm>
#include <utility>

#include "base/backoff.h"
#include "sdk/background_threads.h"
#include "sdk/status_error.h"

namespace trustwarden::internal {
namespace {

constexpr absl::Duration kFirstRetry = absl::Seconds(1);
constexpr absl::Duration kMaxRetry = absl::Seconds(30);
// A spool with records is offered to the server this often.
constexpr absl::Duration kShipInterval = absl::Seconds(1);

}  // namespace

absl::Time RenewalTime(const Lifetime& lifetime, std::mt19937_64& rng) {
  const absl::Duration life = lifetime.not_after - lifetime.issued;
  const double jitter = std::uniform_real_distribution<double>(-0.05, 0.05)(rng);
  return lifetime.issued + life * (0.5 + jitter);
}

Renewer::Renewer(const tw::base::Clock& clock, Hooks hooks, std::optional<uint64_t> seed)
    : clock_(clock), hooks_(std::move(hooks)), seed_(seed) {}

Renewer::~Renewer() {
  if (exit_stop_) ForgetAtExit(*exit_stop_);
  Stop();
}

void Renewer::Start() {
  thread_ = std::thread([this] { Run(); });
  exit_stop_ = StopAtExit([this] { Stop(); });
  if (!exit_stop_) Stop();  // the process is exiting
}

void Renewer::ShipSoon() {
  absl::MutexLock lock(&mu_);
  kicked_ = true;
}

void Renewer::StopSoon() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
}

void Renewer::Stop() {
  StopSoon();
  absl::MutexLock lock(&join_mu_);
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void Renewer::Run() {
  NameThisThread("tw-renewer");
  std::mt19937_64 rng(seed_ ? *seed_ : std::random_device{}());
  tw::base::Backoff retry(kFirstRetry, kMaxRetry);
  bool shipping = hooks_.ship();
  absl::Time due = RenewalTime(hooks_.lifetime(), rng);
  const auto woken = [this] {
    mu_.AssertReaderHeld();
    return stopping_ || kicked_;
  };
  mu_.Lock();
  while (!stopping_) {
    const absl::Time wake = shipping ? std::min(due, clock_.Now() + kShipInterval) : due;
    if (clock_.AwaitWithDeadline(mu_, absl::Condition(&woken), wake)) {
      if (stopping_) break;
      kicked_ = false;
      shipping = true;
      continue;  // ships a kShipInterval from now
    }
    mu_.Unlock();
    if (shipping) shipping = hooks_.ship();
    if (clock_.Now() < due) {
      mu_.Lock();
      continue;
    }
    const absl::Status renewed = hooks_.renew();
    const Lifetime lifetime = hooks_.lifetime();
    const absl::Time now = clock_.Now();
    mu_.Lock();
    if (renewed.ok()) {
      retry.Reset();
      due = RenewalTime(lifetime, rng);
    } else if (IsRefusal(renewed)) {
      break;
    } else if (now < lifetime.not_after) {
      due = std::min(now + retry.Next(), lifetime.not_after);
    } else {
      due = absl::InfiniteFuture();  // expired: there is nothing left to renew with
    }
  }
  mu_.Unlock();
}

}  // namespace trustwarden::internal
