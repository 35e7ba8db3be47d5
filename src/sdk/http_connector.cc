#include "sdk/http_connector.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <map>
#include <mutex>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/spiffe_id.h"
#include "net/deadline.h"
#include "nlohmann/json.hpp"
#include "trustwarden/tls.h"

namespace trustwarden::internal {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

constexpr auto kConnectTimeout = std::chrono::seconds(5);
constexpr auto kRequestTimeout = std::chrono::seconds(30);

struct Url {
  bool tls = false;
  std::string host, port, origin, target;
  std::string authority;  // for the Host header: the host (IPv6 in brackets) and any port
  bool dns_name = false;  // the host is a name (it goes in the TLS server name)
};

// An http(s) URL as Boost.URL reads it (RFC 3986); the origin is scheme://host[:port],
// lower-cased, without a default port.
Url ParseUrl(const std::string& text) {
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed) throw Error("invalid_argument", absl::StrCat("\"", text, "\" is not a URL"));
  Url u;
  const std::string scheme = absl::AsciiStrToLower(std::string(parsed->scheme()));
  if (scheme != "http" && scheme != "https") {
    throw Error("invalid_argument", absl::StrCat("\"", text, "\" is not an http(s) URL"));
  }
  u.tls = scheme == "https";
  u.host = absl::AsciiStrToLower(std::string(parsed->host_address()));
  if (u.host.empty() || parsed->has_userinfo()) {
    throw Error("invalid_argument", absl::StrCat("\"", text, "\" has no usable host"));
  }
  const std::string default_port = u.tls ? "443" : "80";
  u.port =
      parsed->has_port() && !parsed->port().empty() ? std::string(parsed->port()) : default_port;
  const std::string host_text = absl::AsciiStrToLower(std::string(parsed->encoded_host()));
  u.origin = absl::StrCat(scheme, "://", host_text, u.port == default_port ? "" : ":" + u.port);
  u.authority = std::string(parsed->encoded_host_and_port());
  u.dns_name = parsed->host_type() == boost::urls::host_type::name;
  u.target = std::string(parsed->encoded_path());
  if (u.target.empty()) u.target = "/";
  if (parsed->has_query()) absl::StrAppend(&u.target, "?", std::string(parsed->encoded_query()));
  return u;
}

struct Origins {
  std::mutex mu;
  std::map<std::string, std::string> servers;  // origin -> the SPIFFE ID it must present
  std::set<std::string> plain_http;
};
Origins& Registered() {
  static auto* origins = new Origins();
  return *origins;
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
http::response<http::string_body> Exchange(asio::io_context& ioc, Stream& stream,
                                           const http::request<http::string_body>& req) {
  beast::get_lowest_layer(stream).expires_after(kRequestTimeout);
  beast::error_code ec = tw::net::RunToCompletion(
      ioc, [&](auto handler) { http::async_write(stream, req, std::move(handler)); });
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  if (!ec) {
    ec = tw::net::RunToCompletion(
        ioc, [&](auto handler) { http::async_read(stream, buffer, parser, std::move(handler)); });
  }
  if (ec) throw beast::system_error(ec);
  return parser.release();
}

}  // namespace

void TrustOrigin(const std::string& origin, const std::string& spiffe_id) {
  const Url url = ParseUrl(origin);
  if (url.target != "/") {
    throw Error("invalid_argument", absl::StrCat("\"", origin, "\" is not an origin"));
  }
  if (auto id = tw::core::SpiffeId::FromString(spiffe_id); !id.ok()) {
    throw Error("invalid_argument", std::string(id.status().message()));
  }
  Origins& o = Registered();
  std::lock_guard<std::mutex> lock(o.mu);
  o.servers[url.origin] = spiffe_id;
}

void AllowPlainHttp(const std::string& origin) {
  const Url url = ParseUrl(origin);
  Origins& o = Registered();
  std::lock_guard<std::mutex> lock(o.mu);
  o.plain_http.insert(url.origin);
}

std::string HttpConnector(AgentIdentity& agent, const CallRequest& request) {
  const Url url = ParseUrl(request.resource);
  std::string server_id = request.server_spiffe_id;
  bool plain_allowed;
  {
    Origins& o = Registered();
    std::lock_guard<std::mutex> lock(o.mu);
    if (server_id.empty()) {
      auto it = o.servers.find(url.origin);
      if (it != o.servers.end()) server_id = it->second;
    }
    plain_allowed = o.plain_http.contains(url.origin);
  }
  // The bearer token goes only where the application said it may.
  if (url.tls && server_id.empty()) {
    throw Error("failed_precondition", absl::StrCat("no server SPIFFE ID is named for ", url.origin,
                                                    ": AgentIdentity::trust_origin(origin, id) or "
                                                    "CallOptions::server_spiffe_id"));
  }
  if (!url.tls && !plain_allowed) {
    throw Error("failed_precondition",
                absl::StrCat(url.origin,
                             " is plain http: the bearer token would travel in the "
                             "clear; use https, or AgentIdentity::allow_plain_http"));
  }
  http::request<http::string_body> req{request.payload.empty() ? http::verb::get : http::verb::post,
                                       url.target, 11};
  req.set(http::field::host, url.authority);
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
    auto connect = [&](beast::tcp_stream& tcp) {
      tcp.expires_after(kConnectTimeout);
      beast::error_code ec = tw::net::RunToCompletion(
          ioc, [&](auto handler) { tcp.async_connect(endpoints, std::move(handler)); });
      if (ec) throw beast::system_error(ec);
    };
    if (url.tls) {
      asio::ssl::context ctx(client_tls_context(agent, Requirement{.spiffe_ids = {server_id}}));
      beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
      if (url.dns_name) SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str());
      connect(beast::get_lowest_layer(stream));
      beast::error_code ec = tw::net::RunToCompletion(ioc, [&](auto handler) {
        stream.async_handshake(asio::ssl::stream_base::client, std::move(handler));
      });
      if (ec) throw beast::system_error(ec);
      res = Exchange(ioc, stream, req);
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(1));
      tw::net::RunToCompletion(ioc,
                               [&](auto handler) { stream.async_shutdown(std::move(handler)); });
    } else {
      beast::tcp_stream stream(ioc);
      connect(stream);
      res = Exchange(ioc, stream, req);
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
