#include "ledger/service.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "core/certificate.h"
#include "ledger/entry.h"

namespace tw::ledger {
namespace {

// Clock skew tolerated between an event's time and the server's.
constexpr absl::Duration kSkew = absl::Minutes(5);

// Entries of one signed batch: positions and paths in the batch tree.
std::vector<ledger::Entry> BatchEntries(const std::vector<std::string>& events,
                                        ledger::SignerKind kind, const ledger::Hash& signer_id,
                                        const base::Bytes& signature) {
  ledger::MemoryTree tree = ledger::BatchTree(events);
  std::vector<ledger::Entry> out;
  out.reserve(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    out.push_back(ledger::Entry{.signer_kind = kind,
                                .signer_id = signer_id,
                                .batch_size = static_cast<uint16_t>(events.size()),
                                .batch_position = static_cast<uint16_t>(i),
                                .batch_path = *ledger::InclusionProof(tree, i, events.size()),
                                .signature = signature,
                                .event = events[i]});
  }
  return out;
}

absl::Status CheckSubject(const ledger::Event& e, const core::VerifiedX509Svid& svid, size_t i) {
  const core::SvidAttributes none;
  const core::SvidAttributes& attrs = svid.attributes ? *svid.attributes : none;
  std::string parent = attrs.parent ? attrs.parent->str() : "";
  const char* wrong = e.instance != svid.spiffe_id.str()         ? "instance"
                      : e.serial != svid.serial_hex              ? "serial"
                      : e.principal != attrs.principal           ? "principal"
                      : e.policy_version != attrs.policy_version ? "policy_version"
                      : e.parent != parent                       ? "parent"
                                                                 : nullptr;
  if (wrong == nullptr) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("event ", i, ": \"", wrong, "\" of an ", e.type,
                                                 " event must be the signing SVID's"));
}

// A proof up to tree size `size`, built by `make` from one snapshot of the stored tree.
absl::StatusOr<std::vector<ledger::Hash>> Proof(
    store::Store& store, uint64_t size,
    const std::function<absl::StatusOr<std::vector<ledger::Hash>>(const ledger::NodeSource&)>&
        make) {
  std::vector<ledger::Hash> out;
  TW_RETURN_IF_ERROR(store.ReadLedgerTree([&](uint64_t tree, const ledger::NodeSource& nodes) {
    if (size > tree) {
      return absl::InvalidArgumentError(
          absl::StrCat("size ", size, " is beyond the tree size ", tree));
    }
    TW_ASSIGN_OR_RETURN(out, make(nodes));
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace

Service::Service(store::Store& store, std::unique_ptr<crypto::Signer> key, std::string trust_domain,
                 std::string bundle_json, ServiceOptions options)
    : store_(store),
      key_(std::move(key)),
      trust_domain_(std::move(trust_domain)),
      bundle_json_(std::move(bundle_json)),
      clock_(options.clock),
      key_id_(ledger::LedgerKeyId(key_->public_key())),
      // A burst of ten seconds' worth, and never less than one full batch.
      instance_limiter_(options.events_per_instance,
                        std::max(options.events_per_instance * 10, double{ledger::kMaxBatch})) {
  signer_.signer = {ledger::SignerKind::kLedgerKey, key_->public_key_der()};
  signer_.id = signer_.signer.id();
}

absl::StatusOr<store::LedgerAppend> Service::ServerEvent(ledger::Event event) const {
  std::vector<ledger::Event> events;
  events.push_back(std::move(event));
  return ServerEvents(std::move(events));
}

absl::StatusOr<store::LedgerAppend> Service::ServerEvents(std::vector<ledger::Event> events) const {
  if (events.empty()) return absl::InvalidArgumentError("a batch holds at least one event");
  const int64_t now_ms = absl::ToUnixMillis(clock_->Now());
  std::vector<std::string> bytes;
  bytes.reserve(events.size());
  for (ledger::Event& event : events) {
    if (event.id.empty()) event.id = ledger::NewEventId();
    if (event.time_ms == 0) event.time_ms = now_ms;
    TW_RETURN_IF_ERROR(ledger::ValidateEvent(event));
    bytes.push_back(ledger::EncodeEvent(event));
  }
  TW_ASSIGN_OR_RETURN(base::Bytes signature, ledger::SignBatch(*key_, bytes));
  store::LedgerAppend batch;
  batch.signer = signer_;
  batch.entries = BatchEntries(bytes, ledger::SignerKind::kLedgerKey, signer_.id, signature);
  batch.events = std::move(events);
  return batch;
}

absl::StatusOr<store::LedgerAppended> Service::AppendSigned(const core::VerifiedX509Svid& svid,
                                                            base::ByteView leaf_der,
                                                            const std::vector<std::string>& encoded,
                                                            absl::string_view signature_text,
                                                            std::optional<absl::Time> revoked_at) {
  if (encoded.empty() || encoded.size() > ledger::kMaxBatch) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"events\" must hold 1 to ", ledger::kMaxBatch, " events"));
  }
  std::string signature;
  if (!base::Base64UrlDecode(signature_text, &signature) || signature.empty()) {
    return absl::InvalidArgumentError("\"signature\" is not base64url");
  }
  TW_ASSIGN_OR_RETURN(core::Certificate leaf,
                      core::Certificate::Parse(base::Bytes(leaf_der.begin(), leaf_der.end())));
  const absl::Time now = clock_->Now();
  store::LedgerAppend batch;
  std::vector<std::string> bytes(encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (!base::Base64UrlDecode(encoded[i], &bytes[i])) {
      return absl::InvalidArgumentError(absl::StrCat("event ", i, " is not base64url"));
    }
    auto event = ledger::DecodeEvent(bytes[i]);
    if (!event.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("event ", i, ": ", event.status().message()));
    }
    if (ledger::IsServerType(event->type)) {
      return absl::InvalidArgumentError(
          absl::StrCat("event ", i, ": only the server writes ", event->type, " events"));
    }
    if (ledger::IsSelfType(event->type)) TW_RETURN_IF_ERROR(CheckSubject(*event, svid, i));
    absl::Time at = absl::FromUnixMillis(event->time_ms);
    if (at > now + kSkew || at < leaf.not_before() - kSkew || at > leaf.not_after() + kSkew) {
      return absl::InvalidArgumentError(
          absl::StrCat("event ", i, ": \"time\" is outside the signing SVID's lifetime"));
    }
    if (revoked_at && at >= *revoked_at) {
      return absl::PermissionDeniedError(absl::StrCat("event ", i,
                                                      " is dated after its signer was revoked (",
                                                      base::Rfc3339(*revoked_at), ")"));
    }
    batch.events.push_back(*std::move(event));
  }
  TW_ASSIGN_OR_RETURN(crypto::PublicKey key, crypto::PublicKey::FromSpkiDer(leaf.spki()));
  ledger::MemoryTree tree = ledger::BatchTree(bytes);
  TW_RETURN_IF_ERROR(ledger::VerifyBatchSignature(
      key, ledger::BatchMessage(static_cast<uint32_t>(bytes.size()), tree.Root()),
      base::AsBytes(signature)));
  // After the signature: only the instance itself can spend its budget.
  if (!instance_limiter_.Allow(svid.spiffe_id.str(), now, static_cast<double>(bytes.size()))) {
    return absl::ResourceExhaustedError(
        absl::StrCat(svid.spiffe_id.str(), " exceeds its rate of ledger events"));
  }
  batch.signer.signer = {ledger::SignerKind::kSvid, leaf.der()};
  batch.signer.id = batch.signer.signer.id();
  batch.entries =
      BatchEntries(bytes, ledger::SignerKind::kSvid, batch.signer.id, base::ToBytes(signature));
  return store_.AppendLedger(batch);
}

absl::StatusOr<ledger::TreeHead> Service::SignTreeHead() {
  ledger::TreeHead head;
  TW_RETURN_IF_ERROR(store_.ReadLedgerTree([&head](uint64_t size, const ledger::NodeSource& nodes) {
    head.tree_size = size;
    TW_ASSIGN_OR_RETURN(head.root, ledger::RootHash(nodes, size));
    return absl::OkStatus();
  }));
  head.timestamp_ms = absl::ToUnixMillis(clock_->Now());
  TW_RETURN_IF_ERROR(ledger::SignTreeHead(*key_, head));
  TW_RETURN_IF_ERROR(store_.InsertTreeHead(head));
  return head;
}

absl::StatusOr<bool> Service::SignIfGrown() {
  auto latest = LatestTreeHead();
  if (!latest.ok() && !absl::IsNotFound(latest.status())) return latest.status();
  uint64_t size = 0;
  TW_RETURN_IF_ERROR(store_.ReadLedgerTree([&size](uint64_t s, const ledger::NodeSource&) {
    size = s;
    return absl::OkStatus();
  }));
  if (latest.ok() && latest->tree_size == size) return false;
  TW_RETURN_IF_ERROR(SignTreeHead().status());
  return true;
}

absl::StatusOr<ledger::TreeHead> Service::LatestTreeHead() {
  TW_ASSIGN_OR_RETURN(std::optional<ledger::TreeHead> head, store_.LatestTreeHead());
  if (!head) return absl::NotFoundError("no tree head has been signed yet");
  return *head;
}

absl::StatusOr<std::vector<ledger::Hash>> Service::InclusionProof(uint64_t index, uint64_t size) {
  return Proof(store_, size, [&](const ledger::NodeSource& nodes) {
    return ledger::InclusionProof(nodes, index, size);
  });
}

absl::StatusOr<std::vector<ledger::Hash>> Service::ConsistencyProof(uint64_t first,
                                                                    uint64_t second) {
  return Proof(store_, second, [&](const ledger::NodeSource& nodes) {
    return ledger::ConsistencyProof(nodes, first, second);
  });
}

ledger::ExportHeader Service::ExportHeaderTemplate() const {
  return ledger::ExportHeader{.trust_domain = trust_domain_,
                              .bundle_json = bundle_json_,
                              .ledger_key = key_->public_key_der()};
}

}  // namespace tw::ledger
