// The SDK against the real server in-process on port 0.
#include <atomic>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/file.h"
#include "core/bundle.h"
#include "core/certificate.h"
#include "core/x509_verifier.h"
#include "gtest/gtest.h"
#include "net/https_client.h"
#include "nlohmann/json.hpp"
#include "server/server.h"
#include "store/sqlite/sqlite_store.h"
#include "trustwarden/trustwarden.h"

namespace trustwarden {
namespace {

using nlohmann::json;

class AgentIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tw-sdk-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    tw::server::ServerConfig config;
    config.data_dir = dir_ + "/data";
    config.listen = "127.0.0.1:0";
    config.threads = 2;
    config.worker_threads = 8;
    ASSERT_TRUE(tw::base::MakeDirectory(config.data_dir).ok());
    auto store = tw::store::SqliteStore::Open(config.data_dir + "/trustwarden.db");
    ASSERT_TRUE(store.ok()) << store.status();
    auto server = tw::server::Server::Start(config, *std::move(store));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    connection_.server = absl::StrCat("https://127.0.0.1:", server_->port());
    connection_.token = std::string(
        absl::StripTrailingAsciiWhitespace(*tw::base::ReadFile(config.data_dir + "/admin.token")));
    connection_.bundle = config.data_dir + "/bundle.pem";
    AgentIdentity::register_connector("test", [this](AgentIdentity& agent,
                                                     const CallRequest& request) {
      ++connector_calls_;
      if (request.payload == "fail") throw std::runtime_error("the resource said no");
      return absl::StrCat(agent.instance_id(), " did ", request.action, " on ", request.resource);
    });
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
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

  std::string dir_;
  std::unique_ptr<tw::server::Server> server_;
  Connection connection_;
  std::atomic<int> connector_calls_{0};
};

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
  } catch (const Denied& d) {
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

TEST_F(AgentIdentityTest, JwtIsReusedUntilNearExpiry) {
  AgentIdentity agent = AgentIdentity::create(Payments());
  const std::string a = agent.jwt("payments-api");
  EXPECT_EQ(std::count(a.begin(), a.end(), '.'), 2);
  EXPECT_EQ(agent.jwt("payments-api"), a);
  EXPECT_NE(agent.jwt("ledger-api"), a);
}

TEST_F(AgentIdentityTest, RenewsAtHalfLifeWithANewKeyKeepingTheInstance) {
  IdentityOptions options = Payments();
  options.ttl = "4s";
  AgentIdentity agent = AgentIdentity::create(options);
  const std::string first = agent.svid_pem(), id = agent.spiffe_id();
  for (int i = 0; i < 60 && agent.svid_pem() == first; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_NE(agent.svid_pem(), first) << "no renewal within 6 s of a 4 s certificate";
  EXPECT_EQ(agent.spiffe_id(), id);
  auto old_leaf = tw::core::Certificate::ParseChain(first);
  auto new_leaf = tw::core::Certificate::ParseChain(agent.svid_pem());
  ASSERT_TRUE(old_leaf.ok() && new_leaf.ok());
  EXPECT_NE(tw::base::AsChars((*old_leaf)[0].spki()), tw::base::AsChars((*new_leaf)[0].spki()));
  // The renewed credential is usable at once.
  EXPECT_NO_THROW(agent.call("test://ledger-db/transactions", "read:transactions"));
}

}  // namespace
}  // namespace trustwarden
