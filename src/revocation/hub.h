// The server's live view of the revocation log: revoked instances for enforcement, and
// entries pushed in sequence order to stream subscribers. The log itself stays in the
// store; the hub reads it to fill a gap. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "revocation/entry.h"

namespace tw::revocation {

class Hub {
 public:
  // Called with each published entry, in sequence order, under the hub's lock: it must
  // not block or call back into the hub.
  using Subscriber = std::function<void(const Entry&)>;
  // Reads the durable log: entries with sequence > `after`, ascending, at most `limit`.
  using LogReader = std::function<absl::StatusOr<std::vector<Entry>>(int64_t after, size_t limit)>;

  // Starts from the stored log: `entries` (unpruned) up to `last_sequence`.
  Hub(int64_t last_sequence, const std::vector<Entry>& entries, LogReader log = nullptr);

  // Publishes a durable entry. Entries committed concurrently may arrive out of order: a
  // later one is held back until every lower sequence is published, and the hole is filled
  // from the log at once. A sequence the log no longer holds below a durable one was
  // pruned and is skipped.
  void Publish(Entry entry);
  // Fills the holes below held entries from the log (Publish does it; the server's upkeep
  // calls it again in case the log could not be read then).
  void FillGaps();

  bool IsRevoked(absl::string_view instance_id) const;
  // The last published sequence.
  int64_t sequence() const;

  // Registers `subscriber` for the entries published from now on and returns its id; the
  // sequence published at that moment goes to `*at` (the subscriber's backlog is the log up
  // to it).
  uint64_t Subscribe(Subscriber subscriber, int64_t* at);
  void Unsubscribe(uint64_t id);

  // Forgets revoked instances whose certificates expired before `now`.
  void Prune(absl::Time now);

 private:
  void PublishLocked(const Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Publishes the held entries that follow the published sequence.
  void DrainLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const LogReader log_;
  absl::Mutex fill_mu_;  // one gap filler at a time
  mutable absl::Mutex mu_;
  int64_t sequence_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, Entry> pending_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Time> revoked_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Subscriber> subscribers_ ABSL_GUARDED_BY(mu_);
  uint64_t next_subscriber_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace tw::revocation
