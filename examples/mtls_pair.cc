// Two agents talking over mutual TLS with their SVIDs, using OpenSSL directly: the reporter
// asks the payment processor for today's figures, and the processor answers only callers
// whose SVID grants read:transactions, so an agent without that scope is refused during the
// handshake. The exit status is 0 only when both outcomes happen. The server, a token and
// the trust bundle come from TRUSTWARDEN_SERVER, TRUSTWARDEN_TOKEN and TRUSTWARDEN_BUNDLE.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <trustwarden/trustwarden.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <exception>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

namespace {

constexpr char kQuestion[] = "how much moved today?";
constexpr char kAnswer[] = "3 transactions, 1,240.50 EUR in total";

// Both sides print; one line at a time.
std::mutex print_mu;
void Say(const std::string& line) {
  std::lock_guard<std::mutex> lock(print_mu);
  std::cout << line << std::endl;
}

struct CtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxFree>;
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

// A socket closed when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// No step may hang: accept, reads and writes give up after five seconds.
void SetTimeouts(int fd) {
  const timeval five_seconds{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &five_seconds, sizeof(five_seconds));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &five_seconds, sizeof(five_seconds));
}

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

// Binds `fd` to 127.0.0.1 on a port the kernel picks, listens, and returns the port.
uint16_t ListenOnLoopback(int fd) {
  sockaddr_in addr = Loopback(0);
  socklen_t length = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, 4) != 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    throw std::runtime_error(std::string("cannot listen on 127.0.0.1: ") + std::strerror(errno));
  }
  SetTimeouts(fd);
  return ntohs(addr.sin_port);
}

// What went wrong on this thread's TLS connection: OpenSSL's queued errors and, when the
// peer's certificate was refused, why.
std::string TlsError(const SSL* ssl) {
  std::string out;
  char text[256];
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    ERR_error_string_n(e, text, sizeof(text));
    out += (out.empty() ? "" : "; ") + std::string(text);
  }
  if (ssl != nullptr && SSL_get_verify_result(ssl) != X509_V_OK) {
    out += (out.empty() ? "" : "; ") + std::string("peer certificate: ") +
           X509_verify_cert_error_string(SSL_get_verify_result(ssl));
  }
  return out.empty() ? "the connection was closed" : out;
}

// Reads one line (without its '\n', at most 4 KiB); false when the connection fails first.
bool ReadLine(SSL* ssl, std::string* line) {
  line->clear();
  char c;
  while (line->size() < 4096) {
    if (SSL_read(ssl, &c, 1) != 1) return false;
    if (c == '\n') return true;
    line->push_back(c);
  }
  return false;
}

bool WriteLine(SSL* ssl, const std::string& line) {
  const std::string data = line + "\n";
  return SSL_write(ssl, data.data(), static_cast<int>(data.size())) ==
         static_cast<int>(data.size());
}

// The processor's side of one connection.
struct Served {
  bool handshake = false;  // the caller's SVID met the context's requirement
  std::string caller;      // its SPIFFE ID
  std::string request;
  std::string error;
};

Served ServeOne(SSL_CTX* ctx, int listener) {
  Served served;
  Fd conn(::accept(listener, nullptr, nullptr));
  if (conn.get() < 0) {
    served.error = std::string("accept: ") + std::strerror(errno);
    return served;
  }
  SetTimeouts(conn.get());
  SslPtr ssl(SSL_new(ctx));
  if (ssl == nullptr || SSL_set_fd(ssl.get(), conn.get()) != 1) {
    served.error = TlsError(nullptr);
    return served;
  }
  if (SSL_accept(ssl.get()) != 1) {
    served.error = TlsError(ssl.get());
    Say("   processor: refused the caller: " + served.error);
    return served;
  }
  served.handshake = true;
  served.caller = trustwarden::peer_spiffe_id(ssl.get());
  Say("   processor: authenticated the caller as " + served.caller);
  if (!ReadLine(ssl.get(), &served.request)) {
    served.error = "reading the request: " + TlsError(ssl.get());
    return served;
  }
  Say("   processor: asked \"" + served.request + "\"");
  if (!WriteLine(ssl.get(), kAnswer)) {
    served.error = "writing the answer: " + TlsError(ssl.get());
    return served;
  }
  SSL_shutdown(ssl.get());
  return served;
}

// The caller's side of one connection.
struct Asked {
  bool handshake = false;
  std::string server;  // the SPIFFE ID the server presented
  std::string reply;
  std::string error;
};

Asked Ask(SSL_CTX* ctx, uint16_t port, const std::string& question) {
  Asked asked;
  Fd conn(::socket(AF_INET, SOCK_STREAM, 0));
  const sockaddr_in addr = Loopback(port);
  if (conn.get() < 0 ||
      ::connect(conn.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    asked.error = std::string("connect: ") + std::strerror(errno);
    return asked;
  }
  SetTimeouts(conn.get());
  SslPtr ssl(SSL_new(ctx));
  if (ssl == nullptr || SSL_set_fd(ssl.get(), conn.get()) != 1) {
    asked.error = TlsError(nullptr);
    return asked;
  }
  if (SSL_connect(ssl.get()) != 1) {
    asked.error = TlsError(ssl.get());
    return asked;
  }
  // With TLS 1.3 the client finishes its handshake before the server has judged the client
  // certificate: a refusal arrives as an alert on the first read.
  asked.handshake = true;
  asked.server = trustwarden::peer_spiffe_id(ssl.get());
  if (!WriteLine(ssl.get(), question) || !ReadLine(ssl.get(), &asked.reply)) {
    asked.error = TlsError(ssl.get());
    asked.reply.clear();
    return asked;
  }
  SSL_shutdown(ssl.get());
  return asked;
}

CtxPtr Context(ssl_ctx_st* ctx) {
  if (ctx == nullptr) throw std::runtime_error("the SDK returned no SSL_CTX");
  return CtxPtr(ctx);
}

int Run() {
  using trustwarden::AgentIdentity;
  bool as_expected = true;
  auto unexpected = [&as_expected](const std::string& what) {
    Say("   UNEXPECTED: " + what);
    as_expected = false;
  };

  Say("1. Two agents of acme-corp's finance team get identities.");
  AgentIdentity processor = AgentIdentity::create(
      {.name = "acme-corp/finance-team/payment-processor", .scope = {"serve:transactions"}});
  AgentIdentity reporter = AgentIdentity::create(
      {.name = "acme-corp/finance-team/reporter", .scope = {"read:transactions"}});
  Say("   processor: " + processor.spiffe_id());
  Say("   reporter:  " + reporter.spiffe_id());

  // Each context presents its agent's current SVID; the agents outlive the contexts.
  CtxPtr processor_ctx =
      Context(trustwarden::server_tls_context(processor, {.scope = "read:transactions"}));
  CtxPtr reporter_ctx =
      Context(trustwarden::client_tls_context(reporter, {.spiffe_ids = {processor.spiffe_id()}}));
  Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
  const uint16_t port = ListenOnLoopback(listener.get());
  Say("2. The processor listens on 127.0.0.1:" + std::to_string(port) +
      " and admits only callers whose SVID grants read:transactions.");

  Say("3. The reporter connects, expecting exactly the processor's SPIFFE ID, and asks.");
  std::future<Served> serving =
      std::async(std::launch::async, ServeOne, processor_ctx.get(), listener.get());
  const Asked asked = Ask(reporter_ctx.get(), port, kQuestion);
  const Served served = serving.get();
  if (!asked.reply.empty()) {
    Say("   reporter: " + asked.server + " answered \"" + asked.reply + "\"");
  } else {
    unexpected("the reporter got no answer: " + asked.error);
  }
  if (!served.handshake || served.caller != reporter.spiffe_id()) {
    unexpected("the processor did not authenticate the reporter: " + served.error);
  }
  if (asked.server != processor.spiffe_id()) {
    unexpected("the reporter was answered by \"" + asked.server + "\"");
  }

  AgentIdentity writer = AgentIdentity::create(
      {.name = "acme-corp/finance-team/ledger-writer", .scope = {"write:ledger"}});
  CtxPtr writer_ctx =
      Context(trustwarden::client_tls_context(writer, {.spiffe_ids = {processor.spiffe_id()}}));
  Say("4. A third agent, " + writer.spiffe_id() + ", holds only write:ledger and asks the same.");
  serving = std::async(std::launch::async, ServeOne, processor_ctx.get(), listener.get());
  const Asked intruder = Ask(writer_ctx.get(), port, kQuestion);
  const Served refused = serving.get();
  if (refused.handshake) {
    unexpected("the processor admitted " + refused.caller);
  }
  if (!intruder.reply.empty()) {
    unexpected("the third agent got an answer: \"" + intruder.reply + "\"");
  } else {
    Say("   third agent: the handshake failed: " + intruder.error);
  }

  Say(as_expected ? "Both outcomes as expected." : "The outcomes were NOT as expected.");
  return as_expected ? 0 : 1;
}

}  // namespace

int main() {
  // A refused peer may close its socket while we write to it: report that as an error
  // instead of dying of SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return Run();
  } catch (const trustwarden::Error& e) {
    std::cerr << "error: " << e.code() << ": " << e.what() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
  }
  return 1;
}
