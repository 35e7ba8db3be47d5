// The SDK against the real server in-process on port 0.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/testing/loopback.h"
#include "base/testing/temp_dir.h"
#include "core/bundle.h"
#include "core/certificate.h"
#include "core/x509_verifier.h"
#include "gtest/gtest.h"
#include "net/https_client.h"
#include "nlohmann/json.hpp"
#include "sdk/connector_registry.h"
#include "sdk/identity_state.h"
#include "sdk/spool.h"
#include "sdk/status_error.h"
#include "server/testing/test_server.h"
#include "trustwarden/trustwarden.h"

namespace trustwarden {
namespace {

using nlohmann::json;

class AgentIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = tw::server::TestServer::Start(
        [this](tw::server::ServerConfig& c) { c.ledger_events_per_instance = ledger_rate_; });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    dir_ = server_->dir();
    connection_.server = server_->url();
    connection_.token = server_->admin_token();
    connection_.bundle = server_->bundle_path();
    connection_.spool_dir = dir_ + "/spool";
    AgentIdentity::register_connector("test", [this](AgentIdentity& agent,
                                                     const CallRequest& request) {
      ++connector_calls_;
      if (request.payload == "fail") throw std::runtime_error("the resource said no");
      return absl::StrCat(agent.instance_id(), " did ", request.action, " on ", request.resource);
    });
  }
  void StopServer() { server_->Stop(); }
  // Starts the server again on its data directory and port.
  void RestartServer() {
    absl::Status restarted = server_->Restart();
    ASSERT_TRUE(restarted.ok()) << restarted;
  }
  // Events per second and instance; the load tests drive one instance flat out.
  double ledger_rate_ = 0;
  uint16_t port() const { return server_->port(); }

  void TearDown() override { server_.reset(); }

  // An identity whose certificate and JWT-SVID lifetimes, renewals and spool shipping run
  // on clock_ (its revocation stream on `stream_clock`).
  AgentIdentity CreateOnTestClock(
      const IdentityOptions& options,
      const tw::base::Clock& stream_clock = tw::base::Clock::Monotonic()) {
    return internal::ValueOrThrow(
        internal::CreateIdentity(options, {.identity = &clock_, .stream = &stream_clock}));
  }

  IdentityOptions Payments() const {
    return IdentityOptions{.name = "acme-corp/finance-team/payment-processor",
                           .scope = {"read:transactions", "write:ledger"},
                           .ttl = "30m",
                           .trust_level = "high",
                           .connection = connection_};
  }

  // GET with the admin token; the parsed reply.
  json AdminGet(const std::string& target) {
    auto client = tw::net::HttpsClient::Create(
        {.server = connection_.server, .ca_pem = *tw::base::ReadFile(connection_.bundle)});
    EXPECT_TRUE(client.ok());
    auto r =
        (*client)->Request("GET", target, "", {{"Authorization", "Bearer " + connection_.token}});
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << r->body;
    return json::parse(r->body);
  }

  // POST with the admin token; the parsed reply.
  json AdminPost(const std::string& target, const json& body) {
    auto client = tw::net::HttpsClient::Create(
        {.server = connection_.server, .ca_pem = *tw::base::ReadFile(connection_.bundle)});
    EXPECT_TRUE(client.ok());
    auto r = (*client)->Request(
        "POST", target, body.dump(),
        {{"Authorization", "Bearer " + connection_.token}, {"Content-Type", "application/json"}});
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_LT(r->status, 300) << r->body;
    return json::parse(r->body, nullptr, false);
  }

  // Starts at the real time: the in-process server issues certificates on it.
  tw::base::FakeClock clock_{absl::Now()};
  std::string dir_;
  std::unique_ptr<tw::server::TestServer> server_;
  Connection connection_;
  std::atomic<int> connector_calls_{0};
};

// The "exp" claim of a JWT.
absl::Time ExpiryOf(const std::string& jwt) {
  const std::vector<std::string> parts = absl::StrSplit(jwt, '.');
  std::string claims;
  if (parts.size() != 3 || !tw::base::Base64UrlDecode(parts[1], &claims)) {
    ADD_FAILURE() << "not a JWT: " << jwt;
    return absl::InfinitePast();
  }
  return absl::FromUnixSeconds(json::parse(claims).value("exp", int64_t{0}));
}

TEST_F(AgentIdentityTest, CreateReturnsAVerifiedIdentityCarryingTheRequest) {
  AgentIdentity agent = AgentIdentity::create(Payments());
  EXPECT_TRUE(absl::StartsWith(
      agent.spiffe_id(), "spiffe://trustwarden/acme-corp/finance-team/payment-processor/inst-"));
  EXPECT_TRUE(absl::EndsWith(agent.spiffe_id(), "/" + agent.instance_id()));
  EXPECT_EQ(agent.scopes(), (std::vector<std::string>{"read:transactions", "write:ledger"}));
  EXPECT_EQ(agent.trust_level(), "high");
  const auto left = agent.expires_at() - std::chrono::system_clock::now();
  EXPECT_GT(left, std::chrono::minutes(29));
  EXPECT_LE(left, std::chrono::minutes(30));
  EXPECT_FALSE(agent.revoked());

  // The certificate chains to the bundle on its own.
  auto bundle = tw::core::Bundle::Parse(*tw::base::ReadFile(connection_.bundle));
  ASSERT_TRUE(bundle.ok());
  auto set = std::make_shared<tw::core::BundleSet>();
  set->Put(*bundle);
  auto chain = tw::core::Certificate::ParseChain(agent.svid_pem());
  ASSERT_TRUE(chain.ok() && !chain->empty());
  auto svid = tw::core::X509Verifier(set).Verify({tw::base::ByteView((*chain)[0].der())});
  ASSERT_TRUE(svid.ok()) << svid.status();
  EXPECT_EQ(svid->spiffe_id.str(), agent.spiffe_id());
  agent.detach();
}

TEST_F(AgentIdentityTest, RefusalsAreErrorsWithTheServersCode) {
  IdentityOptions options = Payments();
  options.connection.token = "tw_not-a-token";
  try {
    AgentIdentity::create(options);
    FAIL() << "created with a bad token";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), "unauthenticated") << e.what();
  }
  options = Payments();
  options.scope = {"not a scope"};
  try {
    AgentIdentity::create(options);
    FAIL() << "created with a bad scope";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), "invalid_argument") << e.what();
  }
  options = Payments();
  options.connection.server = "https://127.0.0.1:1";
  EXPECT_THROW(AgentIdentity::create(options), Error);
}

TEST_F(AgentIdentityTest, SpawnDelegatesOnlyNarrower) {
  AgentIdentity parent = AgentIdentity::create(Payments());
  AgentIdentity child = parent.spawn({.name = "acme-corp/finance-team/reconciler",
                                      .scope = {"read:transactions"},
                                      .ttl = "10m",
                                      .trust_level = "medium"});
  EXPECT_EQ(child.scopes(), std::vector<std::string>{"read:transactions"});
  json shown = AdminGet("/v1/identities/" + child.instance_id());
  EXPECT_EQ(shown.value("parent", ""), parent.spiffe_id()) << shown.dump();
  try {
    parent.spawn({.name = "acme-corp/finance-team/reconciler", .scope = {"delete:records"}});
    FAIL() << "a child got a scope its parent lacks";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), "permission_denied") << e.what();
  }
}

TEST_F(AgentIdentityTest, AllowedCallIsRecordedThenPerformedThenItsOutcomeRecorded) {
  AgentIdentity agent = AgentIdentity::create(Payments());
  CallResult r = agent.call("test://ledger-db/transactions", "read:transactions", "SELECT 1",
                            {.input = "summarize today's payments"});
  EXPECT_EQ(r.response,
            agent.instance_id() + " did read:transactions on test://ledger-db/transactions");
  EXPECT_EQ(connector_calls_, 1);
  json trace = AdminGet("/v1/audit/trace/" + r.event_id);
  const std::string text = trace.dump();
  EXPECT_NE(text.find("\"allow\""), std::string::npos) << text;
  EXPECT_NE(text.find(agent.spiffe_id()), std::string::npos) << text;
  EXPECT_NE(text.find("sha256:"), std::string::npos) << text;  // the prompt's digest
  json outcomes = AdminGet("/v1/audit/events?instance=" + agent.instance_id());
  EXPECT_NE(outcomes.dump().find("\"outcome\""), std::string::npos) << outcomes.dump();

  // A failing resource: the error reaches the caller and the outcome says so.
  EXPECT_THROW(agent.call("test://ledger-db/transactions", "read:transactions", "fail"),
               std::runtime_error);
  EXPECT_EQ(connector_calls_, 2);
  EXPECT_NE(AdminGet("/v1/audit/events?instance=" + agent.instance_id())
                .dump()
                .find("the resource said no"),
            std::string::npos);
}

TEST_F(AgentIdentityTest, CallOutsideTheScopesIsDeniedRecordedAndNotPerformed) {
  AgentIdentity agent = AgentIdentity::create(Payments());
  try {
    agent.call("test://ledger-db/records", "delete:records", "DELETE FROM records");
    FAIL() << "delete:records was allowed";
  } catch (const Denied& d) {
    EXPECT_NE(d.reason().find("delete:records"), std::string::npos) << d.reason();
    ASSERT_FALSE(d.event_id().empty());
    const std::string trace = AdminGet("/v1/audit/trace/" + d.event_id()).dump();
    EXPECT_NE(trace.find("\"deny\""), std::string::npos) << trace;
    EXPECT_NE(trace.find("not granted"), std::string::npos) << trace;
  }
  EXPECT_EQ(connector_calls_, 0);
  EXPECT_THROW(agent.call("test://x", "not-a-scope"), Error);
  EXPECT_THROW(agent.call("nowhere://x", "read:transactions"), Error);  // no connector
  EXPECT_EQ(connector_calls_, 0);
}

// close() and destruction after an operator's revocation are quiet no-ops, whether or not
// the revocation stream has told the process yet.
TEST_F(AgentIdentityTest, ClosingAnIdentityAnOperatorRevokedIsQuiet) {
  AgentIdentity agent = AgentIdentity::create(Payments());
  AgentIdentity other = AgentIdentity::create(Payments());
  revoke({.instance = agent.instance_id()}, connection_);
  EXPECT_NO_THROW(agent.close());
  EXPECT_TRUE(agent.revoked());
  // The stream has not delivered this one yet when close() runs: the server's refusal
  // ("revoked") is just as final.
  const std::string other_id = other.instance_id();
  StopServer();
  RestartServer();
  revoke({.instance = other_id}, connection_);
  EXPECT_NO_THROW(other.close());
}

TEST_F(AgentIdentityTest, CloseRevokesTheInstanceAndItsChildrenOnTheServer) {
  AgentIdentity parent = AgentIdentity::create(Payments());
  AgentIdentity child =
      parent.spawn({.name = "acme-corp/finance-team/reconciler", .scope = {"read:transactions"}});
  const std::string parent_id = parent.instance_id(), child_id = child.instance_id();
  child.detach();
  parent.close();
  parent.close();  // idempotent
  EXPECT_TRUE(parent.revoked());
  json revocations = AdminGet("/v1/revocations?after=0");
  const std::string text = revocations.dump();
  EXPECT_NE(text.find(parent_id), std::string::npos) << text;
  EXPECT_NE(text.find(child_id), std::string::npos) << text;
  try {
    parent.call("test://ledger-db/transactions", "read:transactions");
    FAIL() << "a closed identity acted";
  } catch (const Revoked& d) {
    EXPECT_TRUE(d.event_id().empty());  // a revoked instance cannot write to the ledger
  }
  // The child's credential is dead on the server too: it cannot record anything.
  EXPECT_THROW(child.call("test://ledger-db/transactions", "read:transactions"), Error);
  EXPECT_EQ(connector_calls_, 0);
}

TEST_F(AgentIdentityTest, DestructionRevokesUnlessDetached) {
  std::string dropped, handed_over;
  {
    AgentIdentity a = AgentIdentity::create(Payments());
    AgentIdentity b = AgentIdentity::create(Payments());
    dropped = a.instance_id();
    handed_over = b.instance_id();
    b.detach();
  }
  const std::string text = AdminGet("/v1/revocations?after=0").dump();
  EXPECT_NE(text.find(dropped), std::string::npos) << text;
  EXPECT_EQ(text.find(handed_over), std::string::npos) << text;
}

TEST_F(AgentIdentityTest, AnExpiredIdentityIsRefusedAsExpired) {
  AgentIdentity agent = CreateOnTestClock(Payments());
  clock_.Set(absl::FromChrono(agent.expires_at()));
  try {
    agent.call("test://ledger-db/transactions", "read:transactions");
    FAIL() << "an expired identity acted";
  } catch (const Expired& e) {
    EXPECT_EQ(e.code(), "permission_denied");
    EXPECT_NE(std::string(e.what()).find("expired"), std::string::npos) << e.what();
  }
  EXPECT_EQ(connector_calls_, 0);
  agent.detach();  // its certificate can no longer revoke itself
}

TEST_F(AgentIdentityTest, BareNamesTakeTheirOrgAndTeamFromTheEnvironmentOrTheParent) {
  IdentityOptions options = Payments();
  options.name = "payment-processor";
  setenv("TRUSTWARDEN_ORG", "acme-corp", 1);
  setenv("TRUSTWARDEN_TEAM", "finance-team", 1);
  AgentIdentity agent = AgentIdentity::create(options);
  unsetenv("TRUSTWARDEN_ORG");
  unsetenv("TRUSTWARDEN_TEAM");
  EXPECT_TRUE(absl::StartsWith(
      agent.spiffe_id(), "spiffe://trustwarden/acme-corp/finance-team/payment-processor/inst-"))
      << agent.spiffe_id();
  // A child's bare name goes under its parent's org and team, whatever the environment says.
  setenv("TRUSTWARDEN_ORG", "elsewhere", 1);
  AgentIdentity child = agent.spawn({.name = "reconciler", .scope = {"read:transactions"}});
  unsetenv("TRUSTWARDEN_ORG");
  EXPECT_TRUE(absl::StartsWith(child.spiffe_id(),
                               "spiffe://trustwarden/acme-corp/finance-team/reconciler/inst-"))
      << child.spiffe_id();
  // Unset: the documented default.
  AgentIdentity plain = AgentIdentity::create(options);
  EXPECT_TRUE(absl::StartsWith(plain.spiffe_id(),
                               "spiffe://trustwarden/default/default/payment-processor/inst-"))
      << plain.spiffe_id();
  // The bundle the identity verifies peers against is the server's.
  EXPECT_NE(agent.bundle_pem().find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_EQ(agent.bundle_pem(),
            tw::core::Bundle::Parse(*tw::base::ReadFile(connection_.bundle))->ToPem());
}

TEST_F(AgentIdentityTest, JwtIsReusedUntilNearExpiry) {
  AgentIdentity agent = CreateOnTestClock(Payments());
  const std::string a = agent.jwt("payments-api");
  EXPECT_EQ(std::count(a.begin(), a.end(), '.'), 2);
  EXPECT_EQ(agent.jwt("payments-api"), a);
  EXPECT_NE(agent.jwt("ledger-api"), a);
  // Reused until a minute before it expires; from then on a new one.
  const absl::Time expires = ExpiryOf(a);
  clock_.Set(expires - absl::Minutes(1) - absl::Seconds(1));
  EXPECT_EQ(agent.jwt("payments-api"), a);
  clock_.Set(expires - absl::Minutes(1));
  EXPECT_NE(agent.jwt("payments-api"), a);
}

// Polls `done` every 10 ms for up to `seconds` (for what the server does, not for time).
bool Eventually(const std::function<bool()>& done, double seconds = 5) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

size_t Certificates(const std::string& pem) {
  size_t n = 0;
  for (size_t at = pem.find("BEGIN CERTIFICATE"); at != std::string::npos;
       at = pem.find("BEGIN CERTIFICATE", at + 1)) {
    ++n;
  }
  return n;
}

TEST_F(AgentIdentityTest, AnIdentityFollowsACaRotationAnnouncedOnTheStream) {
  // The SPIFFE bundle (a PEM bundle has no sequence to follow, and stays as given).
  IdentityOptions options = Payments();
  options.connection.bundle = server_->data_dir() + "/bundle.json";
  AgentIdentity agent = AgentIdentity::create(options);
  EXPECT_EQ(Certificates(agent.bundle_pem()), 1u);
  AdminPost("/v1/ca/prepare", json::object());
  // The stream's heartbeat announces the new bundle; the identity fetches it.
  EXPECT_TRUE(Eventually([&] { return Certificates(agent.bundle_pem()) == 2; }));
  // The server's own certificate moves to the new authority: the identity still reaches it.
  AdminPost("/v1/ca/activate", json{{"force", true}});
  EXPECT_EQ(Certificates(agent.bundle_pem()), 2u);
  const std::string jwt = agent.jwt("after-rotation");
  EXPECT_EQ(std::count(jwt.begin(), jwt.end(), '.'), 2);
  EXPECT_NO_THROW(agent.call("test://ledger", "read:transactions"));
  // Its SVID, from the old authority, still verifies against the new bundle.
  AgentIdentity child =
      agent.spawn({.name = "acme-corp/finance-team/after", .scope = {"read:transactions"}});
  EXPECT_FALSE(child.spiffe_id().empty());
}

TEST_F(AgentIdentityTest, RenewsAtHalfLifeWithANewKeyKeepingTheInstance) {
  IdentityOptions options = Payments();
  options.ttl = "2m";
  const absl::Time created = clock_.Now();
  AgentIdentity agent = CreateOnTestClock(options);
  const std::string first = agent.svid_pem(), id = agent.spiffe_id();
  const absl::Duration life = absl::FromChrono(agent.expires_at()) - created;
  // The renewer sleeps until half the life, give or take 5%: well before the expiry.
  const std::optional<absl::Time> due = clock_.NextWakeup(absl::Seconds(10));
  ASSERT_TRUE(due.has_value()) << "the renewer never went to sleep";
  EXPECT_GE(*due, created + life * 0.45);
  EXPECT_LE(*due, created + life * 0.55);
  clock_.Set(*due - absl::Milliseconds(1));
  EXPECT_EQ(agent.svid_pem(), first) << "renewed before its time";
  clock_.Set(*due);
  ASSERT_TRUE(Eventually([&] { return agent.svid_pem() != first; })) << "not renewed when due";
  EXPECT_EQ(agent.spiffe_id(), id);
  auto old_leaf = tw::core::Certificate::ParseChain(first);
  auto new_leaf = tw::core::Certificate::ParseChain(agent.svid_pem());
  ASSERT_TRUE(old_leaf.ok() && new_leaf.ok());
  EXPECT_NE(tw::base::AsChars((*old_leaf)[0].spki()), tw::base::AsChars((*new_leaf)[0].spki()));
  // The renewed credential is usable at once.
  EXPECT_NO_THROW(agent.call("test://ledger-db/transactions", "read:transactions"));
}

// The Denied that `call` throws; a failure when it does not throw Denied.
Denied DenialOf(const std::function<void()>& call) {
  try {
    call();
    ADD_FAILURE() << "the call went through";
  } catch (const Denied& d) {
    return d;
  }
  return Denied("", "");
}

std::string DenialReason(const std::function<void()>& call) { return DenialOf(call).reason(); }

// How often `needle` occurs in `text`.
size_t Occurrences(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = 0; (at = text.find(needle, at)) != std::string::npos; at += needle.size()) {
    ++count;
  }
  return count;
}

TEST_F(AgentIdentityTest, RevocationByTheOperatorBlocksTheNextCallEverywhere) {
  AgentIdentity agent = AgentIdentity::create(Payments());
  AgentIdentity other = AgentIdentity::create(Payments());
  agent.call("test://ledger-db/transactions", "read:transactions");
  const int64_t sequence =
      revoke({.instance = agent.instance_id(), .reason = "incident 42"}, connection_);
  EXPECT_GT(sequence, 0);
  ASSERT_TRUE(Eventually([&] { return agent.revoked(); }));
  const int before = connector_calls_;
  const std::string reason =
      DenialReason([&] { agent.call("test://ledger-db/transactions", "read:transactions"); });
  EXPECT_NE(reason.find("revoked"), std::string::npos) << reason;
  EXPECT_THROW(agent.call("test://ledger-db/transactions", "read:transactions"), Revoked);
  EXPECT_EQ(connector_calls_, before);
  // Only that instance: another of the same agent name still works.
  EXPECT_FALSE(other.revoked());
  other.call("test://ledger-db/transactions", "read:transactions");
  EXPECT_THROW(revoke({.instance = "x", .agent = "y"}, connection_), Error);
}

TEST_F(AgentIdentityTest, AStaleRevocationStreamFailsClosed) {
  IdentityOptions options = Payments();
  options.connection.max_staleness = std::chrono::milliseconds(1500);
  // The process keeps its revocation watchers, and with them this clock.
  static auto* const stream_clock = new tw::base::FakeClock(absl::Now());
  AgentIdentity agent =
      internal::ValueOrThrow(internal::CreateIdentity(options, {.stream = stream_clock}));
  agent.call("test://ledger-db/transactions", "read:transactions");
  StopServer();
  const absl::Time last_heard = stream_clock->Now();
  stream_clock->Set(last_heard + absl::Milliseconds(1500));
  EXPECT_NO_THROW(agent.call("test://ledger-db/transactions", "read:transactions"));  // spooled
  stream_clock->Set(last_heard + absl::Milliseconds(1501));
  const int before = connector_calls_;
  const std::string reason =
      DenialReason([&] { agent.call("test://ledger-db/transactions", "read:transactions"); });
  EXPECT_NE(reason.find("fail closed"), std::string::npos) << reason;
  EXPECT_EQ(connector_calls_, before);
  agent.detach();
}

// Ports nothing listens on: bound, read and closed.
std::vector<uint16_t> ClosedPorts(int n) {
  std::vector<int> fds;
  std::vector<uint16_t> ports;
  for (int i = 0; i < n; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{.sin_family = AF_INET, .sin_port = 0, .sin_addr = {htonl(INADDR_LOOPBACK)}};
    socklen_t len = sizeof addr;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "no free port";
    }
    fds.push_back(fd);
    ports.push_back(ntohs(addr.sin_port));
  }
  for (const int fd : fds) close(fd);
  return ports;
}

// The threads of this process the SDK named (tw-revocations, tw-supervisor, tw-renewer).
int SdkThreads() {
  int n = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (std::getline(comm, name) && absl::StartsWith(name, "tw-")) ++n;
  }
  return n;
}

// The SDK's threads end before the process's exit handlers tear OpenSSL down under them:
// a process that exits while its revocation streams reconnect (each attempt a new TLS
// context) and its renewer ships a spool to a server that went away crashed now and then.
TEST_F(AgentIdentityTest, TheProcessExitEndsTheSdksThreadsBeforeOpenSslsCleanup) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (int round = 0; round < 3; ++round) {
    EXPECT_EXIT(
        {
          // Registered before the SDK's exit handler (installed by the first identity), so
          // it runs after that one, and before OpenSSL's (installed at its initialisation,
          // which the fixture's server did): no SDK thread may be left by then.
          std::atexit([] {
            if (SdkThreads() != 0) std::_Exit(9);
          });
          static auto* agent = new AgentIdentity(AgentIdentity::create(Payments()));
          StopServer();
          agent->call("test://ledger-db/transactions", "read:transactions");      // spooled
          static auto* verifiers = new std::vector<std::unique_ptr<Verifier>>();  // to the end
          for (const uint16_t port : ClosedPorts(20)) {
            Connection elsewhere = connection_;
            elsewhere.server = absl::StrCat("https://127.0.0.1:", port);
            verifiers->push_back(
                std::make_unique<Verifier>(VerifierOptions{.connection = elsewhere}));
          }
          // Two threads per watcher, one renewer; they name themselves as they start.
          for (int i = 0; SdkThreads() < 2 * 21 + 1; ++i) {
            if (i == 200) std::_Exit(8);  // the test would test nothing
            absl::SleepFor(absl::Milliseconds(10));
          }
          absl::SleepFor(absl::Milliseconds(100 + 150 * round));
          std::exit(7);
        },
        ::testing::ExitedWithCode(7), "");
  }
}

TEST_F(AgentIdentityTest, EventsAreSpooledWhileTheServerIsAwayThenDeliveredInOrder) {
  IdentityOptions options = Payments();
  options.connection.max_staleness = std::chrono::hours(1);
  AgentIdentity agent = CreateOnTestClock(options);
  StopServer();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(agent.call("test://ledger-db/transactions", "read:transactions").event_id);
  }
  const std::string spool = dir_ + "/spool/" + agent.instance_id() + ".spool";
  auto text = tw::base::ReadFile(spool);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(std::count(text->begin(), text->end(), '\n'), 6);  // 3 actions, 3 outcomes

  RestartServer();
  // The renewer offers the spool to the server a second after records arrived in it.
  const std::optional<absl::Time> shipping = clock_.NextWakeup(absl::Seconds(10));
  ASSERT_TRUE(shipping.has_value());
  EXPECT_LE(*shipping, clock_.Now() + absl::Seconds(1));
  clock_.Set(*shipping);
  const std::string query = "/v1/audit/events?instance=" + agent.instance_id();
  ASSERT_TRUE(Eventually([&] { return AdminGet(query).dump().find(ids[2]) != std::string::npos; }));
  // In the ledger in the order they happened: each action, then its outcome.
  std::vector<std::string> delivered, happened;
  const json ledger = AdminGet(query);
  for (const json& e : ledger["events"]) {
    const std::string type = e["event"].value("type", "");
    if (type == "action") delivered.push_back(e["event"].value("id", ""));
    if (type == "outcome") delivered.push_back("outcome of " + e["event"].value("ref", ""));
  }
  for (const std::string& id : ids) {
    happened.push_back(id);
    happened.push_back("outcome of " + id);
  }
  EXPECT_EQ(delivered, happened);
  EXPECT_TRUE(Eventually(
      [&] { return !std::filesystem::exists(spool) || std::filesystem::file_size(spool) == 0; }));
}

TEST_F(AgentIdentityTest, ASpoolLeftBehindIsDeliveredByTheNextIdentity) {
  IdentityOptions options = Payments();
  options.connection.max_staleness = std::chrono::hours(1);
  std::string id;
  std::string instance;
  {
    AgentIdentity gone = AgentIdentity::create(options);
    instance = gone.instance_id();
    StopServer();
    id = gone.call("test://ledger-db/transactions", "read:transactions").event_id;
    gone.detach();  // the process "dies" with its spool undelivered
  }
  ASSERT_TRUE(std::filesystem::exists(dir_ + "/spool/" + instance + ".spool"));
  RestartServer();
  AgentIdentity next = AgentIdentity::create(options);
  ASSERT_TRUE(Eventually([&] {
    return AdminGet("/v1/audit/events?instance=" + instance).dump().find(id) != std::string::npos;
  }));
}

TEST_F(AgentIdentityTest, ConcurrentCallsAreAllRecorded) {
  AgentIdentity agent = AgentIdentity::create(Payments());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        try {
          agent.call("test://ledger-db/transactions", "read:transactions");
        } catch (...) {
          ++failures;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  json events = AdminGet("/v1/audit/events?instance=" + agent.instance_id() + "&limit=1000");
  const std::string text = events.dump();
  const size_t count = Occurrences(text, "\"type\":\"action\"");
  EXPECT_EQ(count, 80u) << text.substr(0, 500);
}

TEST_F(AgentIdentityTest, TrustLevelRulesRefuseAndRecord) {
  AgentIdentity agent = AgentIdentity::create(Payments());  // "high"
  // The ledger holds the refusal, signed by the instance, with its reason.
  auto expect_recorded_denial = [&](const Denied& d, const std::string& action) {
    ASSERT_FALSE(d.event_id().empty()) << d.reason();
    const json trace = AdminGet("/v1/audit/trace/" + d.event_id());
    ASSERT_TRUE(trace.contains("event")) << trace;
    const json& event = trace["event"];
    EXPECT_EQ(event.value("decision", ""), "deny") << trace;
    EXPECT_EQ(event.value("action", ""), action) << trace;
    EXPECT_EQ(event.value("instance", ""), agent.spiffe_id()) << trace;
    EXPECT_EQ(event.value("reason", ""), d.reason()) << trace;
  };
  const Denied by_call = DenialOf([&] {
    agent.call("test://ledger-db/transactions", "read:transactions", "",
               {.min_trust_level = "critical"});
  });
  EXPECT_NE(by_call.reason().find("needs trust level critical"), std::string::npos)
      << by_call.reason();
  expect_recorded_denial(by_call, "read:transactions");

  // The rule is process-wide: it is taken back when the test ends, however it ends.
  internal::ConnectorRegistry& registry = internal::ConnectorRegistry::Process();
  absl::Cleanup restore = [&registry, saved = registry.trust_rules()] {
    registry.set_trust_rules(saved);
  };
  AgentIdentity::require_trust_level("write:ledger", "critical");
  const Denied by_rule = DenialOf([&] { agent.call("test://ledger-db/entries", "write:ledger"); });
  EXPECT_NE(by_rule.reason().find("write:ledger needs trust level critical"), std::string::npos)
      << by_rule.reason();
  expect_recorded_denial(by_rule, "write:ledger");
  agent.call("test://ledger-db/transactions", "read:transactions", "", {.min_trust_level = "high"});
  EXPECT_THROW(AgentIdentity::require_trust_level("write:ledger", "supreme"), Error);
  std::move(restore).Invoke();
  EXPECT_NO_THROW(agent.call("test://ledger-db/entries", "write:ledger"));
}

TEST_F(AgentIdentityTest, VerifierDecidesFromTheBundleAndTheStreamAndRecords) {
  AgentIdentity caller = AgentIdentity::create(Payments());
  AgentIdentity resource =
      AgentIdentity::create(IdentityOptions{.name = "acme-corp/finance-team/ledger-api",
                                            .scope = {"serve:ledger"},
                                            .connection = connection_});
  Connection with_jwt_keys = connection_;  // bundle.pem has only the X.509 authorities
  with_jwt_keys.bundle = dir_ + "/data/bundle.json";
  Verifier verifier({.connection = with_jwt_keys, .audience = "https://ledger.acme"});
  Decision ok = verifier.verify_x509(caller.svid_pem(), {.scope = "read:transactions"});
  EXPECT_TRUE(ok.allowed) << ok.reason;
  EXPECT_EQ(ok.spiffe_id, caller.spiffe_id());
  EXPECT_EQ(ok.trust_level, "high");
  Decision no_scope = verifier.verify_x509(caller.svid_pem(), {.scope = "delete:records"});
  EXPECT_FALSE(no_scope.allowed);
  EXPECT_NE(no_scope.reason.find("delete:records"), std::string::npos);
  EXPECT_FALSE(verifier.verify_x509(caller.svid_pem(), {.min_trust_level = "critical"}).allowed);
  EXPECT_FALSE(verifier.verify_x509(caller.svid_pem(), {.trust_domain = "other.example"}).allowed);
  EXPECT_FALSE(verifier.verify_x509("not a certificate").allowed);

  const std::string token = caller.jwt("https://ledger.acme");
  Decision jwt_ok = verifier.verify_jwt(token, {.scope = "write:ledger"});
  EXPECT_TRUE(jwt_ok.allowed) << jwt_ok.reason;
  Verifier elsewhere({.connection = with_jwt_keys, .audience = "https://other.acme"});
  EXPECT_FALSE(elsewhere.verify_jwt(token).allowed);

  // Decisions recorded by the resource's identity, about the caller.
  Verifier recording({.connection = connection_, .recorder = &resource});
  Decision recorded = recording.verify_x509(
      caller.svid_pem(), {.scope = "write:ledger", .resource = "https://ledger.acme/entries"});
  ASSERT_FALSE(recorded.event_id.empty());
  const json trace = AdminGet("/v1/audit/trace/" + recorded.event_id);
  EXPECT_EQ(trace["event"]["type"], "observation") << trace;
  // The observation's subject is its signer, the resource; the caller has its own member.
  EXPECT_EQ(trace["event"]["instance"], resource.spiffe_id()) << trace;
  EXPECT_EQ(trace["event"]["caller"], caller.spiffe_id()) << trace;
  const std::string by_caller = AdminGet("/v1/audit/events?caller=" + caller.spiffe_id()).dump();
  EXPECT_NE(by_caller.find(recorded.event_id), std::string::npos) << by_caller;
  const std::string by_caller_instance =
      AdminGet("/v1/audit/events?caller=" + caller.instance_id()).dump();
  EXPECT_NE(by_caller_instance.find(recorded.event_id), std::string::npos);
  EXPECT_THROW(recording.verify_x509(caller.svid_pem()), Error);  // nothing to record under

  revoke({.instance = caller.instance_id()}, connection_);
  ASSERT_TRUE(Eventually([&] { return !verifier.verify_x509(caller.svid_pem()).allowed; }));
  EXPECT_NE(verifier.verify_x509(caller.svid_pem()).reason.find("revoked"), std::string::npos);
  EXPECT_FALSE(verifier.verify_jwt(token).allowed);
}

// One compromised agent cannot fill the ledger: past its rate (here 1/s, and a burst of a
// full batch, 128 events) its events are refused, and so are its calls, before the
// connector runs.
TEST_F(AgentIdentityTest, AnInstancePastItsLedgerRateIsRefusedBeforeActing) {
  StopServer();
  ledger_rate_ = 0.001;  // the burst of 128 events, and no token earned during the test
  RestartServer();
  AgentIdentity agent = AgentIdentity::create(Payments());
  int refused = 0;
  for (int i = 0; i < 70; ++i) {
    try {
      agent.call("test://ledger-db/transactions", "read:transactions");
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), "resource_exhausted") << e.what();
      ++refused;
    }
  }
  // Allow + outcome: two events a call, so 64 calls.
  EXPECT_EQ(connector_calls_, 64);
  EXPECT_EQ(refused, 70 - connector_calls_);
}

// TLS servers on loopback, one thread, one connection at a time: `handler` turns the
// authenticated peer and what it sent (up to a blank line or a newline) into the answer.
class TlsServer {
 public:
  using Handler = std::function<std::string(const std::string& peer, const std::string& text)>;
  TlsServer(SSL_CTX* ctx, Handler handler) : ctx_(ctx), handler_(std::move(handler)) {
    fd_ = tw::base::ListenOnLoopback(&port_);
    thread_ = std::thread([this] { Serve(); });
  }
  ~TlsServer() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
    SSL_CTX_free(ctx_);
  }
  int port() const { return port_; }
  int refused() const { return refused_; }

 private:
  void Serve() {
    for (;;) {
      int conn = accept(fd_, nullptr, nullptr);
      if (conn < 0) return;
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, conn);
      if (SSL_accept(ssl) == 1) {
        std::string text;
        char buf[4096];
        int n;
        while (text.find("\r\n\r\n") == std::string::npos && text.find('\n') == std::string::npos &&
               (n = SSL_read(ssl, buf, sizeof(buf))) > 0) {
          text.append(buf, n);
        }
        if (text.find("\r\n\r\n") == std::string::npos &&
            text.find("HTTP/1.1") != std::string::npos) {
          while (text.find("\r\n\r\n") == std::string::npos &&
                 (n = SSL_read(ssl, buf, sizeof(buf))) > 0) {
            text.append(buf, n);
          }
        }
        const std::string answer = handler_(peer_spiffe_id(ssl), text);
        SSL_write(ssl, answer.data(), static_cast<int>(answer.size()));
        SSL_shutdown(ssl);
      } else {
        ++refused_;
      }
      SSL_free(ssl);
      close(conn);
    }
  }
  SSL_CTX* ctx_;
  Handler handler_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> refused_{0};
  std::thread thread_;
};

// Connects with `ctx`, sends `text`, returns the answer; empty when the handshake or the
// exchange fails. `peer` receives the server's SPIFFE ID.
std::string TlsExchange(SSL_CTX* ctx, int port, const std::string& text, std::string* peer) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) == 1) {
      *peer = peer_spiffe_id(ssl);
      SSL_write(ssl, text.data(), static_cast<int>(text.size()));
      char buf[4096];
      int n;
      while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) answer.append(buf, n);
    }
    SSL_free(ssl);
  }
  close(fd);
  return answer;
}

TEST_F(AgentIdentityTest, TlsContextsAuthenticatePeersBySpiffeRules) {
  AgentIdentity processor = AgentIdentity::create(Payments());
  AgentIdentity reporter =
      AgentIdentity::create(IdentityOptions{.name = "acme-corp/finance-team/reporter",
                                            .scope = {"read:transactions"},
                                            .connection = connection_});
  AgentIdentity intruder =
      AgentIdentity::create(IdentityOptions{.name = "acme-corp/finance-team/intruder",
                                            .scope = {"write:ledger"},
                                            .connection = connection_});
  TlsServer server(server_tls_context(processor, {.scope = "read:transactions"}),
                   [](const std::string& peer, const std::string& text) {
                     return "hello " + peer + " you said " + text;
                   });
  std::string peer;
  SSL_CTX* client = client_tls_context(reporter, {.spiffe_ids = {processor.spiffe_id()}});
  EXPECT_EQ(TlsExchange(client, server.port(), "ping\n", &peer),
            "hello " + reporter.spiffe_id() + " you said ping\n");
  EXPECT_EQ(peer, processor.spiffe_id());
  SSL_CTX_free(client);

  // A client whose SVID lacks the scope, and one expecting another server, get nothing.
  SSL_CTX* lacking = client_tls_context(intruder);
  EXPECT_EQ(TlsExchange(lacking, server.port(), "ping\n", &peer), "");
  SSL_CTX_free(lacking);
  SSL_CTX* picky = client_tls_context(reporter, {.spiffe_ids = {intruder.spiffe_id()}});
  peer.clear();
  EXPECT_EQ(TlsExchange(picky, server.port(), "ping\n", &peer), "");
  EXPECT_EQ(peer, "");
  SSL_CTX_free(picky);

  // Revoked: refused at the next handshake.
  SSL_CTX* after = client_tls_context(reporter);
  revoke({.instance = reporter.instance_id()}, connection_);
  ASSERT_TRUE(Eventually([&] { return reporter.revoked(); }));
  EXPECT_EQ(TlsExchange(after, server.port(), "ping\n", &peer), "");
  SSL_CTX_free(after);
  EXPECT_GE(server.refused(), 2);
}

TEST_F(AgentIdentityTest, HttpsConnectorPresentsTheSvidAndAJwtForTheOrigin) {
  AgentIdentity agent = AgentIdentity::create(Payments());
  AgentIdentity api =
      AgentIdentity::create(IdentityOptions{.name = "acme-corp/finance-team/reports-api",
                                            .scope = {"serve:reports"},
                                            .connection = connection_});
  Connection with_jwt_keys = connection_;
  with_jwt_keys.bundle = dir_ + "/data/bundle.json";
  std::unique_ptr<Verifier> verifier;
  TlsServer server(server_tls_context(api), [&](const std::string& peer, const std::string& text) {
    const size_t at = text.find("Authorization: Bearer ");
    const std::string token =
        at == std::string::npos ? "" : text.substr(at + 22, text.find("\r\n", at) - at - 22);
    Decision d = verifier->verify_jwt(token, {.scope = "read:transactions"});
    const std::string body = d.allowed ? "hello " + d.spiffe_id + " over " + peer : d.reason;
    return absl::StrCat("HTTP/1.1 ", d.allowed ? "200 OK" : "403 Forbidden",
                        "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
  });
  const std::string origin = absl::StrCat("https://127.0.0.1:", server.port());
  verifier =
      std::make_unique<Verifier>(VerifierOptions{.connection = with_jwt_keys, .audience = origin});
  // No SPIFFE ID named for the origin: the token goes nowhere.
  try {
    agent.call(origin + "/reports", "read:transactions");
    ADD_FAILURE() << "a bearer token went to an unnamed server";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), "failed_precondition") << e.what();
    EXPECT_NE(std::string(e.what()).find("trust_origin"), std::string::npos) << e.what();
  }
  // Named for this call, but not the server that answers: the handshake fails.
  EXPECT_THROW(agent.call(origin + "/reports", "read:transactions", "",
                          {.server_spiffe_id = agent.spiffe_id()}),
               Error);
  AgentIdentity::trust_origin(origin, api.spiffe_id());
  CallResult r = agent.call(origin + "/reports?day=today", "read:transactions");
  EXPECT_EQ(r.response, "hello " + agent.spiffe_id() + " over " + agent.spiffe_id());
  // Plain http carries no bearer token without an opt-in.
  try {
    agent.call(absl::StrCat("http://127.0.0.1:", server.port(), "/reports"), "read:transactions");
    ADD_FAILURE() << "a bearer token went over plain http";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), "failed_precondition") << e.what();
  }
  EXPECT_THROW(AgentIdentity::trust_origin("https://x/y", api.spiffe_id()), Error);
  EXPECT_THROW(AgentIdentity::trust_origin(origin, "not-an-id"), Error);
  // The resource's refusal is the call's error, and the outcome records it.
  verifier = std::make_unique<Verifier>(
      VerifierOptions{.connection = with_jwt_keys, .audience = "https://elsewhere"});
  try {
    agent.call(origin + "/reports", "read:transactions");
    ADD_FAILURE() << "the resource's 403 did not reach the caller";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), "permission_denied");
  }
  EXPECT_THROW(agent.call("https://", "read:transactions"), Error);
}

TEST_F(AgentIdentityTest, CallsKeepWorkingThroughRotationAndStopAtRevocation) {
  IdentityOptions options = Payments();
  options.ttl = "2m";
  AgentIdentity agent = CreateOnTestClock(options);
  const std::string first_svid = agent.svid_pem();
  std::atomic<bool> revoked{false};
  std::atomic<int> allowed{0}, denied_after{0}, other_errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (;;) {
        try {
          agent.call("test://ledger-db/transactions", "read:transactions");
          ++allowed;
        } catch (const Denied&) {
          if (revoked)
            ++denied_after;
          else
            ++other_errors;
          return;
        } catch (const std::exception& e) {
          ++other_errors;
          ADD_FAILURE() << e.what();
          return;
        }
      }
    });
  }
  // Renewal time: the key changes under the calls.
  const std::optional<absl::Time> due = clock_.NextWakeup(absl::Seconds(10));
  ASSERT_TRUE(due.has_value());
  clock_.Set(*due);
  ASSERT_TRUE(Eventually([&] { return agent.svid_pem() != first_svid; }));
  const int at_rotation = allowed;
  ASSERT_TRUE(Eventually([&] { return allowed >= at_rotation + 20; }));  // with the new key
  revoked = true;
  revoke({.instance = agent.instance_id()}, connection_);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(other_errors, 0);
  EXPECT_EQ(denied_after, 4);
  // Every allowed call was recorded, before and after the key changed.
  const std::string events =
      AdminGet("/v1/audit/events?instance=" + agent.instance_id() + "&decision=allow&limit=10000")
          .dump();
  const size_t count = Occurrences(events, "\"type\":\"action\"");
  EXPECT_GE(count, static_cast<size_t>(allowed.load()));
  EXPECT_GT(allowed, 0);
}

TEST(SpoolTest, KeepsCompleteRecordsInOrderAcrossReopenAndDrop) {
  tw::base::TempDir dir("tw-spool");
  const std::string& tmpl = dir.path();
  {
    auto spool = internal::Spool::Open(tmpl, "inst-a");
    ASSERT_TRUE(spool.ok()) << spool.status();
    for (const char* r : {"one", "two", "three"}) ASSERT_TRUE((*spool)->Append(r).ok());
    EXPECT_FALSE((*spool)->Append("two\nlines").ok());
    // Held by this writer: nobody else takes it.
    EXPECT_EQ(internal::Spool::Open(tmpl, "inst-a").status().code(),
              absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(internal::Spool::Orphans(tmpl).empty());
    ASSERT_TRUE((*spool)->Drop(1).ok());
    EXPECT_EQ(*(*spool)->Records(), (std::vector<std::string>{"two", "three"}));
  }
  // A crash in the middle of an append leaves a torn line, never acknowledged: dropped.
  { std::ofstream(tmpl + "/inst-a.spool", std::ios::app) << "{\"torn"; }
  auto orphans = internal::Spool::Orphans(tmpl);
  ASSERT_EQ(orphans.size(), 1u);
  EXPECT_EQ(*orphans[0]->Records(), (std::vector<std::string>{"two", "three"}));
  ASSERT_TRUE(orphans[0]->Drop(2).ok());
  orphans.clear();  // empty: removed
  EXPECT_FALSE(std::filesystem::exists(tmpl + "/inst-a.spool"));
}

}  // namespace
}  // namespace trustwarden
