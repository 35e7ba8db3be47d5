#include "sdk/background_threads.h"

#include <openssl/ssl.h>
#include <pthread.h>

#include <cstdlib>
#include <map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace trustwarden::internal {
namespace {

struct Stops {
  absl::Mutex mu;
  bool installed ABSL_GUARDED_BY(mu) = false;
  bool exiting ABSL_GUARDED_BY(mu) = false;
  uint64_t next ABSL_GUARDED_BY(mu) = 1;
  uint64_t running ABSL_GUARDED_BY(mu) = 0;  // the id whose stop the exit handler runs
  std::map<uint64_t, std::function<void()>> pending ABSL_GUARDED_BY(mu);
};

Stops& Process() {
  static auto* const stops = new Stops();
  return *stops;
}

// The exit handler: every stop, one at a time, outside the lock (a stop joins a thread,
// which may itself register or withdraw).
void RunAll() {
  Stops& s = Process();
  absl::MutexLock lock(&s.mu);
  s.exiting = true;
  while (!s.pending.empty()) {
    auto node = s.pending.extract(s.pending.begin());
    s.running = node.key();
    s.mu.Unlock();
    node.mapped()();
    s.mu.Lock();
    s.running = 0;
  }
}

}  // namespace

std::optional<uint64_t> StopAtExit(std::function<void()> stop) {
  Stops& s = Process();
  absl::MutexLock lock(&s.mu);
  if (s.exiting) return std::nullopt;
  if (!s.installed) {
    // Exit handlers run last-registered first: OpenSSL's is registered at its
    // initialisation, so this one, registered after it, runs before it.
    OPENSSL_init_ssl(0, nullptr);
    s.installed = std::atexit(RunAll) == 0;
  }
  const uint64_t id = s.next++;
  s.pending.emplace(id, std::move(stop));
  return id;
}

void ForgetAtExit(uint64_t id) {
  Stops& s = Process();
  const auto not_running = [&s, id] {
    s.mu.AssertReaderHeld();
    return s.running != id;
  };
  absl::MutexLock lock(&s.mu);
  s.pending.erase(id);
  s.mu.Await(absl::Condition(&not_running));
}

void NameThisThread(const char* name) { pthread_setname_np(pthread_self(), name); }

}  // namespace trustwarden::internal
