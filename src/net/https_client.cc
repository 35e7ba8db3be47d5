#include "net/https_client.h"

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <functional>
#include <mutex>
#include <optional>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "net/deadline.h"

namespace tw::net {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

namespace {

// A decimal TCP port, 1..65535.
bool ValidPort(absl::string_view text) {
  uint32_t n;
  return absl::SimpleAtoi(text, &n) && n > 0 && n <= 65535;
}

}  // namespace

absl::Status ParseServerUrl(absl::string_view url, std::string* host, std::string* port) {
  auto parsed = boost::urls::parse_absolute_uri(boost::core::string_view(url.data(), url.size()));
  if (!parsed || parsed->scheme_id() != boost::urls::scheme::https) {
    return absl::InvalidArgumentError(absl::StrCat("server URL \"", url, "\" is not https://"));
  }
  if (parsed->has_userinfo() || parsed->has_query() || parsed->has_fragment() ||
      parsed->host_address().empty() ||
      (parsed->has_port() && !ValidPort(std::string(parsed->port()))) ||
      (!parsed->path().empty() && parsed->path() != "/")) {
    return absl::InvalidArgumentError(
        absl::StrCat("server URL \"", url, "\" is not https://HOST:PORT"));
  }
  *host = parsed->host_address();
  *port = parsed->has_port() ? std::string(parsed->port()) : "443";
  return absl::OkStatus();
}

struct HttpsClient::Impl {
  Impl() : ctx(ssl::context::tls_client) {}

  absl::Status Connect() {
    stream.reset();
    stream.emplace(ioc, ctx);
    beast::error_code ec;
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(host, port, ec);
    if (ec)
      return absl::UnavailableError(absl::StrCat("cannot resolve ", host, ": ", ec.message()));
    // A host that never answers fails in seconds, not at the system's TCP timeout.
    beast::get_lowest_layer(*stream).expires_after(absl::ToChronoMilliseconds(connect_timeout));
    ec = RunToCompletion(ioc, [&](auto handler) {
      beast::get_lowest_layer(*stream).async_connect(results, std::move(handler));
    });
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot connect to ", host, ":", port, ": ", ec.message()));
    }
    beast::get_lowest_layer(*stream).socket().set_option(tcp::no_delay(true), ec);
    if (!SSL_set_tlsext_host_name(stream->native_handle(), host.c_str())) {
      return absl::InternalError("TLS: cannot set SNI");
    }
    if (verify && check_peer) {
      // check_peer is the whole verdict (SPIFFE rules are not the Web PKI's: no purpose or
      // host name checks); OpenSSL's own is set aside.
      stream->set_verify_callback([](bool, ssl::verify_context&) { return true; });
    } else if (verify) {
      stream->set_verify_callback(ssl::host_name_verification(host));
    }
    ec = RunToCompletion(ioc, [&](auto handler) {
      stream->async_handshake(ssl::stream_base::client, std::move(handler));
    });
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("TLS handshake with ", host, ":", port, " failed: ", ec.message()));
    }
    if (check_peer) {
      std::vector<base::Bytes> chain;
      STACK_OF(X509)* certs = SSL_get_peer_cert_chain(stream->native_handle());  // with the leaf
      for (int i = 0; certs != nullptr && i < sk_X509_num(certs); ++i) {
        unsigned char* der = nullptr;
        const int len = i2d_X509(sk_X509_value(certs, i), &der);
        if (len <= 0) continue;
        chain.emplace_back(der, der + len);
        OPENSSL_free(der);
      }
      if (absl::Status checked = check_peer(chain); !checked.ok()) {
        stream.reset();
        return absl::UnauthenticatedError(
            absl::StrCat("the server at ", host, ":", port, " is refused: ", checked.message()));
      }
    }
    return absl::OkStatus();
  }

  asio::io_context ioc;
  ssl::context ctx;
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream;
  std::string host, port;
  absl::Duration timeout, connect_timeout;
  bool connected = false;
  bool verify = true;  // ClientOptions::verify_peer
  std::function<absl::Status(const std::vector<base::Bytes>&)> check_peer;
  absl::Mutex cancel_mu;  // for Cancel() from another thread
  int stream_fd ABSL_GUARDED_BY(cancel_mu) = -1;
  bool cancelled ABSL_GUARDED_BY(cancel_mu) = false;
};

HttpsClient::HttpsClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpsClient::~HttpsClient() = default;

absl::StatusOr<std::unique_ptr<HttpsClient>> HttpsClient::Create(const ClientOptions& options) {
  auto impl = std::make_unique<Impl>();
  if (absl::Status s = ParseServerUrl(options.server, &impl->host, &impl->port); !s.ok()) {
    return s;
  }
  impl->timeout = options.timeout;
  impl->connect_timeout = options.connect_timeout;
  beast::error_code ec;
  SSL_CTX_set_min_proto_version(impl->ctx.native_handle(), TLS1_2_VERSION);
  impl->verify = options.verify_peer;
  impl->check_peer = options.check_peer;
  if (impl->verify) {
    if (options.system_roots) impl->ctx.set_default_verify_paths(ec);
    if (!ec && !(options.system_roots && options.ca_pem.empty())) {
      impl->ctx.add_certificate_authority(asio::buffer(options.ca_pem), ec);
    }
    if (ec) return absl::InvalidArgumentError("trust bundle: no usable CA certificate");
    impl->ctx.set_verify_mode(ssl::verify_peer);
  } else {
    impl->ctx.set_verify_mode(ssl::verify_none);
  }
  if (!options.client_chain_pem.empty()) {
    impl->ctx.use_certificate_chain(asio::buffer(options.client_chain_pem), ec);
    if (ec || options.client_key == nullptr ||
        SSL_CTX_use_PrivateKey(impl->ctx.native_handle(), options.client_key->get0_pkey()) != 1) {
      return absl::InvalidArgumentError("client certificate or key is unusable");
    }
  }
  return std::unique_ptr<HttpsClient>(new HttpsClient(std::move(impl)));
}

absl::StatusOr<Response> HttpsClient::Request(absl::string_view method, absl::string_view target,
                                              absl::string_view body, const Headers& headers) {
  http::request<http::string_body> req;
  req.method_string(std::string(method));
  req.target(std::string(target));
  req.version(11);
  req.set(http::field::host, impl_->host);
  req.set(http::field::user_agent, "trustwarden");
  for (const auto& [name, value] : headers) req.set(name, value);
  if (!body.empty() || method == "POST") {
    req.set(http::field::content_type, "application/json");
    req.body() = std::string(body);
  }
  req.keep_alive(true);
  req.prepare_payload();

  // A reused connection may have been closed by the server while idle: retry once on a
  // fresh one when nothing of the response arrived.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = impl_->connected;
    if (!impl_->connected) {
      if (absl::Status s = impl_->Connect(); !s.ok()) return s;
      impl_->connected = true;
    }
    beast::error_code ec;
    beast::get_lowest_layer(*impl_->stream)
        .expires_after(absl::ToChronoMilliseconds(impl_->timeout));
    ec = RunToCompletion(impl_->ioc, [&](auto handler) {
      http::async_write(*impl_->stream, req, std::move(handler));
    });
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    if (!ec) {
      ec = RunToCompletion(impl_->ioc, [&](auto handler) {
        http::async_read(*impl_->stream, buffer, parser, std::move(handler));
      });
    }
    if (ec) {
      impl_->connected = false;
      if (reused && !parser.got_some()) continue;
      if (ec == beast::error::timeout) {
        return absl::DeadlineExceededError(
            absl::StrCat("no response within ", absl::FormatDuration(impl_->timeout)));
      }
      return absl::UnavailableError(absl::StrCat("request failed: ", ec.message()));
    }
    auto res = parser.release();
    if (!res.keep_alive()) impl_->connected = false;
    return Response{static_cast<int>(res.result_int()), std::move(res.body()),
                    std::string(res[http::field::content_type]),
                    std::string(res[http::field::date]), std::string(res[http::field::location])};
  }
  return absl::UnavailableError("the server closed the connection");
}

absl::Status HttpsClient::Stream(absl::string_view target, const Headers& headers,
                                 const std::function<bool(absl::string_view)>& on_data) {
  impl_->connected = false;
  if (absl::Status s = impl_->Connect(); !s.ok()) return s;
  {
    absl::MutexLock lock(&impl_->cancel_mu);
    if (impl_->cancelled) return absl::CancelledError("stream: cancelled");
    impl_->stream_fd = beast::get_lowest_layer(*impl_->stream).socket().native_handle();
  }
  absl::Cleanup forget_fd = [this] {
    absl::MutexLock lock(&impl_->cancel_mu);
    impl_->stream_fd = -1;
  };
  http::request<http::empty_body> req{http::verb::get, std::string(target), 11};
  req.set(http::field::host, impl_->host);
  req.set(http::field::accept, "text/event-stream");
  for (const auto& [name, value] : headers) req.set(name, value);
  beast::error_code ec;
  auto& stream = *impl_->stream;
  beast::get_lowest_layer(stream).expires_after(absl::ToChronoMilliseconds(impl_->timeout));
  ec = RunToCompletion(impl_->ioc,
                       [&](auto handler) { http::async_write(stream, req, std::move(handler)); });
  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  if (!ec) {
    ec = RunToCompletion(impl_->ioc, [&](auto handler) {
      http::async_read_header(stream, buffer, parser, std::move(handler));
    });
  }
  if (ec) {
    absl::MutexLock lock(&impl_->cancel_mu);
    if (impl_->cancelled) return absl::CancelledError("stream: cancelled");
    return absl::UnavailableError(absl::StrCat("stream: ", ec.message()));
  }
  if (parser.get().result_int() != 200) {
    return absl::FailedPreconditionError(absl::StrCat("stream: HTTP ", parser.get().result_int()));
  }
  char chunk[8192];
  bool more = true;
  while (more && !parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof(chunk);
    beast::get_lowest_layer(stream).expires_after(absl::ToChronoMilliseconds(impl_->timeout));
    ec = RunToCompletion(impl_->ioc, [&](auto handler) {
      http::async_read_some(stream, buffer, parser, std::move(handler));
    });
    if (ec == http::error::need_buffer) ec = {};
    if (ec) break;
    size_t got = sizeof(chunk) - parser.get().body().size;
    if (got > 0) more = on_data(absl::string_view(chunk, got));
  }
  std::move(forget_fd).Invoke();
  bool cancelled;
  {
    absl::MutexLock lock(&impl_->cancel_mu);
    cancelled = impl_->cancelled;
  }
  beast::error_code ignored;
  beast::get_lowest_layer(stream).socket().close(ignored);
  impl_->stream.reset();
  if (cancelled) return absl::CancelledError("stream: cancelled");
  if (ec && more) return absl::UnavailableError(absl::StrCat("stream: ", ec.message()));
  return absl::OkStatus();
}

void HttpsClient::Cancel() {
  absl::MutexLock lock(&impl_->cancel_mu);
  impl_->cancelled = true;
  // Shutting the socket down wakes the blocked read; the reading thread closes it.
  if (impl_->stream_fd >= 0) ::shutdown(impl_->stream_fd, SHUT_RDWR);
}

}  // namespace tw::net
