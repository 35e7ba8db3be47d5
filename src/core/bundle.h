// SPIFFE trust bundles (SPIFFE Trust Domain and Bundle §4): the X.509 and JWT
// authorities of one trust domain, and a thread-safe set of bundles keyed by trust domain.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "core/certificate.h"
#include "core/spiffe_id.h"
#include "crypto/public_key.h"
#include "nlohmann/json.hpp"

namespace tw::core {

struct X509Authority {
  Certificate certificate;
  crypto::PublicKey key;
};

struct JwtAuthority {
  std::string key_id;
  crypto::PublicKey key;
};

// One trust domain's bundle. Immutable once shared through BundleSet.
class Bundle {
 public:
  explicit Bundle(TrustDomain trust_domain) : trust_domain_(std::move(trust_domain)) {}

  // Parses a SPIFFE bundle (JSON) or PEM CA certificates, leniently per §4: JWKs with
  // an unknown kty or use, an x509-svid entry without x5c, a jwt-svid entry without
  // kid, or a key that does not parse are ignored. The trust domain is `trust_domain`
  // when given, else the one named by the CA certificates' spiffe://TD URI SAN
  // (InvalidArgument when there is none or they disagree).
  static absl::StatusOr<Bundle> Parse(absl::string_view text,
                                      std::optional<TrustDomain> trust_domain = std::nullopt);

  const TrustDomain& trust_domain() const { return trust_domain_; }
  // Adds a CA certificate. InvalidArgument when it does not parse or its key is unsupported.
  absl::Status AddX509Authority(base::Bytes der);
  void AddJwtAuthority(std::string key_id, crypto::PublicKey key);
  const std::vector<std::shared_ptr<const X509Authority>>& x509_authorities() const {
    return x509_;
  }
  const std::vector<JwtAuthority>& jwt_authorities() const { return jwt_; }
  std::optional<uint64_t> sequence() const { return sequence_; }
  void set_sequence(uint64_t s) { sequence_ = s; }
  std::optional<int64_t> refresh_hint_seconds() const { return refresh_hint_; }
  void set_refresh_hint_seconds(int64_t s) { refresh_hint_ = s; }

  // The SPIFFE bundle JSON, emitted strictly: one certificate per x509-svid JWK with
  // matching key members, kid on every jwt-svid JWK.
  std::string ToJson() const;
  // The X.509 authorities as PEM certificates.
  std::string ToPem() const;

 private:
  friend absl::StatusOr<std::vector<Bundle>> ParseBundleMap(absl::string_view text);
  struct Contents;
  static absl::Status ReadJson(const nlohmann::json& doc, Contents* out);
  static absl::StatusOr<Bundle> FromContents(Contents contents,
                                             std::optional<TrustDomain> trust_domain);

  TrustDomain trust_domain_;
  std::vector<std::shared_ptr<const X509Authority>> x509_;
  std::vector<JwtAuthority> jwt_;
  std::optional<uint64_t> sequence_;
  std::optional<int64_t> refresh_hint_;
};

// Parses a SPIFFE bundle map (Trust Domain and Bundle §5): {"trust_domains": {TD: bundle}}
// with keys as bare names or spiffe://TD. All or nothing: InvalidArgument when a key is
// not a trust domain, a trust domain appears twice (also as two JSON spellings), or a
// bundle is malformed.
absl::StatusOr<std::vector<Bundle>> ParseBundleMap(absl::string_view text);
// A bundle map of `bundles`, keyed by bare trust domain names, without per-bundle hints.
std::string BundleMapJson(const std::vector<Bundle>& bundles);

// Bundles by trust domain name; readers get immutable snapshots. Thread-safe.
class BundleSet {
 public:
  // Adds or replaces the bundle of its trust domain.
  void Put(Bundle bundle);
  // Replaces every bundle at once (a trust domain missing from `bundles` is dropped).
  void ReplaceAll(std::vector<Bundle> bundles);
  void Remove(const TrustDomain& td);
  // The bundle of `trust_domain_name`, or null.
  std::shared_ptr<const Bundle> Get(absl::string_view trust_domain_name) const;
  // Every bundle, by trust domain name.
  std::vector<std::shared_ptr<const Bundle>> All() const;
  // Increments whenever the set changes (verifier caches key on it).
  uint64_t generation() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const Bundle>, std::less<>> bundles_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> generation_{0};  // written under mu_, read without it
};

}  // namespace tw::core
