// SPIFFE IDs and trust domains, strictly per SPIFFE-ID §2 (see shared/SPIFFE.md §1).
// Values are valid by construction, immutable and thread-compatible.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tw::core {

inline constexpr size_t kMaxSpiffeIdBytes = 2048;    // SPIFFE-ID §2.3
inline constexpr size_t kMaxTrustDomainBytes = 255;  // SPIFFE-ID §2.3 (RFC 3986 host)

// A trust domain name such as "example.org": lowercase a-z 0-9 . - _ only.
class TrustDomain {
 public:
  // Parses a bare name ("example.org"). InvalidArgument with the broken rule otherwise.
  static absl::StatusOr<TrustDomain> FromName(absl::string_view name);
  // Parses a bare name, or takes the trust domain of a SPIFFE ID ("spiffe://example.org",
  // as config files and bundle maps carry it).
  static absl::StatusOr<TrustDomain> FromNameOrId(absl::string_view s);

  const std::string& name() const { return name_; }
  // "spiffe://<name>", the ID of the trust domain itself.
  std::string IdString() const { return "spiffe://" + name_; }

  bool operator==(const TrustDomain&) const = default;
  auto operator<=>(const TrustDomain&) const = default;

 private:
  friend class SpiffeId;
  explicit TrustDomain(std::string name) : name_(std::move(name)) {}
  std::string name_;
};

// A SPIFFE ID "spiffe://<trust-domain>[/<segment>...]".
class SpiffeId {
 public:
  // Strict parse: exact lowercase "spiffe://" scheme, §2.1 trust domain, §2.2 path,
  // no query/fragment, at most 2048 bytes. InvalidArgument naming the rule otherwise.
  static absl::StatusOr<SpiffeId> FromString(absl::string_view id);
  // Builds trust domain + segments; each segment must be a valid §2.2 segment.
  static absl::StatusOr<SpiffeId> FromSegments(const TrustDomain& td,
                                               const std::vector<absl::string_view>& segments);

  const std::string& str() const { return id_; }
  TrustDomain trust_domain() const;
  absl::string_view trust_domain_name() const;
  // The path including its leading '/', or empty for the trust domain's own ID.
  absl::string_view path() const;
  std::vector<absl::string_view> segments() const;
  bool is_trust_domain_id() const { return path().empty(); }
  bool MemberOf(const TrustDomain& td) const { return trust_domain_name() == td.name(); }

  bool operator==(const SpiffeId& o) const { return id_ == o.id_; }
  auto operator<=>(const SpiffeId& o) const { return id_ <=> o.id_; }

 private:
  SpiffeId(std::string id, size_t td_end) : id_(std::move(id)), td_end_(td_end) {}
  std::string id_;
  size_t td_end_;  // index one past the trust domain name
};

}  // namespace tw::core
