#include "sdk/ledger_recorder.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/bytes.h"
#include "base/status_macros.h"
#include "ledger/entry.h"
#include "sdk/status_error.h"

namespace trustwarden::internal {
namespace {

using nlohmann::json;
namespace ledger = tw::ledger;

constexpr char kEvents[] = "/v1/ledger/events";

absl::Status Unrecordable(absl::string_view why) {
  return absl::UnavailableError(absl::StrCat("cannot record: the server is unreachable and ", why));
}

}  // namespace

ledger::Event SubjectEvent(const Credential& c, std::string type, absl::Time time) {
  const tw::core::SvidAttributes& a = *c.svid.attributes;
  return ledger::Event{.id = ledger::NewEventId(),
                       .time_ms = absl::ToUnixMillis(time),
                       .type = std::move(type),
                       .instance = c.svid.spiffe_id.str(),
                       .serial = c.svid.serial_hex,
                       .parent = a.parent ? a.parent->str() : "",
                       .principal = a.principal,
                       .policy_version = a.policy_version};
}

LedgerRecorder::LedgerRecorder(const Endpoint& endpoint, std::string instance_id,
                               std::function<void()> spooled)
    : endpoint_(endpoint), instance_id_(std::move(instance_id)), spooled_(std::move(spooled)) {}

// Group commit: the caller that finds the leader's lock free signs and sends every queued
// event of one credential as a batch, and goes on until its own is done; the others find
// theirs done when they get the lock.
absl::Status LedgerRecorder::Record(const Credential& c, const ledger::Event& event) {
  TW_RETURN_IF_ERROR(ledger::ValidateEvent(event));
  Pending mine{.bytes = ledger::EncodeEvent(event), .credential = &c};
  {
    absl::MutexLock lock(&queue_mu_);
    queue_.push_back(&mine);
  }
  absl::MutexLock leader(&ship_mu_);
  for (;;) {
    // The oldest events signed by one credential (a renewal may sit between two batches).
    std::vector<Pending*> batch;
    {
      absl::MutexLock lock(&queue_mu_);
      if (mine.done) break;
      const std::string& serial = queue_.front()->credential->svid.serial_hex;
      while (!queue_.empty() && batch.size() < ledger::kMaxBatch &&
             queue_.front()->credential->svid.serial_hex == serial) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    ShipBatch(batch);
  }
  return mine.result;
}

void LedgerRecorder::ShipBatch(const std::vector<Pending*>& batch) {
  std::vector<std::string> events;
  for (const Pending* p : batch) events.push_back(p->bytes);
  const absl::Status result = SignAndSend(*batch.front()->credential, events);
  absl::MutexLock lock(&queue_mu_);
  for (Pending* p : batch) {
    p->result = result;
    p->done = true;
  }
}

absl::Status LedgerRecorder::SignAndSend(const Credential& c,
                                         const std::vector<std::string>& events) {
  TW_ASSIGN_OR_RETURN(const tw::base::Bytes signature, ledger::SignBatch(*c.key, events));
  json body{{"signature", tw::base::Base64UrlEncode(tw::base::AsChars(signature))}};
  for (const std::string& e : events) body["events"].push_back(tw::base::Base64UrlEncode(e));
  TW_ASSIGN_OR_RETURN(const std::string direct, EncodeJson(body));
  body["chain"] = c.svid_pem;  // a spooled batch names its signer
  TW_ASSIGN_OR_RETURN(const std::string spooled, EncodeJson(body));
  return Send(c, direct, spooled);
}

absl::Status LedgerRecorder::Send(const Credential& c, const std::string& body,
                                  const std::string& record) {
  if (spool_ != nullptr && !spool_->empty()) Deliver(*spool_, c);
  if (spool_ == nullptr || spool_->empty()) {
    absl::StatusOr<tw::net::HttpsClient*> client = LedgerClient(c);
    absl::Status sent = client.status();
    if (sent.ok()) sent = PostText(**client, kEvents, body).status();
    if (sent.ok()) return sent;
    ledger_client_.reset();
    if (!IsTransient(sent)) return sent;
  }
  if (spool_ == nullptr) {
    absl::StatusOr<std::unique_ptr<Spool>> opened = Spool::Open(endpoint_.spool_dir, instance_id_);
    if (!opened.ok()) return Unrecordable(opened.status().message());
    spool_ = *std::move(opened);
  }
  if (absl::Status s = spool_->Append(record); !s.ok()) return Unrecordable(s.message());
  spooled_();
  return absl::OkStatus();
}

absl::StatusOr<tw::net::HttpsClient*> LedgerRecorder::LedgerClient(const Credential& c) {
  if (ledger_client_ == nullptr || ledger_client_serial_ != c.svid.serial_hex) {
    TW_ASSIGN_OR_RETURN(ledger_client_, Connect(endpoint_, &c));
    ledger_client_serial_ = c.svid.serial_hex;
  }
  return ledger_client_.get();
}

void LedgerRecorder::Deliver(Spool& from, const Credential& c) {
  absl::StatusOr<std::vector<std::string>> records = from.Records();
  if (!records.ok()) return;
  absl::StatusOr<tw::net::HttpsClient*> client = LedgerClient(c);
  size_t sent = 0;
  if (client.ok()) {
    for (const std::string& record : *records) {
      absl::Status s = PostText(**client, kEvents, record).status();
      if (!s.ok() && !absl::IsAlreadyExists(s)) {
        ledger_client_.reset();
        break;
      }
      ++sent;
    }
  }
  if (sent > 0) (void)from.Drop(sent);  // not dropped: delivered again, found already there
}

bool LedgerRecorder::ShipSpool(const Credential& c) {
  absl::MutexLock leader(&ship_mu_);
  if (spool_ != nullptr && !spool_->empty()) Deliver(*spool_, c);
  for (std::unique_ptr<Spool>& orphan : Spool::Orphans(endpoint_.spool_dir)) Deliver(*orphan, c);
  return spool_ != nullptr && !spool_->empty();
}

}  // namespace trustwarden::internal
