#include "server/revocation_hub.h"

#include <algorithm>

namespace tw::server {

RevocationHub::RevocationHub(int64_t last_sequence, std::vector<store::RevocationEntry> entries)
    : sequence_(last_sequence) {
  for (const store::RevocationEntry& e : entries) {
    for (const std::string& id : e.instances) revoked_[id] = e.expires_at;
  }
  entries_ = std::move(entries);
}

void RevocationHub::Publish(store::RevocationEntry entry) {
  absl::MutexLock lock(&mu_);
  if (entry.sequence <= sequence_) return;  // already known
  pending_.emplace(entry.sequence, std::move(entry));
  while (!pending_.empty() && pending_.begin()->first == sequence_ + 1) {
    store::RevocationEntry next = std::move(pending_.begin()->second);
    pending_.erase(pending_.begin());
    PublishLocked(std::move(next));
  }
}

void RevocationHub::PublishLocked(store::RevocationEntry entry) {
  sequence_ = entry.sequence;
  for (const std::string& id : entry.instances) revoked_[id] = entry.expires_at;
  for (auto& [id, subscriber] : subscribers_) subscriber(entry);
  entries_.push_back(std::move(entry));
}

bool RevocationHub::IsRevoked(absl::string_view instance_id) const {
  absl::ReaderMutexLock lock(&mu_);
  return revoked_.contains(instance_id);
}

int64_t RevocationHub::sequence() const {
  absl::ReaderMutexLock lock(&mu_);
  return sequence_;
}

std::vector<store::RevocationEntry> RevocationHub::EntriesAfter(int64_t after, size_t limit) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = std::upper_bound(entries_.begin(), entries_.end(), after,
                             [](int64_t a, const auto& e) { return a < e.sequence; });
  std::vector<store::RevocationEntry> out;
  for (; it != entries_.end() && out.size() < limit; ++it) out.push_back(*it);
  return out;
}

uint64_t RevocationHub::Subscribe(int64_t after, Subscriber subscriber,
                                  std::vector<store::RevocationEntry>* backlog) {
  absl::MutexLock lock(&mu_);
  auto it = std::upper_bound(entries_.begin(), entries_.end(), after,
                             [](int64_t a, const auto& e) { return a < e.sequence; });
  backlog->assign(it, entries_.end());
  uint64_t id = next_subscriber_++;
  subscribers_.emplace(id, std::move(subscriber));
  return id;
}

void RevocationHub::Unsubscribe(uint64_t id) {
  absl::MutexLock lock(&mu_);
  subscribers_.erase(id);
}

void RevocationHub::Prune(absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::erase_if(entries_, [&](const auto& e) { return e.expires_at < now; });
  absl::erase_if(revoked_, [&](const auto& kv) { return kv.second < now; });
}

}  // namespace tw::server
