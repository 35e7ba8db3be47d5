#include "sdk/http_connector.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "trustwarden/tls.h"

namespace trustwarden::internal {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

struct Url {
  bool tls = false;
  std::string host, port, origin, target;
};

Url ParseUrl(const std::string& resource) {
  Url u;
  const size_t colon = resource.find("://");
  const std::string scheme = absl::AsciiStrToLower(resource.substr(0, colon));
  u.tls = scheme == "https";
  if (colon == std::string::npos || (scheme != "http" && scheme != "https")) {
    throw Error("invalid_argument", absl::StrCat("\"", resource, "\" is not an http(s) URL"));
  }
  const size_t start = colon + 3;
  const size_t slash = resource.find_first_of("/?#", start);
  const std::string authority = resource.substr(start, slash - start);
  u.target = slash == std::string::npos ? "/" : resource.substr(slash);
  if (u.target[0] != '/') u.target = "/" + u.target;
  if (const size_t hash = u.target.find('#'); hash != std::string::npos) u.target.resize(hash);
  const size_t bracket = authority.rfind(']');
  const size_t port = authority.rfind(':');
  if (port != std::string::npos && (bracket == std::string::npos || port > bracket)) {
    u.host = authority.substr(0, port);
    u.port = authority.substr(port + 1);
  } else {
    u.host = authority;
    u.port = u.tls ? "443" : "80";
  }
  if (u.host.size() > 2 && u.host.front() == '[') u.host = u.host.substr(1, u.host.size() - 2);
  if (u.host.empty() || u.port.empty() || authority.find('@') != std::string::npos) {
    throw Error("invalid_argument", absl::StrCat("\"", resource, "\" has no usable host"));
  }
  u.origin = absl::StrCat(scheme, "://", absl::AsciiStrToLower(authority));
  return u;
}

// The status of a refused request, as an SDK error code.
std::string CodeOf(unsigned status) {
  if (status == 401) return "unauthenticated";
  if (status == 403) return "permission_denied";
  if (status == 404) return "not_found";
  if (status == 429) return "resource_exhausted";
  if (status >= 500) return "unavailable";
  return "failed_precondition";
}

template <typename Stream>
http::response<http::string_body> Exchange(Stream& stream,
                                           const http::request<http::string_body>& req) {
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  http::read(stream, buffer, parser);
  return parser.release();
}

}  // namespace

std::string HttpConnector(AgentIdentity& agent, const CallRequest& request) {
  const Url url = ParseUrl(request.resource);
  http::request<http::string_body> req{request.payload.empty() ? http::verb::get : http::verb::post,
                                       url.target, 11};
  req.set(http::field::host, url.host);
  req.set(http::field::user_agent, "trustwarden-sdk");
  req.set(http::field::authorization, "Bearer " + agent.jwt(url.origin));
  req.set("X-TrustWarden-Action", request.action);
  if (!request.payload.empty()) {
    req.set(http::field::content_type, nlohmann::json::accept(request.payload)
                                           ? "application/json"
                                           : "application/octet-stream");
    req.body() = request.payload;
  }
  req.keep_alive(false);
  req.prepare_payload();

  http::response<http::string_body> res;
  try {
    asio::io_context ioc;
    tcp::resolver resolver(ioc);
    const auto endpoints = resolver.resolve(url.host, url.port);
    if (url.tls) {
      asio::ssl::context ctx(client_tls_context(agent));
      beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
      beast::get_lowest_layer(stream).connect(endpoints);
      stream.handshake(asio::ssl::stream_base::client);
      res = Exchange(stream, req);
      beast::error_code ignored;
      stream.shutdown(ignored);
    } else {
      beast::tcp_stream stream(ioc);
      stream.connect(endpoints);
      res = Exchange(stream, req);
    }
  } catch (const boost::system::system_error& e) {
    throw Error("unavailable", absl::StrCat(request.resource, ": ", e.what()));
  }
  const unsigned status = res.result_int();
  if (status < 200 || status >= 300) {
    throw Error(CodeOf(status),
                absl::StrCat(request.resource, ": HTTP ", status, " ", res.body().substr(0, 200)));
  }
  return std::move(res.body());
}

}  // namespace trustwarden::internal
