// What a subscriber of the revocation stream (API.md: Server-Sent Events, `id:` = sequence,
// `data:` = entry JSON, ": heartbeat N" comments) knows: the instances revoked, the last
// sequence read, and when the stream last proved alive. Not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace trustwarden::internal {

class RevocationStreamReader {
 public:
  struct Known {
    absl::Time expires;  // prunable after
    absl::Time learned;  // when this reader read it (wall clock)
  };

  // Feeds the next stream text, arrived at `now` (on the clock that measures staleness).
  // False when the connection must be dropped and the stream
  // read again after sequence(): an event that cannot be read (never stepped over), a
  // heartbeat that is not "heartbeat N", the server ahead of this reader at two heartbeats
  // running, or an event longer than 1 MiB. Complete events before the failure are kept.
  bool Consume(absl::string_view text, absl::Time now);
  // A new connection: the partial text of the old one is dropped.
  void Restart();
  // Forgets instances whose certificates expired before `now`.
  void Prune(absl::Time now);

  int64_t sequence() const { return sequence_; }
  // The largest bundle spiffe_sequence a heartbeat announced (": bundle B"); 0 before one.
  int64_t bundle_sequence() const { return bundle_sequence_; }
  // The last federation version a heartbeat announced (": federation F", opaque; it changes
  // when the server's federated bundles or foreign grants may have); empty before one.
  const std::string& federation_version() const { return federation_version_; }
  // When a complete event or heartbeat last arrived (a `now` of Consume()); unset before.
  std::optional<absl::Time> last_seen() const { return last_seen_; }
  const absl::flat_hash_map<std::string, Known>& revoked() const { return revoked_; }

 private:
  bool Apply(const std::string& data);

  absl::flat_hash_map<std::string, Known> revoked_;  // by instance id
  int64_t sequence_ = 0;
  int64_t bundle_sequence_ = 0;
  std::string federation_version_;
  std::optional<absl::Time> last_seen_;
  bool behind_at_last_heartbeat_ = false;
  std::string pending_;  // text of an event not yet complete
};

}  // namespace trustwarden::internal
