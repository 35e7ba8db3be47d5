// The server's live view of the revocation log: revoked instances for enforcement, and
// the entries pushed in sequence order to stream subscribers. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "store/store.h"

namespace tw::server {

class RevocationHub {
 public:
  // Called with each published entry, in sequence order, under the hub's lock: it must
  // not block or call back into the hub.
  using Subscriber = std::function<void(const store::RevocationEntry&)>;

  // Starts from the stored log: `entries` (unpruned, ascending) up to `last_sequence`.
  RevocationHub(int64_t last_sequence, std::vector<store::RevocationEntry> entries);

  // Publishes a durable entry. Entries committed concurrently may arrive out of order;
  // each is held back until every lower sequence has been published.
  void Publish(store::RevocationEntry entry);

  bool IsRevoked(absl::string_view instance_id) const;
  // The last published sequence.
  int64_t sequence() const;
  // Published entries with sequence > `after`, at most `limit`.
  std::vector<store::RevocationEntry> EntriesAfter(int64_t after, size_t limit) const;

  // Registers `subscriber` and returns its id; `backlog` receives the entries after
  // `after` published so far, so nothing is missed or repeated.
  uint64_t Subscribe(int64_t after, Subscriber subscriber,
                     std::vector<store::RevocationEntry>* backlog);
  void Unsubscribe(uint64_t id);

  // Forgets entries and revoked instances whose certificates expired before `now`.
  void Prune(absl::Time now);

 private:
  void PublishLocked(store::RevocationEntry entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  int64_t sequence_ ABSL_GUARDED_BY(mu_);
  std::vector<store::RevocationEntry> entries_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, store::RevocationEntry> pending_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Time> revoked_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Subscriber> subscribers_ ABSL_GUARDED_BY(mu_);
  uint64_t next_subscriber_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace tw::server
