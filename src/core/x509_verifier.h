// Verifies X.509-SVID chains (X509-SVID §5, shared/SPIFFE.md §2.2) against per-trust-domain
// bundles: the leaf's own trust domain selects the bundle, never a pooled root store.
// Thread-safe; verified leaves are cached by their DER until the bundles change.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "core/attributes.h"
#include "core/bundle.h"

namespace tw::core {

struct VerifiedX509Svid {
  SpiffeId spiffe_id;
  // The TrustWarden extension, when present and the SVID's trust domain is one whose
  // attributes the verifier honours (X509VerifierOptions::attribute_trust_domains).
  std::optional<SvidAttributes> attributes;
  std::string serial_hex;  // the leaf's serial number
  absl::Time not_after;    // the earliest notAfter along the chain
};

struct X509VerifierOptions {
  const base::Clock* clock = &base::Clock::System();
  // Called on every successful verification, cached or not; a non-OK result (normally
  // PermissionDenied "revoked") rejects the SVID.
  std::function<absl::Status(const VerifiedX509Svid&)> revocation_check;
  // Trust domains whose TrustWarden attributes (scopes, trust level, ...) are returned.
  // Any CA in a loaded bundle can assert any attribute, so a federated domain's are
  // ignored unless named here.
  std::vector<TrustDomain> attribute_trust_domains;
  // Verified leaves remembered; 0 disables the cache. Kept in shards, a full one starting
  // over, with a small per-thread copy in front: a hit repeated on a thread touches no
  // shared lock, so hits scale with cores.
  size_t cache_capacity = 65536;
};

class X509Verifier {
 public:
  explicit X509Verifier(std::shared_ptr<const BundleSet> bundles, X509VerifierOptions options = {});

  // Verifies `chain` (leaf first, then intermediates in any order) at the clock's time.
  // A leaf once verified is remembered by its DER: presented again (with or without its
  // intermediates) it stays valid until the bundles change or the chain's earliest
  // notAfter passes; revocation_check still runs every time.
  // InvalidArgument: malformed DER. Unauthenticated: a SPIFFE rule, the path to the
  // leaf's trust-domain bundle, or a validity window fails (the message says which).
  // Whatever revocation_check returns when it rejects.
  absl::StatusOr<VerifiedX509Svid> Verify(const std::vector<base::ByteView>& chain) const;
  // The same at an explicit time, bypassing the cache.
  absl::StatusOr<VerifiedX509Svid> VerifyAt(const std::vector<base::ByteView>& chain,
                                            absl::Time now) const;

 private:
  struct CacheEntry {
    VerifiedX509Svid svid;
    absl::Time not_before;  // the latest notBefore along the chain
    uint64_t generation;
  };
  absl::StatusOr<CacheEntry> VerifyUncached(const std::vector<base::ByteView>& chain,
                                            absl::Time now) const;
  absl::StatusOr<VerifiedX509Svid> CheckRevocation(VerifiedX509Svid svid) const;

  std::shared_ptr<const BundleSet> bundles_;
  X509VerifierOptions options_;
  // The public key of a presented intermediate, kept by SubjectPublicKeyInfo DER: creating
  // OpenSSL's key object costs a quarter of a verification, and intermediates repeat.
  absl::StatusOr<crypto::PublicKey> IntermediateKey(base::ByteView spki) const;

  // Verified leaves by DER, in shards chosen by the DER's hash.
  struct alignas(64) Shard {  // a cache line each: no false sharing between shards
    absl::Mutex mu;
    absl::flat_hash_map<std::string, CacheEntry> entries ABSL_GUARDED_BY(mu);
  };
  static constexpr size_t kShards = 32;
  Shard& ShardOf(size_t hash) const { return shards_[hash % kShards]; }
  const uint64_t id_;  // tells this verifier's per-thread entries from another's
  // A thread's copy of one cached leaf (its DER, and the entry it verified to).
  struct LocalEntry {
    uint64_t verifier = 0;
    std::string der;
    std::optional<CacheEntry> entry;
  };
  static LocalEntry& LocalSlot(size_t hash);
  mutable std::array<Shard, kShards> shards_;
  mutable absl::Mutex keys_mu_;
  mutable absl::flat_hash_map<std::string, crypto::PublicKey> keys_ ABSL_GUARDED_BY(keys_mu_);
};

}  // namespace tw::core
