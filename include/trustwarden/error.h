// The errors the TrustWarden SDK throws.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace trustwarden {

// A failed SDK operation: `code` is a canonical status name ("invalid_argument",
// "unavailable", "permission_denied", ...), the message says what and why.
class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message)
      : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const noexcept { return code_; }

 private:
  std::string code_;
};

// A call refused by scope, trust level, revocation or expiry. The refusal was recorded in
// the ledger as `event_id` when recording was possible (empty otherwise).
class Denied : public Error {
 public:
  Denied(const std::string& reason, std::string event_id)
      : Error("permission_denied", reason), reason_(reason), event_id_(std::move(event_id)) {}
  const std::string& reason() const noexcept { return reason_; }
  const std::string& event_id() const noexcept { return event_id_; }

 private:
  std::string reason_;
  std::string event_id_;
};

// A call refused because the identity is revoked: by an operator, by itself (close()) or
// with an ancestor.
class Revoked : public Denied {
 public:
  using Denied::Denied;
};

// A call refused because the identity's certificate has expired.
class Expired : public Denied {
 public:
  using Denied::Denied;
};

}  // namespace trustwarden
