#include "sdk/http_connector.h"

#include <openssl/ssl.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <map>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/status_macros.h"
#include "core/spiffe_id.h"
#include "net/deadline.h"
#include "nlohmann/json.hpp"
#include "sdk/identity_state.h"
#include "sdk/status_error.h"
#include "sdk/tls_context.h"

namespace trustwarden::internal {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using Response = http::response<http::string_body>;

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
absl::StatusOr<Url> ParseUrl(const std::string& text) {
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed) return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not a URL"));
  Url u;
  const std::string scheme = absl::AsciiStrToLower(std::string(parsed->scheme()));
  if (scheme != "http" && scheme != "https") {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not an http(s) URL"));
  }
  u.tls = scheme == "https";
  u.host = absl::AsciiStrToLower(std::string(parsed->host_address()));
  if (u.host.empty() || parsed->has_userinfo()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" has no usable host"));
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
  absl::Mutex mu;
  std::map<std::string, std::string> servers ABSL_GUARDED_BY(mu);  // origin -> SPIFFE ID
  std::set<std::string> plain_http ABSL_GUARDED_BY(mu);
};
Origins& Registered() {
  static auto* origins = new Origins();
  return *origins;
}

// The status of a refused request, as an SDK error.
absl::Status RefusedBy(unsigned status, std::string message) {
  if (status == 401) return absl::UnauthenticatedError(message);
  if (status == 403) return absl::PermissionDeniedError(message);
  if (status == 404) return absl::NotFoundError(message);
  if (status == 429) return absl::ResourceExhaustedError(message);
  if (status >= 500) return absl::UnavailableError(message);
  return absl::FailedPreconditionError(message);
}

template <typename Stream>
beast::error_code Exchange(asio::io_context& ioc, Stream& stream,
                           const http::request<http::string_body>& req, Response* res) {
  beast::get_lowest_layer(stream).expires_after(kRequestTimeout);
  beast::error_code ec = tw::net::RunToCompletion(
      ioc, [&](auto handler) { http::async_write(stream, req, std::move(handler)); });
  if (ec) return ec;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  ec = tw::net::RunToCompletion(
      ioc, [&](auto handler) { http::async_read(stream, buffer, parser, std::move(handler)); });
  if (!ec) *res = parser.release();
  return ec;
}

// Sends `req` to `url` (over https as `agent`, to a server presenting `server_id`) and
// reads the response into `res`. Unavailable naming the resource when the transport
// fails; Internal when no TLS context can be made.
absl::Status Send(AgentIdentity& agent, const Url& url, const std::string& server_id,
                  const CallRequest& request, const http::request<http::string_body>& req,
                  Response* res) {
  const auto failed = [&](const beast::error_code& ec) {
    return absl::UnavailableError(absl::StrCat(request.resource, ": ", ec.message()));
  };
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  const auto endpoints = resolver.resolve(url.host, url.port, ec);
  if (ec) return failed(ec);
  auto connect = [&](beast::tcp_stream& tcp) {
    tcp.expires_after(kConnectTimeout);
    return tw::net::RunToCompletion(
        ioc, [&](auto handler) { tcp.async_connect(endpoints, std::move(handler)); });
  };
  if (!url.tls) {
    beast::tcp_stream stream(ioc);
    if ((ec = connect(stream)) || (ec = Exchange(ioc, stream, req, res))) return failed(ec);
    return absl::OkStatus();
  }
  TW_ASSIGN_OR_RETURN(SslCtxPtr native,
                      NewTlsContext(agent, Requirement{.spiffe_ids = {server_id}}, false));
  asio::ssl::context ctx(native.release());  // takes it over
  beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
  if (url.dns_name) SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str());
  if ((ec = connect(beast::get_lowest_layer(stream)))) return failed(ec);
  ec = tw::net::RunToCompletion(ioc, [&](auto handler) {
    stream.async_handshake(asio::ssl::stream_base::client, std::move(handler));
  });
  if (ec || (ec = Exchange(ioc, stream, req, res))) return failed(ec);
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(1));
  tw::net::RunToCompletion(ioc, [&](auto handler) { stream.async_shutdown(std::move(handler)); });
  return absl::OkStatus();
}

absl::StatusOr<std::string> Call(AgentIdentity& agent, const CallRequest& request) {
  TW_ASSIGN_OR_RETURN(const Url url, ParseUrl(request.resource));
  std::string server_id = request.server_spiffe_id;
  bool plain_allowed;
  {
    Origins& o = Registered();
    absl::MutexLock lock(&o.mu);
    if (server_id.empty()) {
      auto it = o.servers.find(url.origin);
      if (it != o.servers.end()) server_id = it->second;
    }
    plain_allowed = o.plain_http.contains(url.origin);
  }
  // The bearer token goes only where the application said it may.
  if (url.tls && server_id.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no server SPIFFE ID is named for ", url.origin,
                     ": AgentIdentity::trust_origin(origin, id) or CallOptions::server_spiffe_id"));
  }
  if (!url.tls && !plain_allowed) {
    return absl::FailedPreconditionError(
        absl::StrCat(url.origin,
                     " is plain http: the bearer token would travel in the "
                     "clear; use https, or AgentIdentity::allow_plain_http"));
  }
  TW_ASSIGN_OR_RETURN(const std::string token, Access::Of(agent)->Jwt(url.origin));
  http::request<http::string_body> req{request.payload.empty() ? http::verb::get : http::verb::post,
                                       url.target, 11};
  req.set(http::field::host, url.authority);
  req.set(http::field::user_agent, "trustwarden-sdk");
  req.set(http::field::authorization, "Bearer " + token);
  req.set("X-TrustWarden-Action", request.action);
  if (!request.payload.empty()) {
    req.set(http::field::content_type, nlohmann::json::accept(request.payload)
                                           ? "application/json"
                                           : "application/octet-stream");
    req.body() = request.payload;
  }
  req.keep_alive(false);
  req.prepare_payload();

  Response res;
  TW_RETURN_IF_ERROR(Send(agent, url, server_id, request, req, &res));
  const unsigned status = res.result_int();
  if (status < 200 || status >= 300) {
    return RefusedBy(
        status, absl::StrCat(request.resource, ": HTTP ", status, " ", res.body().substr(0, 200)));
  }
  return std::move(res.body());
}

}  // namespace

std::string HttpConnector(AgentIdentity& agent, const CallRequest& request) {
  return ValueOrThrow(Call(agent, request));
}

absl::Status TrustOrigin(const std::string& origin, const std::string& spiffe_id) {
  TW_ASSIGN_OR_RETURN(const Url url, ParseUrl(origin));
  if (url.target != "/") {
    return absl::InvalidArgumentError(absl::StrCat("\"", origin, "\" is not an origin"));
  }
  if (auto id = tw::core::SpiffeId::FromString(spiffe_id); !id.ok()) {
    return absl::InvalidArgumentError(id.status().message());
  }
  Origins& o = Registered();
  absl::MutexLock lock(&o.mu);
  o.servers[url.origin] = spiffe_id;
  return absl::OkStatus();
}

absl::Status AllowPlainHttp(const std::string& origin) {
  TW_ASSIGN_OR_RETURN(const Url url, ParseUrl(origin));
  Origins& o = Registered();
  absl::MutexLock lock(&o.mu);
  o.plain_http.insert(url.origin);
  return absl::OkStatus();
}

}  // namespace trustwarden::internal
