#include "sdk/revocation_watcher.h"

#include <map>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/backoff.h"
#include "core/json.h"
#include "sdk/background_threads.h"

namespace trustwarden::internal {
namespace {

// The server sends a heartbeat every second: a connection silent this long is dropped
// and made again.
constexpr absl::Duration kSilenceLimit = absl::Seconds(3);
constexpr absl::Duration kFirstBackoff = absl::Milliseconds(100);
constexpr absl::Duration kMaxBackoff = absl::Seconds(5);

}  // namespace

std::shared_ptr<RevocationWatcher> RevocationWatcher::Shared(const std::string& server,
                                                             const std::string& ca_pem,
                                                             const tw::base::Clock& clock) {
  using Key = std::tuple<std::string, std::string, const tw::base::Clock*>;
  ABSL_CONST_INIT static absl::Mutex mu(absl::kConstInit);
  static auto* watchers = new std::map<Key, std::shared_ptr<RevocationWatcher>>();
  absl::MutexLock lock(&mu);
  std::shared_ptr<RevocationWatcher>& watcher = (*watchers)[{server, ca_pem, &clock}];
  if (watcher == nullptr) watcher = std::make_shared<RevocationWatcher>(server, ca_pem, clock);
  return watcher;
}

RevocationWatcher::RevocationWatcher(std::string server, std::string ca_pem,
                                     const tw::base::Clock& clock)
    : server_(std::move(server)), ca_pem_(std::move(ca_pem)), clock_(clock) {
  reader_ = std::thread([this] { Run(); });
  supervisor_ = std::thread([this] { Supervise(); });
  exit_stop_ = StopAtExit([this] { Stop(); });
  if (!exit_stop_) Stop();  // the process is exiting
}

void RevocationWatcher::Stop() {
  absl::MutexLock stop_lock(&stop_mu_);
  if (!stopping_.HasBeenNotified()) stopping_.Notify();
  {
    absl::MutexLock lock(&mu_);
    if (client_ != nullptr) client_->Cancel();
    if (fetching_ != nullptr) fetching_->Cancel();
  }
  if (reader_.joinable()) reader_.join();
  if (supervisor_.joinable()) supervisor_.join();
}

void RevocationWatcher::Follow(const std::shared_ptr<tw::core::BundleSet>& bundles,
                               const tw::core::TrustDomain& td) {
  absl::MutexLock lock(&follow_mu_);
  std::erase_if(followers_, [](const Follower& f) { return f.bundles.expired(); });
  followers_.push_back(Follower{bundles, td});
  if (!fetched_federation_.empty()) Distribute(followers_.back());
}

bool RevocationWatcher::StartFetch(tw::net::HttpsClient* client) {
  absl::MutexLock lock(&mu_);
  if (stopping_.HasBeenNotified()) return false;
  fetching_ = client;
  return true;
}

void RevocationWatcher::EndFetch() {
  absl::MutexLock lock(&mu_);
  fetching_ = nullptr;
}

std::shared_ptr<const std::vector<tw::core::ForeignGrant>> RevocationWatcher::ForeignGrants()
    const {
  absl::ReaderMutexLock lock(&follow_mu_);
  if (grants_ == nullptr) return std::make_shared<const std::vector<tw::core::ForeignGrant>>();
  return grants_;
}

bool RevocationWatcher::WaitConnected(absl::Duration timeout) const {
  const auto settled = [this] {
    mu_.AssertReaderHeld();
    return stream_.last_seen().has_value() || connections_ended_ > 0;
  };
  absl::ReaderMutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&settled), timeout);
  return stream_.last_seen().has_value();
}

bool RevocationWatcher::WaitFederation(absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  if (!WaitConnected(timeout)) return false;  // a server that cannot be reached sends none
  std::string announced;
  {
    absl::ReaderMutexLock lock(&mu_);
    announced = stream_.federation_version();
  }
  if (announced.empty()) return true;  // a server that federates nothing says nothing
  const auto fetched = [&] {
    follow_mu_.AssertHeld();
    return !fetched_federation_.empty();
  };
  absl::MutexLock lock(&follow_mu_);
  return follow_mu_.AwaitWithDeadline(absl::Condition(&fetched), deadline);
}

void RevocationWatcher::Distribute(const Follower& f) const {
  std::shared_ptr<tw::core::BundleSet> set = f.bundles.lock();
  if (set == nullptr) return;
  std::vector<tw::core::Bundle> bundles;
  if (std::shared_ptr<const tw::core::Bundle> own = set->Get(f.td.name())) bundles.push_back(*own);
  for (const tw::core::Bundle& b : federated_) {
    if (b.trust_domain() != f.td) bundles.push_back(b);
  }
  set->ReplaceAll(std::move(bundles));
}

void RevocationWatcher::RefreshFederation() {
  if (stopping_.HasBeenNotified()) return;
  std::string announced;
  {
    absl::ReaderMutexLock lock(&mu_);
    announced = stream_.federation_version();
  }
  {
    absl::MutexLock lock(&follow_mu_);
    if (announced.empty() || announced == fetched_federation_) return;
  }
  if (absl::Now() < federation_retry_at_) return;
  federation_retry_at_ = absl::Now() + absl::Seconds(1);  // unless it succeeds
  auto client = tw::net::HttpsClient::Create({.server = server_, .ca_pem = CaPem()});
  if (!client.ok() || !StartFetch(client->get())) return;
  auto bundles = (*client)->Request("GET", "/v1/bundles", "", {});
  auto grants = bundles.ok() && bundles->status == 200
                    ? (*client)->Request("GET", "/v1/federation/grants", "", {})
                    : absl::StatusOr<tw::net::Response>(absl::UnavailableError("no bundles"));
  EndFetch();
  if (!grants.ok() || grants->status != 200) return;
  absl::StatusOr<std::vector<tw::core::Bundle>> map = tw::core::ParseBundleMap(bundles->body);
  absl::StatusOr<nlohmann::json> doc =
      tw::core::ParseStrictJson(grants->body, "the server's foreign grants");
  if (!map.ok() || !doc.ok() || !doc->is_object() || !doc->contains("grants")) return;
  absl::StatusOr<std::vector<tw::core::ForeignGrant>> parsed =
      tw::core::ParseForeignGrants((*doc)["grants"]);
  if (!parsed.ok()) return;
  federation_retry_at_ = absl::InfinitePast();
  absl::MutexLock lock(&follow_mu_);
  fetched_federation_ = announced;
  federated_ = *std::move(map);
  grants_ = std::make_shared<const std::vector<tw::core::ForeignGrant>>(*std::move(parsed));
  std::erase_if(followers_, [](const Follower& f) { return f.bundles.expired(); });
  for (const Follower& f : followers_) Distribute(f);
}

std::string RevocationWatcher::CaPem() const {
  absl::MutexLock lock(&follow_mu_);
  return ca_pem_;
}

void RevocationWatcher::RefreshBundle() {
  int64_t announced;
  {
    absl::ReaderMutexLock lock(&mu_);
    announced = stream_.bundle_sequence();
  }
  if (announced <= 0) return;
  // The followers older than announced (PEM bundles have no sequence: they stay as given).
  std::vector<Follower> behind;
  {
    absl::MutexLock lock(&follow_mu_);
    if (static_cast<uint64_t>(announced) <= fetched_sequence_) return;
    for (const Follower& f : followers_) {
      std::shared_ptr<tw::core::BundleSet> set = f.bundles.lock();
      std::shared_ptr<const tw::core::Bundle> have = set ? set->Get(f.td.name()) : nullptr;
      if (have != nullptr && have->sequence() &&
          *have->sequence() < static_cast<uint64_t>(announced)) {
        behind.push_back(f);
      }
    }
  }
  if (behind.empty()) return;
  auto client = tw::net::HttpsClient::Create({.server = server_, .ca_pem = CaPem()});
  if (!client.ok() || !StartFetch(client->get())) return;
  auto reply = (*client)->Request("GET", "/v1/bundle", "", {});
  EndFetch();
  if (!reply.ok() || reply->status != 200) return;
  auto bundle = tw::core::Bundle::Parse(reply->body, behind.front().td);
  if (!bundle.ok() || !bundle->sequence() || bundle->x509_authorities().empty()) return;
  const uint64_t fetched = *bundle->sequence();
  // Under follow_mu_, as Distribute() replaces a set's bundles: neither undoes the other.
  absl::MutexLock lock(&follow_mu_);
  for (const Follower& f : behind) {
    std::shared_ptr<tw::core::BundleSet> set = f.bundles.lock();
    std::shared_ptr<const tw::core::Bundle> have = set ? set->Get(f.td.name()) : nullptr;
    // Never an older bundle, nor another trust domain's.
    if (have == nullptr || f.td != bundle->trust_domain() || *have->sequence() >= fetched) continue;
    set->Put(*bundle);
  }
  fetched_sequence_ = std::max(fetched_sequence_, fetched);
  ca_pem_ = bundle->ToPem();
}

RevocationWatcher::~RevocationWatcher() {
  if (exit_stop_) ForgetAtExit(*exit_stop_);
  Stop();
}

bool RevocationWatcher::IsRevoked(const std::string& instance_id) const {
  absl::ReaderMutexLock lock(&mu_);
  return stream_.revoked().contains(instance_id);
}

absl::Status RevocationWatcher::CheckFresh(absl::Duration bound) const {
  absl::ReaderMutexLock lock(&mu_);
  return FreshLocked(bound);
}

RevocationWatcher::Standing RevocationWatcher::StandingOf(const std::string& instance_id,
                                                          absl::Duration bound) const {
  absl::ReaderMutexLock lock(&mu_);
  return {.fresh = FreshLocked(bound), .revoked = stream_.revoked().contains(instance_id)};
}

absl::Status RevocationWatcher::FreshLocked(absl::Duration bound) const {
  const std::optional<absl::Time> last_seen = stream_.last_seen();
  if (!last_seen) {
    return absl::UnavailableError(
        absl::StrCat("the revocation stream of ", server_, " has not connected"));
  }
  const absl::Duration silent = clock_.Now() - *last_seen;
  if (silent > bound) {
    return absl::UnavailableError(
        absl::StrCat("the revocation stream of ", server_, " has been silent for ",
                     absl::FormatDuration(absl::Trunc(silent, absl::Milliseconds(1))), " (bound ",
                     absl::FormatDuration(bound), ")"));
  }
  return absl::OkStatus();
}

bool RevocationWatcher::WaitLive(absl::Duration timeout) const {
  const auto live = [this] {
    mu_.AssertReaderHeld();
    return stream_.last_seen().has_value();
  };
  absl::ReaderMutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&live), timeout);
}

bool RevocationWatcher::WaitRevoked(const std::string& instance_id, absl::Duration timeout) const {
  const auto revoked = [&] {
    mu_.AssertReaderHeld();
    return stream_.revoked().contains(instance_id);
  };
  absl::ReaderMutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&revoked), timeout);
}

std::optional<absl::Time> RevocationWatcher::LearnedAt(const std::string& instance_id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = stream_.revoked().find(instance_id);
  if (it == stream_.revoked().end()) return std::nullopt;
  return it->second.learned;
}

int64_t RevocationWatcher::sequence() const {
  absl::ReaderMutexLock lock(&mu_);
  return stream_.sequence();
}

void RevocationWatcher::Run() {
  NameThisThread("tw-revocations");
  tw::base::Backoff backoff(kFirstBackoff, kMaxBackoff);
  while (!stopping_.HasBeenNotified()) {
    int64_t after;
    {
      absl::MutexLock lock(&mu_);
      after = stream_.sequence();
      stream_.Restart();
    }
    bool delivered = false;
    auto client = tw::net::HttpsClient::Create({.server = server_, .ca_pem = CaPem()});
    if (client.ok()) {
      {
        absl::MutexLock lock(&mu_);
        client_ = client->get();
        if (stopping_.HasBeenNotified()) client_->Cancel();
      }
      const std::string resume = absl::StrCat(after);
      (void)(*client)->Stream(absl::StrCat("/v1/revocations/stream?after=", after),
                              {{"Last-Event-ID", resume}}, [&](absl::string_view text) {
                                delivered = true;
                                return Consume(text);
                              });
      absl::MutexLock lock(&mu_);
      client_ = nullptr;
    }
    {
      absl::MutexLock lock(&mu_);
      ++connections_ended_;
      // Past entries stay known across reconnects; expired ones are forgotten.
      stream_.Prune(absl::Now());
    }
    if (delivered) backoff.Reset();
    stopping_.WaitForNotificationWithTimeout(backoff.Next());
  }
}

// Drops a connection that has gone silent (a dead peer may never close it), so Run()
// connects again; hands out a bundle a heartbeat announced.
void RevocationWatcher::Supervise() {
  NameThisThread("tw-supervisor");
  // Every 100 ms: the federated bundles a heartbeat announced are fetched at once (an
  // identity's first handshake with a federated peer needs them); the rest every second.
  for (int tick = 1; !stopping_.WaitForNotificationWithTimeout(absl::Milliseconds(100)); ++tick) {
    RefreshFederation();
    if (tick % 10 != 0) continue;
    {
      absl::MutexLock lock(&mu_);
      const std::optional<absl::Time> last_seen = stream_.last_seen();
      if (client_ != nullptr && last_seen && clock_.Now() - *last_seen > kSilenceLimit) {
        client_->Cancel();
      }
    }
    RefreshBundle();
  }
}

bool RevocationWatcher::Consume(absl::string_view text) {
  if (stopping_.HasBeenNotified()) return false;
  absl::MutexLock lock(&mu_);
  return stream_.Consume(text, clock_.Now());
}

}  // namespace trustwarden::internal
