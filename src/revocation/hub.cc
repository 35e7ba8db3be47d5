#include "revocation/hub.h"

#include "spdlog/spdlog.h"

namespace tw::revocation {

Hub::Hub(int64_t last_sequence, const std::vector<Entry>& entries, LogReader log)
    : log_(std::move(log)), sequence_(last_sequence) {
  for (const Entry& e : entries) {
    for (const std::string& id : e.instances) revoked_[id] = e.expires_at;
  }
}

void Hub::Publish(Entry entry) {
  {
    absl::MutexLock lock(&mu_);
    if (entry.sequence <= sequence_) return;  // already known
    pending_.emplace(entry.sequence, std::move(entry));
    DrainLocked();
    if (pending_.empty()) return;
  }
  FillGaps();
}

void Hub::FillGaps() {
  if (log_ == nullptr) return;
  // A hole below a durable entry: its own publisher may be a moment behind, or gone. The
  // log has every entry committed before the one held (the store commits in sequence
  // order), so read them now rather than wait.
  absl::MutexLock fill(&fill_mu_);
  int64_t after, until;
  {
    absl::MutexLock lock(&mu_);
    if (pending_.empty()) return;
    after = sequence_;
    until = pending_.begin()->first;
  }
  auto missing = log_(after, static_cast<size_t>(until - after - 1));
  absl::MutexLock lock(&mu_);
  if (!missing.ok()) {
    // Held until FillGaps() runs again (the next publication, or the server's upkeep).
    spdlog::error("revocation hub: reading the log after {}: {}", after,
                  missing.status().ToString());
    return;
  }
  for (Entry& e : *missing) {
    if (e.sequence > sequence_ && e.sequence < until) pending_.emplace(e.sequence, std::move(e));
  }
  while (sequence_ < until - 1) {
    auto next = pending_.find(sequence_ + 1);
    if (next == pending_.end()) {
      ++sequence_;  // pruned from the log: nothing left to enforce
      continue;
    }
    PublishLocked(next->second);
    pending_.erase(next);
  }
  DrainLocked();
}

void Hub::DrainLocked() {
  while (!pending_.empty() && pending_.begin()->first == sequence_ + 1) {
    PublishLocked(pending_.begin()->second);
    pending_.erase(pending_.begin());
  }
}

void Hub::PublishLocked(const Entry& entry) {
  sequence_ = entry.sequence;
  for (const std::string& id : entry.instances) revoked_[id] = entry.expires_at;
  for (auto& [id, subscriber] : subscribers_) subscriber(entry);
}

bool Hub::IsRevoked(absl::string_view instance_id) const {
  absl::ReaderMutexLock lock(&mu_);
  return revoked_.contains(instance_id);
}

int64_t Hub::sequence() const {
  absl::ReaderMutexLock lock(&mu_);
  return sequence_;
}

uint64_t Hub::Subscribe(Subscriber subscriber, int64_t* at) {
  absl::MutexLock lock(&mu_);
  *at = sequence_;
  uint64_t id = next_subscriber_++;
  subscribers_.emplace(id, std::move(subscriber));
  return id;
}

void Hub::Unsubscribe(uint64_t id) {
  absl::MutexLock lock(&mu_);
  subscribers_.erase(id);
}

void Hub::Prune(absl::Time now) {
  absl::MutexLock lock(&mu_);
  absl::erase_if(revoked_, [&](const auto& kv) { return kv.second < now; });
}

}  // namespace tw::revocation
