#include "sdk/revocation_stream.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"

namespace trustwarden::internal {
namespace {

constexpr size_t kMaxEvent = 1 << 20;  // entries are small

}  // namespace

bool RevocationStreamReader::Consume(absl::string_view text, absl::Time now) {
  pending_.append(text.data(), text.size());
  size_t end;
  while ((end = pending_.find("\n\n")) != std::string::npos) {
    const std::string event = pending_.substr(0, end);
    pending_.erase(0, end + 2);
    std::string data;
    std::optional<int64_t> id, heartbeat;
    for (absl::string_view line : absl::StrSplit(event, '\n')) {
      int64_t n;
      if (absl::ConsumePrefix(&line, "data:")) {
        absl::StrAppend(&data, absl::StripLeadingAsciiWhitespace(line));
      } else if (absl::ConsumePrefix(&line, "id:")) {
        if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &n) || n < 0) return false;
        id = n;
      } else if (absl::ConsumePrefix(&line, ": heartbeat")) {
        if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &n)) return false;
        heartbeat = n;
      } else if (absl::ConsumePrefix(&line, ": bundle")) {
        // Announced by newer servers; anything else there is ignored, as comments are.
        if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &n) && n > bundle_sequence_) {
          bundle_sequence_ = n;
        }
      } else if (absl::ConsumePrefix(&line, ": federation ")) {
        // Opaque, and bounded: it is compared, never interpreted.
        if (line.size() <= 64) federation_version_ = std::string(line);
      }
    }
    if (id || !data.empty()) {
      // An entry that cannot be read is a broken stream: read it again, never step over it.
      if (!id || data.empty() || !Apply(data)) return false;
      sequence_ = std::max(sequence_, *id);
    } else if (heartbeat) {
      // Ahead of us at two heartbeats running (one may race an entry on its way): an entry
      // was lost.
      const bool behind = *heartbeat > sequence_;
      if (behind && behind_at_last_heartbeat_) return false;
      behind_at_last_heartbeat_ = behind;
    } else {
      continue;  // another comment: not a sign of life
    }
    last_seen_ = now;
  }
  return pending_.size() <= kMaxEvent;
}

void RevocationStreamReader::Restart() {
  pending_.clear();
  behind_at_last_heartbeat_ = false;
}

void RevocationStreamReader::Prune(absl::Time now) {
  absl::erase_if(revoked_, [now](const auto& e) { return e.second.expires < now; });
}

bool RevocationStreamReader::Apply(const std::string& data) {
  nlohmann::json entry = nlohmann::json::parse(data, nullptr, false);
  if (!entry.is_object() || !entry.contains("instances") || !entry["instances"].is_array()) {
    return false;
  }
  for (const nlohmann::json& id : entry["instances"]) {
    if (!id.is_string()) return false;
  }
  absl::Time expires = absl::InfiniteFuture();
  std::string err;
  if (entry.contains("expires_at") && entry["expires_at"].is_string() &&
      !absl::ParseTime(absl::RFC3339_full, entry["expires_at"].get<std::string>(), &expires,
                       &err)) {
    expires = absl::InfiniteFuture();
  }
  const absl::Time now = absl::Now();
  for (const nlohmann::json& id : entry["instances"]) {
    revoked_.try_emplace(id.get<std::string>(), Known{expires, now});
  }
  return true;
}

}  // namespace trustwarden::internal
