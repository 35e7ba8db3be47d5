// The JSON bodies of API.md's replies, and the one place a Status becomes an HTTP error.
// Thread-safe (pure functions).
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "authority/authority.h"
#include "ledger/service.h"
#include "nlohmann/json.hpp"
#include "revocation/entry.h"
#include "server/http_message.h"

namespace tw::server {

// A JSON reply; bytes that are not UTF-8 are replaced, never thrown on.
HttpResponse Json(int status, const nlohmann::json& body);
// {"error":{"code","message"}} with the code's HTTP status (base/api_status.h); internal
// errors say only that they failed.
HttpResponse ErrorResponse(const absl::Status& status);

// An RFC 3339 time, or null.
nlohmann::json TimeOrNull(const std::optional<absl::Time>& t);

nlohmann::json IdentityJson(const authority::IdentityView& identity);
// An authority as GET /v1/ca lists it.
nlohmann::json AuthorityJson(const ca::AuthorityInfo& a);
nlohmann::json FederationJson(const authority::Authority::Federation& f);
// A creation's or renewal's reply, with the trust bundle (already serialized) spliced in.
HttpResponse IssuedResponse(int status, const authority::IssuedIdentity& issued,
                            const std::string& bundle_json);
// One revocation log entry (a stream event's data, a page's element).
std::string RevocationEntryJson(const revocation::Entry& entry);
std::string RevocationPageJson(const authority::RevocationPage& page);
nlohmann::json PolicyJson(const store::StoredPolicy& policy);
nlohmann::json TokenJson(const store::TokenRecord& token);

nlohmann::json TreeHeadJson(const ledger::TreeHead& head, const std::string& key_id);
nlohmann::json HashListJson(const std::vector<ledger::Hash>& hashes);
// A ledger row: index, id, entry bytes (base64url) and the decoded event.
nlohmann::json EntryJson(const ledger::EntryRow& row);
// The RFC 9162 leaf hash of a row's entry, base64url.
std::string LeafHashJson(const ledger::EntryRow& row);
nlohmann::json TraceJson(const ledger::Trace& trace, const std::string& key_id);

}  // namespace tw::server
