// Ledger events: what happened, to which instance, under whose authority, with which
// decision; one canonical JSON encoding (docs/ledger.md "Events"). Thread-safe functions.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tw::ledger {

struct Event {
  int64_t version = 1;
  std::string id;        // "evt-" + 16..64 lowercase hex, unique in the ledger
  int64_t time_ms = 0;   // Unix milliseconds
  std::string type;      // action, outcome, observation, issuance, renewal, revocation, ...
  std::string instance;  // the subject instance's SPIFFE ID
  std::string serial;    // hex serial of the subject's certificate
  std::string parent;    // the subject's parent instance SPIFFE ID
  std::string principal;
  int64_t policy_version = 0;  // 0: absent
  std::string resource;
  std::string action;
  std::string decision;  // allow | deny
  std::string reason;
  std::string input_digest;    // "sha256:" + hex
  std::string payload_digest;  // "sha256:" + hex
  std::string outcome;
  std::string ref;  // the action event an outcome belongs to
  // The observed caller's SPIFFE ID, in an observation (whose instance is its signer,
  // the resource's verifier; empty when the caller presented no verifiable SVID); in a
  // server event, the agent that asked when it is not the subject.
  std::string caller;

  bool operator==(const Event&) const = default;
};

// True for the types only the server writes (issuance, renewal, revocation, policy, token,
// authority).
bool IsServerType(absl::string_view type);
// True for the types whose subject is the signer itself (action, outcome, observation).
bool IsSelfType(absl::string_view type);

// The canonical bytes: sorted keys, no whitespace, empty optional members omitted.
std::string EncodeEvent(const Event& event);
// Parses canonical bytes and checks the rules of docs/ledger.md. InvalidArgument naming
// the member when the bytes are not JSON, not canonical, or break a rule.
absl::StatusOr<Event> DecodeEvent(absl::string_view bytes);
// The rules alone (for events built in process).
absl::Status ValidateEvent(const Event& event);

// "org/team/agent" of an agent instance SPIFFE ID; empty for anything else.
std::string AgentOf(absl::string_view instance_spiffe_id);
// A fresh "evt-" id: 48 bits of Unix milliseconds, then 80 random bits (the layout of
// UUIDv7), so that ids sort by creation time.
std::string NewEventId();
// "sha256:" + hex of SHA-256(data), the digest format of events.
std::string DigestOf(absl::string_view data);

}  // namespace tw::ledger
