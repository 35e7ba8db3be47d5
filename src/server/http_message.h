// A request as the API sees it once the listener has parsed it, and its response. Plain
// values.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "authority/authority.h"
#include "base/bytes.h"

namespace tw::server {

struct HttpRequest {
  std::string method;
  std::string path;  // without the query
  std::map<std::string, std::string> query;
  std::string authorization;  // the Authorization header
  std::string last_event_id;  // the Last-Event-ID header
  std::string body;
  std::vector<base::Bytes> peer_chain;      // client certificate chain, leaf first
  std::string remote;                       // client address
  std::string request_id;                   // for the logs
  std::optional<authority::Caller> caller;  // authenticated already (by Preflight)
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

// Splits a request target (RFC 9112 §3.2: origin-form or absolute-form) into the path and
// percent-decoded parameters. InvalidArgument for a malformed target, a repeated parameter,
// or a path or parameter that is not UTF-8 once decoded.
absl::Status ParseTarget(absl::string_view target, HttpRequest* out);

}  // namespace tw::server
