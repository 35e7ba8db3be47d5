#include "server/http_server.h"

#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstring>
#include <deque>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/text.h"
#include "crypto/random.h"
#include "server/encode.h"
#include "spdlog/spdlog.h"

namespace tw::server {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

namespace {

constexpr size_t kMaxQueuedEvents = 10000;
constexpr size_t kBacklogPage = 256;  // revocation entries read from the store at once
constexpr char kStreamPath[] = "/v1/revocations/stream";

std::chrono::steady_clock::duration ToChrono(absl::Duration d) {
  return absl::ToChronoMicroseconds(d);
}

absl::StatusOr<std::shared_ptr<ssl::context>> MakeContext(absl::string_view chain_pem,
                                                          absl::string_view key_pem,
                                                          bool client_certificates) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::single_dh_use,
                   ec);
  SSL_CTX* raw = ctx->native_handle();
  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(raw, "ECDHE+AESGCM:ECDHE+CHACHA20");
  static const unsigned char kSessionContext[] = "trustwarden";
  SSL_CTX_set_session_id_context(raw, kSessionContext, sizeof(kSessionContext) - 1);
  if (!ec) ctx->use_certificate_chain(net::buffer(chain_pem.data(), chain_pem.size()), ec);
  if (!ec) ctx->use_private_key(net::buffer(key_pem.data(), key_pem.size()), ssl::context::pem, ec);
  if (ec) return absl::InternalError(absl::StrCat("TLS: ", ec.message()));
  // Client certificates are optional and checked by the SPIFFE verifier, not OpenSSL's; a
  // bundle endpoint asks for none (SPIFFE Federation §5.2: no client authentication).
  if (client_certificates) {
    ctx->set_verify_mode(ssl::verify_peer);
    ctx->set_verify_callback([](bool, ssl::verify_context&) { return true; });
  } else {
    ctx->set_verify_mode(ssl::verify_none);
  }
  return ctx;
}

// RFC 9110 §5.5: a field value is visible ASCII, spaces and tabs; obs-text (bytes of 0x80
// and above) is obsolete, and this server refuses it rather than guess an encoding.
absl::Status CheckFields(const http::request<http::string_body>& req) {
  for (const auto& field : req) {
    for (char c : field.value()) {
      const auto b = static_cast<unsigned char>(c);
      if ((b < 0x20 && b != '\t') || b >= 0x7f) {
        return absl::InvalidArgumentError(
            absl::StrCat("header ", base::Quote(std::string(field.name_string())),
                         " holds a byte outside visible ASCII"));
      }
    }
  }
  return absl::OkStatus();
}

std::vector<base::Bytes> PeerChain(SSL* ssl) {
  std::vector<base::Bytes> out;
  auto add = [&](X509* cert) {
    int len = i2d_X509(cert, nullptr);
    if (len <= 0) return;
    base::Bytes der(static_cast<size_t>(len));
    unsigned char* p = der.data();
    i2d_X509(cert, &p);
    out.push_back(std::move(der));
  };
  X509* leaf = SSL_get0_peer_certificate(ssl);
  if (leaf == nullptr) return out;
  add(leaf);
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);  // server side: without the leaf
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) add(sk_X509_value(chain, i));
  return out;
}

}  // namespace

struct HttpServer::Impl {
  Impl(Api& a, revocation::Hub& h, metrics::Metrics& m, HttpServerOptions o)
      : api(a),
        hub(h),
        metrics(m),
        options(std::move(o)),
        ioc(options.io_threads),
        acceptor(net::make_strand(ioc)),
        workers(static_cast<size_t>(options.worker_threads)),
        request_prefix(base::HexEncode(crypto::RandomBytes(3))) {}

  void Accept();
  std::shared_ptr<ssl::context> context() {
    absl::MutexLock lock(&mu);
    return ctx;
  }
  std::string NextRequestId() {
    return absl::StrCat(request_prefix, "-", next_request.fetch_add(1));
  }
  // Counts a stream subscriber of `remote`; ResourceExhausted past the limits.
  absl::Status AddSubscriber(const std::string& remote) {
    absl::MutexLock lock(&count_mu);
    if (subscribers_total >= options.max_subscribers) {
      return absl::ResourceExhaustedError("too many revocation stream subscribers");
    }
    int& mine = subscribers[remote];
    if (mine >= options.max_subscribers_per_address) {
      return absl::ResourceExhaustedError("too many revocation streams from this address");
    }
    ++mine;
    ++subscribers_total;
    return absl::OkStatus();
  }
  void RemoveSubscriber(const std::string& remote) {
    absl::MutexLock lock(&count_mu);
    --subscribers_total;
    if (--subscribers[remote] <= 0) subscribers.erase(remote);
  }

  Api& api;
  revocation::Hub& hub;
  metrics::Metrics& metrics;
  const HttpServerOptions options;
  // Before the io_context: sessions it destroys on shutdown still count themselves out.
  absl::Mutex count_mu;
  absl::flat_hash_map<std::string, int> subscribers ABSL_GUARDED_BY(count_mu);  // by address
  size_t subscribers_total ABSL_GUARDED_BY(count_mu) = 0;
  std::atomic<size_t> connections{0};
  net::io_context ioc;
  tcp::acceptor acceptor;
  net::thread_pool workers;
  std::vector<std::thread> threads;
  absl::Mutex mu;
  std::shared_ptr<ssl::context> ctx ABSL_GUARDED_BY(mu);
  net::steady_timer accept_backoff{acceptor.get_executor()};  // on the acceptor's strand
  uint16_t port = 0;
  bool stopped = false;
  const std::string request_prefix;
  std::atomic<uint64_t> next_request{1};
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer::Impl& server, tcp::socket socket, std::shared_ptr<ssl::context> ctx)
      : server_(server),
        ctx_(std::move(ctx)),
        stream_(std::move(socket), *ctx_),
        heartbeat_(stream_.get_executor()) {
    boost::system::error_code ec;
    auto endpoint = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
    remote_ = ec ? "unknown" : endpoint.address().to_string();
  }

  ~Session() {
    if (subscription_ != 0) {
      server_.hub.Unsubscribe(subscription_);
      server_.metrics.SubscriberRemoved();
    }
    if (counted_subscriber_) server_.RemoveSubscriber(remote_);
    server_.connections.fetch_sub(1);
  }

  void Run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      beast::get_lowest_layer(self->stream_)
          .expires_after(ToChrono(self->server_.options.request_timeout));
      self->stream_.async_handshake(ssl::stream_base::server, [self](beast::error_code ec) {
        if (ec) return;  // failed handshakes are the client's problem; nothing to log
        self->peer_chain_ = PeerChain(self->stream_.native_handle());
        self->Read();
      });
    });
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(server_.options.max_body_bytes);
    parser_->header_limit(16 * 1024);
    beast::get_lowest_layer(stream_).expires_after(ToChrono(server_.options.request_timeout));
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  // Handles a failed read; false when there was none.
  bool ReadFailed(beast::error_code ec) {
    if (!ec) return false;
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
        ec == net::ssl::error::stream_truncated) {
      Close();
    } else if (ec == http::error::body_limit) {
      unread_body_ = true;
      Refuse(absl::OutOfRangeError("request body too large"));
    } else if (ec.category() == http::make_error_code(http::error::body_limit).category()) {
      Refuse(absl::InvalidArgumentError("malformed HTTP request"));
    } else {
      Close();
    }
    return true;
  }

  // The headers are in: the request is refused here, before its body is read, when its
  // target or headers are malformed or its credentials are missing or wrong.
  void OnHeader(beast::error_code ec) {
    if (ReadFailed(ec)) return;
    const auto& req = parser_->get();
    request_ = HttpRequest{};
    request_.method = std::string(req.method_string());
    request_.authorization = std::string(req[http::field::authorization]);
    request_.last_event_id = std::string(req["Last-Event-ID"]);
    request_.peer_chain = peer_chain_;
    request_.remote = remote_;
    request_.request_id = server_.NextRequestId();
    absl::Status early = CheckFields(req);
    if (early.ok()) early = ParseTarget(std::string(req.target()), &request_);
    const bool bundle_endpoint = server_.options.bundle_endpoint;
    if (early.ok() && !bundle_endpoint && request_.path == kStreamPath &&
        request_.method == "GET") {
      return StartStream(request_, request_.request_id);
    }
    if (early.ok() && !bundle_endpoint) early = server_.api.Preflight(request_);
    if (!early.ok()) {
      unread_body_ = !parser_->is_done();
      return Reply(ErrorResponse(early), false, request_.request_id);
    }
    if (parser_->is_done()) return Dispatch();
    beast::get_lowest_layer(stream_).expires_after(ToChrono(server_.options.request_timeout));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (!self->ReadFailed(ec)) self->Dispatch();
                     });
  }

  // Hands the whole request to a worker.
  void Dispatch() {
    http::request<http::string_body> req = parser_->release();
    const bool keep_alive = req.keep_alive();
    HttpRequest request = std::move(request_);
    request.body = std::move(req.body());
    const std::string request_id = request.request_id;
    const absl::Time start = absl::Now();
    net::post(server_.workers, [self = shared_from_this(), request = std::move(request), keep_alive,
                                request_id, start]() mutable {
      HttpResponse response;
      try {
        response = self->server_.options.bundle_endpoint
                       ? self->server_.api.HandleBundleEndpoint(request)
                       : self->server_.api.Handle(request);
      } catch (...) {
        spdlog::error("request_id={} the handler threw", request_id);
        response = ErrorResponse(absl::InternalError("handler threw"));
      }
      spdlog::info("request_id={} remote={} method={} path={} status={} duration_us={}", request_id,
                   request.remote, request.method, base::Quote(request.path), response.status,
                   absl::ToInt64Microseconds(absl::Now() - start));
      net::post(self->stream_.get_executor(),
                [self, response = std::move(response), keep_alive, request_id]() mutable {
                  self->Reply(std::move(response), keep_alive, request_id);
                });
    });
  }

  // Answers a request the parser refused (it never reaches the API), then closes.
  void Refuse(const absl::Status& status) {
    server_.metrics.RecordRequest();
    server_.metrics.RecordError(status.code());
    Reply(ErrorResponse(status), false, "");
  }

  // Sends `response`, then reads the next request or closes.
  void Reply(HttpResponse response, bool keep_alive, const std::string& request_id) {
    res_ = {};
    res_.result(static_cast<http::status>(response.status));
    res_.version(11);
    res_.set(http::field::server, "trustwarden");
    res_.set(http::field::date,
             absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", absl::Now(), absl::UTCTimeZone()));
    res_.set(http::field::content_type, response.content_type);
    res_.set(http::field::cache_control, "no-store");
    if (!request_id.empty()) res_.set("X-Request-Id", request_id);
    res_.keep_alive(keep_alive);
    res_.body() = std::move(response.body);
    res_.prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(ToChrono(server_.options.request_timeout));
    http::async_write(stream_, res_,
                      [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                        if (!ec && self->unread_body_) return self->Linger();
                        if (ec || !keep_alive) return self->Close();
                        self->Read();
                      });
  }

  // Reads and drops what the client is still sending (for at most two seconds) before
  // closing: closing with unread input resets the connection, and the client may lose the
  // response it has not read yet.
  void Linger() {
    if (unread_body_) {
      unread_body_ = false;
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(2));
    }
    stream_.async_read_some(net::buffer(drain_),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) return self->Close();
                              self->Linger();
                            });
  }

  void StartStream(const HttpRequest& request, const std::string& request_id) {
    absl::Status allowed = server_.api.CheckAddress(request);
    absl::StatusOr<int64_t> after = server_.api.StreamStart(request);
    if (allowed.ok() && after.ok()) allowed = server_.AddSubscriber(remote_);
    if (!allowed.ok() || !after.ok()) {
      return Reply(ErrorResponse(allowed.ok() ? after.status() : allowed), false, request_id);
    }
    counted_subscriber_ = true;
    stream_res_.emplace(http::status::ok, 11);
    stream_res_->set(http::field::server, "trustwarden");
    stream_res_->set(http::field::content_type, "text/event-stream");
    stream_res_->set(http::field::cache_control, "no-store");
    stream_res_->set("X-Request-Id", request_id);
    stream_res_->chunked(true);
    serializer_.emplace(*stream_res_);
    std::weak_ptr<Session> weak = shared_from_this();
    auto executor = stream_.get_executor();
    // Live entries from the moment of subscription; the backlog before it is read from the
    // store a page at a time, so a subscriber far behind costs one page of memory.
    subscription_ = server_.hub.Subscribe(
        [weak, executor](const revocation::Entry& entry) {
          net::post(executor, [weak, sequence = entry.sequence, event = Event(entry)]() mutable {
            if (auto self = weak.lock()) self->EnqueueLive(sequence, std::move(event));
          });
        },
        &backlog_end_);
    backlog_next_ = *after;
    position_ = *after;
    server_.metrics.SubscriberAdded();
    spdlog::info("request_id={} remote={} stream after={}", request_id, remote_, *after);
    beast::get_lowest_layer(stream_).expires_after(ToChrono(server_.options.request_timeout));
    http::async_write_header(stream_, *serializer_,
                             [self = shared_from_this()](beast::error_code ec, size_t) {
                               if (ec) return self->Close();
                               self->writing_ = false;
                               self->WriteNext();
                               self->ArmHeartbeat();
                             });
    // The header write is in flight: queued events go out after it. A first heartbeat at
    // once tells the subscriber the stream is live.
    writing_ = true;
    queue_.push_back(Heartbeat());
  }

  static std::string Event(const revocation::Entry& e) {
    return absl::StrCat("id: ", e.sequence, "\nevent: revocation\ndata: ", RevocationEntryJson(e),
                        "\n\n");
  }

  // ": heartbeat N": N is the last sequence this stream has queued, in order with the
  // entries (pruned and skipped sequences are never in it), so a subscriber behind N missed
  // an entry it was sent. ": bundle B": the trust bundle's spiffe_sequence, so that a
  // subscriber whose bundle is older fetches the new one (a CA rotation) within a second.
  // ": federation F": changes whenever a federated bundle or the policy's foreign grants
  // may have, so that a subscriber fetches GET /v1/bundles and /v1/federation/grants again.
  std::string Heartbeat() const {
    return absl::StrCat(": heartbeat ", position_, "\n: bundle ", server_.api.BundleSequence(),
                        "\n: federation ", server_.api.FederationVersion(), "\n\n");
  }

  // Reads the next backlog page on a worker; its entries join the queue on this strand.
  void FetchBacklog() {
    if (fetching_ || backlog_done_ || closed_) return;
    if (backlog_next_ >= backlog_end_) {
      backlog_done_ = true;
      for (auto& [sequence, event] : live_) {
        if (sequence <= backlog_end_) continue;
        queue_.push_back(std::move(event));
        position_ = std::max(position_, sequence);
      }
      live_.clear();
      return;
    }
    fetching_ = true;
    net::post(server_.workers, [self = shared_from_this()] {
      auto page = self->server_.api.RevocationLog(self->backlog_next_, kBacklogPage);
      net::post(self->stream_.get_executor(), [self, page = std::move(page)]() mutable {
        self->fetching_ = false;
        if (!page.ok()) {
          spdlog::error("revocation stream backlog: {}", page.status().ToString());
          return self->Close();
        }
        for (const revocation::Entry& e : *page) {
          if (e.sequence > self->backlog_end_) {
            self->backlog_next_ = self->backlog_end_;  // the rest is live
            break;
          }
          self->queue_.push_back(Event(e));
          self->backlog_next_ = self->position_ = e.sequence;
        }
        if (page->size() < kBacklogPage) self->backlog_next_ = self->backlog_end_;
        if (!self->writing_) self->WriteNext();
      });
    });
  }

  void ArmHeartbeat() {
    heartbeat_.expires_after(ToChrono(server_.options.heartbeat));
    heartbeat_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_) return;
      self->Enqueue(self->Heartbeat());
      self->ArmHeartbeat();
    });
  }

  void EnqueueLive(int64_t sequence, std::string event) {
    if (closed_) return;
    if (!backlog_done_) {
      if (live_.size() >= kMaxQueuedEvents) return Close();  // the client stopped reading
      live_.emplace_back(sequence, std::move(event));
      return;
    }
    position_ = std::max(position_, sequence);
    Enqueue(std::move(event));
  }

  void Enqueue(std::string event) {
    if (closed_) return;
    if (queue_.size() >= kMaxQueuedEvents) return Close();  // the client stopped reading
    queue_.push_back(std::move(event));
    if (!writing_) WriteNext();
  }

  void WriteNext() {
    if (closed_) {
      writing_ = false;
      return;
    }
    if (queue_.empty()) {
      writing_ = false;
      FetchBacklog();
      if (queue_.empty()) return;
    }
    writing_ = true;
    beast::get_lowest_layer(stream_).expires_after(ToChrono(server_.options.request_timeout));
    net::async_write(stream_, http::make_chunk(net::buffer(queue_.front())),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return self->Close();
                       self->queue_.pop_front();
                       self->WriteNext();
                     });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    if (subscription_ != 0) {
      server_.hub.Unsubscribe(subscription_);
      server_.metrics.SubscriberRemoved();
      subscription_ = 0;
    }
    if (counted_subscriber_) {
      server_.RemoveSubscriber(remote_);
      counted_subscriber_ = false;
    }
    heartbeat_.cancel();
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(2));
    stream_.async_shutdown([self = shared_from_this()](beast::error_code) {
      beast::error_code ignored;
      beast::get_lowest_layer(self->stream_).socket().close(ignored);
    });
  }

  HttpServer::Impl& server_;
  std::shared_ptr<ssl::context> ctx_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  bool unread_body_ = false;  // a refused request's body is still arriving
  std::array<char, 16384> drain_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  std::vector<base::Bytes> peer_chain_;
  std::string remote_;
  HttpRequest request_;  // the one being read
  // Event stream state.
  std::optional<http::response<http::empty_body>> stream_res_;
  std::optional<http::response_serializer<http::empty_body>> serializer_;
  net::steady_timer heartbeat_;
  std::deque<std::string> queue_;
  std::deque<std::pair<int64_t, std::string>> live_;  // published while the backlog is out
  int64_t backlog_next_ = 0;                          // the backlog resumes after this
  int64_t backlog_end_ = 0;                           // and ends here (the subscription's start)
  int64_t position_ = 0;                              // the last sequence queued
  bool backlog_done_ = false;
  bool fetching_ = false;
  bool writing_ = false;
  bool closed_ = false;
  bool counted_subscriber_ = false;
  uint64_t subscription_ = 0;
};

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (ec == net::error::no_descriptors || ec == net::error::no_buffer_space ||
        ec == net::error::no_memory) {
      // Out of file descriptors (EMFILE, ENFILE): wait for connections to close rather than
      // spin on a listener that stays readable.
      // strerror, not ec.message(): on this error UBSan reports an invalid vptr inside
      // Boost.System's message().
      spdlog::warn("accept: {}; pausing for 100 ms", std::strerror(ec.value()));
      accept_backoff.expires_after(std::chrono::milliseconds(100));
      accept_backoff.async_wait([this](beast::error_code wait) {
        if (!wait) Accept();
      });
      return;
    }
    if (!ec) {
      if (connections.fetch_add(1) >= options.max_connections) {
        connections.fetch_sub(1);
        boost::system::error_code ignored;
        socket.close(ignored);  // over the limit: no handshake, no state
      } else {
        socket.set_option(tcp::no_delay(true), ec);
        std::make_shared<Session>(*this, std::move(socket), context())->Run();
      }
    }
    Accept();
  });
}

HttpServer::HttpServer(Api& api, revocation::Hub& hub, metrics::Metrics& metrics,
                       HttpServerOptions options)
    : impl_(std::make_unique<Impl>(api, hub, metrics, std::move(options))) {}

HttpServer::~HttpServer() { Stop(); }

absl::Status HttpServer::SetCertificate(absl::string_view chain_pem, absl::string_view key_pem) {
  auto ctx = MakeContext(chain_pem, key_pem, !impl_->options.bundle_endpoint);
  if (!ctx.ok()) return ctx.status();
  absl::MutexLock lock(&impl_->mu);
  impl_->ctx = *std::move(ctx);
  return absl::OkStatus();
}

absl::Status HttpServer::Start(absl::string_view chain_pem, absl::string_view key_pem) {
  if (absl::Status s = SetCertificate(chain_pem, key_pem); !s.ok()) return s;
  boost::system::error_code ec;
  net::ip::address address = net::ip::make_address(impl_->options.host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address \"", impl_->options.host, "\" is not an IP address"));
  }
  tcp::endpoint endpoint(address, impl_->options.port);
  impl_->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(endpoint, ec);
  if (!ec) impl_->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", impl_->options.host, ":",
                                               impl_->options.port, ": ", ec.message()));
  }
  impl_->port = impl_->acceptor.local_endpoint().port();
  impl_->Accept();
  for (int i = 0; i < impl_->options.io_threads; ++i) {
    impl_->threads.emplace_back([this] {
      // An exception out of a completion handler must not end the process: log it and
      // keep serving the other connections.
      for (;;) {
        try {
          impl_->ioc.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("I/O thread: {}", base::Quote(e.what(), 512));
        } catch (...) {
          spdlog::error("I/O thread: unknown exception");
        }
      }
    });
  }
  return absl::OkStatus();
}

uint16_t HttpServer::port() const { return impl_->port; }

void HttpServer::Stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  net::post(impl_->acceptor.get_executor(), [this] {
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
    impl_->accept_backoff.cancel();
  });
  impl_->workers.join();
  impl_->ioc.stop();
  for (std::thread& t : impl_->threads) t.join();
}

}  // namespace tw::server
