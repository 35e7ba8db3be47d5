#include "sdk/revocation_watcher.h"

#include <map>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace trustwarden::internal {
namespace {

// The server sends a heartbeat every second: a connection silent this long is dropped
// and made again.
constexpr absl::Duration kSilenceLimit = absl::Seconds(3);
constexpr absl::Duration kFirstBackoff = absl::Milliseconds(100);
constexpr absl::Duration kMaxBackoff = absl::Seconds(5);

}  // namespace

std::shared_ptr<RevocationWatcher> RevocationWatcher::Shared(const std::string& server,
                                                             const std::string& ca_pem) {
  static std::mutex mu;
  static auto* watchers =
      new std::map<std::pair<std::string, std::string>, std::shared_ptr<RevocationWatcher>>();
  std::lock_guard<std::mutex> lock(mu);
  std::shared_ptr<RevocationWatcher>& watcher = (*watchers)[{server, ca_pem}];
  if (watcher == nullptr) watcher = std::make_shared<RevocationWatcher>(server, ca_pem);
  return watcher;
}

RevocationWatcher::RevocationWatcher(std::string server, std::string ca_pem)
    : server_(std::move(server)), ca_pem_(std::move(ca_pem)) {
  reader_ = std::thread([this] { Run(); });
  supervisor_ = std::thread([this] { Supervise(); });
}

RevocationWatcher::~RevocationWatcher() {
  {
    std::lock_guard<std::shared_mutex> lock(mu_);
    stopping_ = true;
    if (client_ != nullptr) client_->Cancel();
  }
  changed_.notify_all();
  reader_.join();
  supervisor_.join();
}

bool RevocationWatcher::IsRevoked(const std::string& instance_id) const {
  // Readers share the lock: verifiers on every core consult it at once.
  std::shared_lock<std::shared_mutex> lock(mu_);
  return stream_.revoked().contains(instance_id);
}

absl::Status RevocationWatcher::CheckFresh(absl::Duration bound) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  const auto last_seen = stream_.last_seen();
  if (!last_seen) {
    return absl::UnavailableError(
        absl::StrCat("the revocation stream of ", server_, " has not connected"));
  }
  const absl::Duration silent = absl::FromChrono(std::chrono::steady_clock::now() - *last_seen);
  if (silent > bound) {
    return absl::UnavailableError(
        absl::StrCat("the revocation stream of ", server_, " has been silent for ",
                     absl::FormatDuration(absl::Trunc(silent, absl::Milliseconds(1))), " (bound ",
                     absl::FormatDuration(bound), ")"));
  }
  return absl::OkStatus();
}

bool RevocationWatcher::WaitLive(absl::Duration timeout) const {
  std::unique_lock<std::shared_mutex> lock(mu_);
  return changed_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                           [this] { return stream_.last_seen().has_value(); });
}

bool RevocationWatcher::WaitRevoked(const std::string& instance_id, absl::Duration timeout) const {
  std::unique_lock<std::shared_mutex> lock(mu_);
  return changed_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                           [&] { return stream_.revoked().contains(instance_id); });
}

std::optional<absl::Time> RevocationWatcher::LearnedAt(const std::string& instance_id) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = stream_.revoked().find(instance_id);
  if (it == stream_.revoked().end()) return std::nullopt;
  return it->second.learned;
}

int64_t RevocationWatcher::sequence() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return stream_.sequence();
}

void RevocationWatcher::Run() {
  absl::Duration backoff = kFirstBackoff;
  std::unique_lock<std::shared_mutex> lock(mu_);
  while (!stopping_) {
    const int64_t after = stream_.sequence();
    stream_.Restart();
    lock.unlock();
    bool delivered = false;
    auto client = tw::net::HttpsClient::Create({.server = server_, .ca_pem = ca_pem_});
    if (client.ok()) {
      {
        std::lock_guard<std::shared_mutex> guard(mu_);
        client_ = client->get();
        if (stopping_) client_->Cancel();
      }
      const std::string resume = absl::StrCat(after);
      (void)(*client)->Stream(absl::StrCat("/v1/revocations/stream?after=", after),
                              {{"Last-Event-ID", resume}}, [&](absl::string_view text) {
                                delivered = true;
                                return Consume(text);
                              });
      std::lock_guard<std::shared_mutex> guard(mu_);
      client_ = nullptr;
    }
    lock.lock();
    // Past entries stay known across reconnects; expired ones are forgotten.
    stream_.Prune(absl::Now());
    if (delivered) backoff = kFirstBackoff;
    changed_.wait_for(lock, absl::ToChronoNanoseconds(backoff), [this] { return stopping_; });
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

// Drops a connection that has gone silent (a dead peer may never close it), so Run()
// connects again.
void RevocationWatcher::Supervise() {
  std::unique_lock<std::shared_mutex> lock(mu_);
  while (!stopping_) {
    changed_.wait_for(lock, std::chrono::seconds(1));
    const auto last_seen = stream_.last_seen();
    if (client_ != nullptr && last_seen &&
        absl::FromChrono(std::chrono::steady_clock::now() - *last_seen) > kSilenceLimit) {
      client_->Cancel();
    }
  }
}

bool RevocationWatcher::Consume(absl::string_view text) {
  std::lock_guard<std::shared_mutex> lock(mu_);
  if (stopping_) return false;
  const bool keep = stream_.Consume(text);
  changed_.notify_all();
  return keep;
}

}  // namespace trustwarden::internal
