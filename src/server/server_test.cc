// The server in-process on port 0, driven by the real HTTPS client.
#include "server/server.h"

#include <stdlib.h>

#include <filesystem>
#include <future>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/file.h"
#include "base/testing/temp_dir.h"
#include "core/bundle.h"
#include "core/certificate.h"
#include "core/jwt_svid.h"
#include "core/x509_issuer.h"
#include "crypto/software_signer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "net/https_client.h"
#include "nlohmann/json.hpp"
#include "server/testing/test_server.h"
#include "store/sqlite/sqlite_store.h"

namespace tw::server {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

struct Agent {
  std::unique_ptr<crypto::SoftwareSigner> key;
  std::string svid_pem;
  std::string instance_id;
  std::string spiffe_id;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = TestServer::Start([](ServerConfig& c) { c.max_body_bytes = 64 * 1024; });
    ASSERT_TRUE(server.ok()) << server.status();
    test_server_ = *std::move(server);
    Reload();
  }

  // Restarts the server on its data directory, with `tweak` applied to the config.
  void Restart(TestServer::Tweak tweak = nullptr) {
    absl::Status restarted = test_server_->Restart(std::move(tweak));
    ASSERT_TRUE(restarted.ok()) << restarted;
    Reload();
  }
  void Reload() {
    server_ = &test_server_->server();
    dir_ = test_server_->dir();
    admin_token_ = test_server_->admin_token();
    bundle_pem_ = test_server_->bundle_pem();
  }

  std::unique_ptr<net::HttpsClient> Client(const std::string& chain = "",
                                           const std::string& key = "") {
    auto client = net::HttpsClient::Create(
        {.server = absl::StrCat("https://127.0.0.1:", server_->port()),
         .ca_pem = bundle_pem_,
         .client_chain_pem = chain,
         .client_key = key.empty() ? nullptr
                                   : std::shared_ptr<const crypto::SoftwareSigner>(
                                         *crypto::SoftwareSigner::FromPem(key))});
    EXPECT_TRUE(client.ok()) << client.status();
    return *std::move(client);
  }

  net::Response Call(net::HttpsClient& client, const std::string& method, const std::string& target,
                     const std::string& body = "", const std::string& token = "") {
    net::Headers headers;
    if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
    auto r = client.Request(method, target, body, headers);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : net::Response{};
  }

  static std::string Csr(const crypto::SoftwareSigner& key) {
    return core::PemEncode("CERTIFICATE REQUEST", *core::BuildCertificateRequest(key));
  }

  // Creates an agent with the admin token, or with `parent`'s SVID when given.
  Agent Create(json body, const Agent* parent = nullptr, int expect = 201) {
    Agent a;
    a.key = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
    body["csr"] = Csr(*a.key);
    std::unique_ptr<net::HttpsClient> client =
        parent ? Client(parent->svid_pem, std::string(parent->key->ToPkcs8Pem().view())) : Client();
    net::Response r =
        Call(*client, "POST", "/v1/identities", body.dump(), parent ? "" : admin_token_);
    EXPECT_EQ(r.status, expect) << r.body;
    if (r.status == 201) {
      json j = json::parse(r.body);
      a.svid_pem = j["svid_pem"];
      a.instance_id = j["instance_id"];
      a.spiffe_id = j["spiffe_id"];
    }
    return a;
  }

  // Creates an agent (lifetime `ttl`) and revokes it: one revocation log entry.
  void RevokeANewAgent(net::HttpsClient& client, int i, const std::string& ttl = "30m") {
    const Agent a = Create({{"name", absl::StrCat("acme/fin/r", i)}, {"ttl", ttl}});
    ASSERT_EQ(Call(client, "POST", "/v1/revocations", json{{"instance", a.instance_id}}.dump(),
                   admin_token_)
                  .status,
              200);
  }

  size_t IdentityCount() {
    auto client = Client();
    net::Response r = Call(*client, "GET", "/v1/identities", "", admin_token_);
    return json::parse(r.body)["identities"].size();
  }

  // Reads a revocation stream until `done` says so, at most 10 s.
  std::string ReadStream(const std::string& target,
                         const std::function<bool(const std::string&)>& done) {
    std::string received;
    auto stream = Client();
    auto deadline = absl::Now() + absl::Seconds(10);
    stream
        ->Stream(target, {},
                 [&](absl::string_view data) {
                   received.append(data.data(), data.size());
                   return !done(received) && absl::Now() < deadline;
                 })
        .IgnoreError();
    return received;
  }

  std::unique_ptr<TestServer> test_server_;
  Server* server_ = nullptr;
  std::string dir_;
  std::string admin_token_, bundle_pem_;
};

TEST_F(ServerTest, FirstStartCreatesOwnerOnlyFilesAndPrintsTokenOnce) {
  EXPECT_FALSE(server_->new_admin_token().empty());
  for (const char* f : {"admin.token", "ca.key.pem", "jwt.key.pem"}) {
    EXPECT_EQ(
        std::filesystem::status(dir_ + "/data/" + f).permissions() & std::filesystem::perms::all,
        std::filesystem::perms::owner_read | std::filesystem::perms::owner_write)
        << f;
  }
  Restart();
  EXPECT_TRUE(server_->new_admin_token().empty());
  auto client = Client();
  EXPECT_EQ(Call(*client, "GET", "/v1/identities", "", admin_token_).status, 200);
}

TEST_F(ServerTest, CreatesIdentityWhoseCertificateCarriesTheRequest) {
  Agent a = Create({{"name", "acme/fin/payer"},
                    {"scope", {"read:tx", "write:ledger.*"}},
                    {"ttl", "30m"},
                    {"trust_level", "high"}});
  ASSERT_FALSE(a.svid_pem.empty());
  EXPECT_TRUE(absl::StartsWith(a.spiffe_id, "spiffe://trustwarden/acme/fin/payer/inst-"));
  auto chain = core::Certificate::ParseChain(a.svid_pem);
  ASSERT_TRUE(chain.ok()) << chain.status();
  auto bundle = core::Bundle::Parse(bundle_pem_);
  ASSERT_TRUE(bundle.ok());
  auto set = std::make_shared<core::BundleSet>();
  set->Put(*bundle);
  core::X509Verifier verifier(set, {.attribute_trust_domains = {bundle->trust_domain()}});
  std::vector<base::ByteView> ders;
  for (const auto& c : *chain) ders.push_back(c.der());
  auto svid = verifier.Verify(ders);
  ASSERT_TRUE(svid.ok()) << svid.status();
  ASSERT_TRUE(svid->attributes.has_value());
  EXPECT_EQ(svid->attributes->trust_level, core::TrustLevel::kHigh);
  EXPECT_EQ(svid->attributes->principal, "admin");
  EXPECT_EQ(svid->attributes->policy_version, 1);
  EXPECT_EQ(svid->attributes->scopes.size(), 2u);
  EXPECT_LE(svid->not_after, absl::Now() + absl::Minutes(31));
}

TEST_F(ServerTest, BadInputGetsJsonErrorAndWritesNothing) {
  auto key = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  const std::string csr = Csr(*key);
  std::string bad_sig = csr;
  bad_sig[bad_sig.size() - 40] = bad_sig[bad_sig.size() - 40] == 'A' ? 'B' : 'A';
  struct Case {
    std::string body;
    int status;
  };
  const std::vector<Case> cases = {
      {"{", 400},
      {"[]", 400},
      {R"({"name":"a/b/c"})", 400},
      {json{{"name", "a/b/c"}, {"csr", csr}, {"colour", "red"}}.dump(), 400},
      {json{{"name", "a/b"}, {"csr", csr}}.dump(), 400},
      {json{{"name", "a/b/c"}, {"csr", csr}, {"scope", {"nocolon"}}}.dump(), 400},
      {json{{"name", "a/b/c"}, {"csr", csr}, {"ttl", "soon"}}.dump(), 400},
      {json{{"name", "a/b/c"}, {"csr", "not a csr"}}.dump(), 400},
      {json{{"name", "a/b/c"}, {"csr", bad_sig}}.dump(), 400},
      {json{{"name", "a/b/c"}, {"csr", csr}, {"ttl", "25h"}}.dump(), 403},
      {json{{"name", "a/b/c"}, {"csr", csr}, {"trust_level", "critical"}}.dump(), 403},
      {std::string(70 * 1024, ' '), 413},
  };
  for (const Case& c : cases) {
    auto client = Client();
    net::Response r = Call(*client, "POST", "/v1/identities", c.body, admin_token_);
    EXPECT_EQ(r.status, c.status) << c.body.substr(0, 80) << " -> " << r.body;
    json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.body;
    EXPECT_TRUE(j["error"]["code"].is_string()) << r.body;
  }
  EXPECT_EQ(IdentityCount(), 0u);
}

// Every byte sequence in a target or a body is a clear 400 that echoes no raw byte, and
// the server goes on serving (a non-UTF-8 path used to end the process).
TEST_F(ServerTest, HostileTargetsAndBodiesGet400AndTheServerKeepsServing) {
  const std::string origin = absl::StrCat("https://127.0.0.1:", server_->port());
  struct Case {
    std::string method, target, body;
  };
  const std::vector<Case> cases = {
      {"GET", "/\xff", ""},
      {"GET", origin + "/\xff", ""},
      {"GET", "/v1/%ff", ""},
      {"GET", "/v1/audit/events?instance=%c3%28", ""},
      {"GET", "/v1/audit/events?agent=a/b/c&agent=a/b/c", ""},
      {"GET", "/v1/identities?agent=%ff", ""},
      {"GET", "/v1/identities?%c0%af=1", ""},
      {"GET", "/healthz?a=%zz", ""},
      {"GET", "/v1/audit/trace/evt-\x01\x02", ""},
      {"POST", "/v1/identities", "{\"name\":\"a/b/\xff\",\"csr\":\"x\"}"},
      {"POST", "/v1/identities", R"({"name":"a/b/c","csr":"\ud800"})"},
      {"POST", "/v1/revocations", "{\"reason\":\"\xc3\x28\",\"instance\":\"inst-x\"}"},
      {"POST", "/v1/policies", "{\"source\":\"[principals.\xed\xa0\x80]\"}"},
  };
  for (const Case& c : cases) {
    auto client = Client();
    net::Response r = Call(*client, c.method, c.target, c.body, admin_token_);
    EXPECT_EQ(r.status, 400) << absl::CHexEscape(c.target) << " -> " << r.body;
    json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << absl::CHexEscape(r.body);
    EXPECT_EQ(j["error"]["code"], "invalid_argument") << r.body;
    for (char ch : r.body) EXPECT_TRUE(ch >= 0x20 && ch < 0x7f) << absl::CHexEscape(r.body);
  }
  auto client = Client();
  EXPECT_EQ(Call(*client, "GET", origin + "/healthz").status, 200);  // absolute-form
  EXPECT_EQ(Call(*client, "GET", "/healthz").status, 200);
  EXPECT_EQ(IdentityCount(), 0u);
}

// Absent credentials are not failures; wrong ones are, and they never lock out a valid token.
TEST_F(ServerTest, AuthFailureLimitCountsWrongTokensAndNeverRefusesAValidOne) {
  auto client = Client();
  for (int i = 0; i < 40; ++i) {
    ASSERT_EQ(Call(*client, "GET", "/v1/identities").status, 401) << i;
  }
  EXPECT_EQ(Call(*client, "GET", "/v1/identities", "", admin_token_).status, 200);
  std::string wrong = admin_token_;
  wrong.back() = wrong.back() == 'x' ? 'y' : 'x';
  int limited = 0;
  for (int i = 0; i < 40; ++i) {
    net::Response r = Call(*client, "GET", "/v1/identities", "", wrong);
    if (r.status == 429) ++limited;
  }
  EXPECT_GT(limited, 0);
  EXPECT_EQ(Call(*client, "GET", "/v1/identities", "", admin_token_).status, 200);
}

TEST_F(ServerTest, RefusesMissingAndWrongTokensWithoutEchoingThem) {
  auto key = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  json body{{"name", "a/b/c"}, {"csr", Csr(*key)}};
  auto client = Client();
  EXPECT_EQ(Call(*client, "POST", "/v1/identities", body.dump()).status, 401);
  std::string forged = admin_token_;
  forged.back() = forged.back() == 'x' ? 'y' : 'x';
  net::Response r = Call(*client, "POST", "/v1/identities", body.dump(), forged);
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(r.body, ::testing::Not(HasSubstr(forged)));
  EXPECT_EQ(Call(*client, "GET", "/v1/identities", "", forged).status, 401);
}

TEST_F(ServerTest, PolicyVersionsGovernCreation) {
  auto client = Client();
  json policy{{"source", R"([principals.ci]
names = ["acme/fin/*"]
scopes = ["read:*"]
max_ttl = "1h"
max_trust_level = "medium"
)"}};
  net::Response applied = Call(*client, "POST", "/v1/policies", policy.dump(), admin_token_);
  ASSERT_EQ(applied.status, 201) << applied.body;
  EXPECT_EQ(json::parse(applied.body)["version"], 2);
  net::Response token = Call(*client, "POST", "/v1/tokens",
                             json{{"principal", "ci"}, {"force", true}}.dump(), admin_token_);
  ASSERT_EQ(token.status, 201);
  std::string ci = json::parse(token.body)["token"];
  auto key = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  auto create = [&](json body, const std::string& tok) {
    body["csr"] = Csr(*key);
    return Call(*client, "POST", "/v1/identities", body.dump(), tok).status;
  };
  EXPECT_EQ(create({{"name", "acme/fin/x"}, {"scope", {"read:tx"}}}, ci), 201);
  EXPECT_EQ(create({{"name", "acme/hr/x"}, {"scope", {"read:tx"}}}, ci), 403);
  EXPECT_EQ(create({{"name", "acme/fin/x"}, {"scope", {"write:tx"}}}, ci), 403);
  EXPECT_EQ(create({{"name", "acme/fin/x"}, {"trust_level", "high"}}, ci), 403);
  // The new policy has no [principals.admin]: the admin manages, but creates nothing.
  EXPECT_EQ(create({{"name", "acme/fin/x"}}, admin_token_), 403);
  EXPECT_EQ(Call(*client, "POST", "/v1/policies", json{{"source", "bad = ["}}.dump(), admin_token_)
                .status,
            400);
  EXPECT_EQ(
      json::parse(Call(*client, "GET", "/v1/policies/current", "", admin_token_).body)["version"],
      2);
  EXPECT_EQ(Call(*client, "GET", "/v1/policies/1", "", admin_token_).status, 200);
  EXPECT_EQ(Call(*client, "GET", "/v1/policies/3", "", admin_token_).status, 404);
  EXPECT_EQ(Call(*client, "POST", "/v1/policies", policy.dump(), ci).status, 403);
}

TEST_F(ServerTest, DelegationOverMtlsOnlyNarrows) {
  Agent parent = Create({{"name", "acme/fin/boss"},
                         {"scope", {"read:*"}},
                         {"ttl", "30m"},
                         {"trust_level", "medium"}});
  Agent child = Create({{"name", "acme/fin/kid"}, {"scope", {"read:tx"}}, {"ttl", "10m"}}, &parent);
  ASSERT_FALSE(child.instance_id.empty());
  auto client = Client();
  json rec = json::parse(
      Call(*client, "GET", "/v1/identities/" + child.instance_id, "", admin_token_).body);
  EXPECT_EQ(rec["parent"], parent.spiffe_id);
  EXPECT_EQ(rec["principal"], "admin");
  Create({{"name", "acme/fin/kid"}, {"scope", {"write:tx"}}}, &parent, 403);
  Create({{"name", "acme/fin/kid"}, {"ttl", "2h"}}, &parent, 403);
  Create({{"name", "acme/fin/kid"}, {"trust_level", "high"}}, &parent, 403);
  ASSERT_EQ(Call(*client, "POST", "/v1/revocations", json{{"instance", parent.instance_id}}.dump(),
                 admin_token_)
                .status,
            200);
  Create({{"name", "acme/fin/kid"}}, &parent, 403);
  rec = json::parse(
      Call(*client, "GET", "/v1/identities/" + child.instance_id, "", admin_token_).body);
  EXPECT_TRUE(rec["revoked"].get<bool>());  // revoking a parent cascades
}

TEST_F(ServerTest, RenewKeepsInstanceAndMintsVerifiableJwt) {
  Agent a = Create({{"name", "acme/fin/payer"}, {"scope", {"read:tx"}}, {"ttl", "20m"}});
  auto mtls = Client(a.svid_pem, std::string(a.key->ToPkcs8Pem().view()));
  auto key2 = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  net::Response renewed =
      Call(*mtls, "POST", "/v1/identities/renew", json{{"csr", Csr(*key2)}}.dump());
  ASSERT_EQ(renewed.status, 200) << renewed.body;
  EXPECT_EQ(json::parse(renewed.body)["instance_id"], a.instance_id);

  net::Response jwt = Call(*mtls, "POST", "/v1/jwt-svids", json{{"audience", {"payments"}}}.dump());
  ASSERT_EQ(jwt.status, 200) << jwt.body;
  auto bundle = core::Bundle::Parse(*base::ReadFile(dir_ + "/data/bundle.json"),
                                    *core::TrustDomain::FromName("trustwarden"));
  ASSERT_TRUE(bundle.ok());
  core::BundleSet set;
  set.Put(*bundle);
  auto token = core::ValidateJwtSvid(json::parse(jwt.body)["token"].get<std::string>(), "payments",
                                     set, absl::Now(), {bundle->trust_domain()});
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->subject.str(), a.spiffe_id);
  EXPECT_EQ(token->attributes.scopes.size(), 1u);

  auto client = Client();
  ASSERT_EQ(Call(*client, "POST", "/v1/revocations",
                 json{{"instance", a.instance_id}, {"reason", "test"}}.dump(), admin_token_)
                .status,
            200);
  auto after = Client(a.svid_pem, std::string(a.key->ToPkcs8Pem().view()));
  EXPECT_EQ(Call(*after, "POST", "/v1/jwt-svids", json{{"audience", {"x"}}}.dump()).status, 403);
  EXPECT_EQ(Call(*after, "POST", "/v1/identities/renew", json{{"csr", Csr(*key2)}}.dump()).status,
            403);
}

TEST_F(ServerTest, RevocationsAreSequencedStreamedAndSurviveRestart) {
  Agent a = Create({{"name", "acme/fin/a"}});
  Agent b = Create({{"name", "acme/fin/b"}});
  auto client = Client();
  ASSERT_EQ(Call(*client, "POST", "/v1/revocations", json{{"instance", a.instance_id}}.dump(),
                 admin_token_)
                .status,
            200);
  // A subscriber resuming after 0 gets entry 1 from the backlog, then entry 2 live.
  std::string received;
  std::promise<void> backlog_seen;
  std::thread reader([&] {
    auto stream = Client();
    bool signalled = false;
    stream
        ->Stream("/v1/revocations/stream?after=0", {},
                 [&](absl::string_view data) {
                   received.append(data.data(), data.size());
                   if (!signalled && absl::StrContains(received, "id: 1\n")) {
                     signalled = true;
                     backlog_seen.set_value();
                   }
                   return !absl::StrContains(received, "id: 2\n");
                 })
        .IgnoreError();
    if (!signalled) backlog_seen.set_value();  // failed early: let the assertions report it
  });
  // Revoke again only once the subscriber is live, so entry 2 arrives as a push.
  backlog_seen.get_future().wait();
  ASSERT_EQ(
      Call(*client, "POST", "/v1/revocations", json{{"agent", "acme/fin/b"}}.dump(), admin_token_)
          .status,
      200);
  reader.join();
  EXPECT_THAT(received, HasSubstr("id: 1\nevent: revocation\ndata: "));
  EXPECT_THAT(received, HasSubstr(b.instance_id));
  EXPECT_EQ(Call(*client, "POST", "/v1/revocations",
                 json{{"instance", "inst-aaaaaaaaaaaaaaaa"}}.dump(), admin_token_)
                .status,
            404);
  EXPECT_EQ(Call(*client, "POST", "/v1/revocations",
                 json{{"instance", a.instance_id}, {"agent", "a/b/c"}}.dump(), admin_token_)
                .status,
            400);

  Restart();
  auto again = Client();
  json log = json::parse(Call(*again, "GET", "/v1/revocations?after=1").body);
  EXPECT_EQ(log["sequence"], 2);
  ASSERT_EQ(log["entries"].size(), 1u);
  EXPECT_EQ(log["entries"][0]["instances"][0], b.instance_id);
}

// GET /v1/revocations pages through the log; the cursor never skips an entry.
TEST_F(ServerTest, RevocationPagesCarryACursor) {
  auto client = Client();
  for (int i = 0; i < 7; ++i) RevokeANewAgent(*client, i);
  std::vector<int64_t> sequences;
  int64_t after = 0;
  for (int pages = 0; pages < 10; ++pages) {
    json page = json::parse(
        Call(*client, "GET", absl::StrCat("/v1/revocations?limit=3&after=", after)).body);
    for (const json& e : page["entries"]) sequences.push_back(e["sequence"]);
    EXPECT_EQ(page["sequence"], 7);
    after = page["next_after"];
    if (!page["more"].get<bool>()) break;
  }
  EXPECT_THAT(sequences, ::testing::ElementsAre(1, 2, 3, 4, 5, 6, 7));
  EXPECT_EQ(after, 7);
  EXPECT_EQ(Call(*client, "GET", "/v1/revocations?after=1&colour=red").status, 400);
}

// A subscriber far behind gets its backlog from the store in pages, in order, then the
// live entries, with nothing missed or repeated.
TEST_F(ServerTest, AStreamSendsALongBacklogInOrderThenLiveEntries) {
  auto client = Client();
  constexpr int kBacklog = 600;  // more than two pages
  for (int i = 0; i < kBacklog; ++i) RevokeANewAgent(*client, i);
  const Agent late = Create({{"name", "acme/fin/late"}});
  std::thread live([&] {
    // Once the reader is subscribed (the hub counts it), add one more.
    for (int i = 0; i < 200 && server_->port() != 0; ++i) {
      auto metrics = Call(*client, "GET", "/metrics").body;
      if (absl::StrContains(metrics, "trustwarden_stream_subscribers 1")) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    Call(*client, "POST", "/v1/revocations", json{{"instance", late.instance_id}}.dump(),
         admin_token_);
  });
  const std::string text =
      ReadStream("/v1/revocations/stream?after=0", [](const std::string& received) {
        return absl::StrContains(received, absl::StrCat("id: ", kBacklog + 1, "\n"));
      });
  live.join();
  std::vector<int64_t> ids;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, "id: ")) ids.push_back(std::stoll(std::string(line)));
  }
  ASSERT_EQ(ids.size(), static_cast<size_t>(kBacklog + 1)) << text.substr(text.size() - 300);
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i], static_cast<int64_t>(i + 1));
}

// Heartbeats name the last sequence the stream sent: once the log's entries are pruned, a
// subscriber from 0 hears "0", not the log's last sequence (which it would take for a loss,
// and reconnect for ever).
TEST_F(ServerTest, HeartbeatsNameWhatTheStreamSentNotWhatWasPruned) {
  auto client = Client();
  for (int i = 0; i < 3; ++i) RevokeANewAgent(*client, i, "1m");
  {
    auto store = store::SqliteStore::Open(dir_ + "/data/trustwarden.db", /*exclusive=*/false);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_EQ(*(*store)->PruneRevocations(absl::Now() + absl::Hours(1)), 3u);
  }
  const std::string text =
      ReadStream("/v1/revocations/stream?after=0", [](const std::string& received) {
        return std::count(received.begin(), received.end(), ':') >= 9;  // three heartbeats
      });
  EXPECT_THAT(text, HasSubstr(": heartbeat 0\n: bundle 1\n: federation "));
  EXPECT_THAT(text, ::testing::Not(HasSubstr(": heartbeat 3")));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("id: ")));
}

// The policy's foreign grants are public, as the bundles are (every enforcement point needs
// them); applying a policy changes the federation version the heartbeats announce.
TEST_F(ServerTest, ForeignGrantsArePublishedAndAnnounced) {
  auto client = Client();
  auto version = [&] {
    const std::string text = ReadStream("/v1/revocations/stream?after=0", [](const std::string& r) {
      return r.find("\n\n") != std::string::npos;
    });
    const size_t at = text.find(": federation ");
    return at == std::string::npos ? std::string() : text.substr(at, text.find('\n', at) - at);
  };
  const std::string before = version();
  ASSERT_FALSE(before.empty());
  net::Response none = Call(*client, "GET", "/v1/federation/grants", "", "");
  ASSERT_EQ(none.status, 200) << none.body;
  EXPECT_EQ(json::parse(none.body)["grants"], json::array());
  json policy{{"source", std::string(policy::Policy::DefaultSource()) + R"(
[[foreign]]
trust_domain = "traffic.city"
names = ["city/signals/*"]
scopes = ["reduce:load"]
)"}};
  ASSERT_EQ(Call(*client, "POST", "/v1/policies", policy.dump(), admin_token_).status, 201);
  net::Response some = Call(*client, "GET", "/v1/federation/grants", "", "");
  ASSERT_EQ(some.status, 200) << some.body;
  const json grants = json::parse(some.body);
  EXPECT_EQ(grants["policy_version"], 2);
  ASSERT_EQ(grants["grants"].size(), 1u);
  EXPECT_EQ(grants["grants"][0]["trust_domain"], "traffic.city");
  EXPECT_EQ(grants["grants"][0]["scopes"], json::array({"reduce:load"}));
  EXPECT_NE(version(), before);
  // A grant for our own trust domain means nothing: refused.
  json own{{"source", std::string(policy::Policy::DefaultSource()) +
                          "[[foreign]]\ntrust_domain = \"trustwarden\"\nscopes = [\"a:b\"]\n"}};
  net::Response refused = Call(*client, "POST", "/v1/policies", own.dump(), admin_token_);
  EXPECT_EQ(refused.status, 400) << refused.body;
}

TEST_F(ServerTest, StreamSubscribersAndConnectionsAreLimited) {
  Restart([](ServerConfig& c) {
    c.max_stream_subscribers_per_address = 2;
    c.max_connections = 6;
  });
  std::vector<std::unique_ptr<net::HttpsClient>> streams;
  std::vector<std::thread> readers;
  std::atomic<int> open{0};
  for (int i = 0; i < 2; ++i) {
    streams.push_back(Client());
    readers.emplace_back([&, s = streams.back().get()] {
      bool counted = false;
      s->Stream("/v1/revocations/stream", {}, [&](absl::string_view) {
         if (!counted) open.fetch_add(1);
         counted = true;
         return true;
       }).IgnoreError();
    });
  }
  for (int i = 0; i < 500 && open.load() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(open.load(), 2);
  auto third = Client();
  net::Response refused = Call(*third, "GET", "/v1/revocations/stream");
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_THAT(refused.body, HasSubstr("resource_exhausted"));

  // Connections: the two streams and `third` are open; a few more and the rest are closed
  // at accept.
  std::vector<std::unique_ptr<net::HttpsClient>> more;
  int served = 0, closed = 0;
  for (int i = 0; i < 6; ++i) {
    more.push_back(Client());
    auto r = more.back()->Request("GET", "/healthz");
    (r.ok() && r->status == 200 ? served : closed)++;
  }
  EXPECT_GT(closed, 0);
  EXPECT_LE(served, 4);
  for (auto& s : streams) s->Cancel();
  for (auto& t : readers) t.join();
}

TEST_F(ServerTest, ServesBundleHealthAndMetrics) {
  auto client = Client();
  EXPECT_EQ(Call(*client, "GET", "/healthz").status, 200);
  net::Response bundle = Call(*client, "GET", "/v1/bundle");
  EXPECT_EQ(bundle.body, *base::ReadFile(dir_ + "/data/bundle.json"));
  Create({{"name", "acme/fin/a"}});
  net::Response metrics = Call(*client, "GET", "/metrics");
  EXPECT_THAT(metrics.body, HasSubstr("trustwarden_issuances_total 1\n"));
  EXPECT_THAT(metrics.body, HasSubstr("trustwarden_issuance_latency_seconds_count 1\n"));
  EXPECT_EQ(Call(*client, "GET", "/v1/nothing").status, 404);
  EXPECT_EQ(Call(*client, "DELETE", "/healthz").status, 405);
}

// The route table: a fixed route owns its path against a wildcard, another method is 405
// (named method_not_allowed, and counted so), a route's access is decided before its body is
// read, and roles are checked by the table.
TEST_F(ServerTest, RoutesDecideMethodAccessAndRoleBeforeTheHandler) {
  auto client = Client();
  net::Response renew = Call(*client, "GET", "/v1/identities/renew", "", admin_token_);
  EXPECT_EQ(renew.status, 405) << renew.body;
  EXPECT_EQ(json::parse(renew.body)["error"]["code"], "method_not_allowed");
  EXPECT_EQ(Call(*client, "POST", "/v1/identities", "{}").status, 401);  // no credentials
  net::Response created = Call(*client, "POST", "/v1/tokens",
                               json{{"principal", "ci"}, {"force", true}}.dump(), admin_token_);
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string ci = json::parse(created.body)["token"];
  EXPECT_EQ(Call(*client, "GET", "/v1/identities", "", ci).status, 403);   // not an admin
  EXPECT_EQ(Call(*client, "GET", "/v1/ledger/sths", "", ci).status, 403);  // nor an auditor
  EXPECT_EQ(Call(*client, "GET", "/v1/revocations").status, 200);          // public
  net::Response metrics = Call(*client, "GET", "/metrics");
  EXPECT_THAT(metrics.body, HasSubstr("trustwarden_errors_total{code=\"method_not_allowed\"} 1\n"));
  EXPECT_THAT(metrics.body, HasSubstr("trustwarden_errors_total{code=\"permission_denied\"} 2\n"));
  EXPECT_THAT(metrics.body, HasSubstr("trustwarden_errors_total{code=\"internal\"} 0\n"));
}

}  // namespace
}  // namespace tw::server

namespace tw::server {
namespace {

TEST(ServerKeysTest, KeysComeFromTheUrisTheConfigNames) {
  base::TempDir tmp("tw-keys");
  const std::string& dir = tmp.path();
  ASSERT_TRUE(base::WriteFile(dir + "/tw.toml", R"([keys]
ledger = "file:)" + dir + R"(/other.key.pem"
)")
                  .ok());
  ServerConfig config{.data_dir = dir + "/data"};
  ASSERT_TRUE(LoadServerConfig(dir + "/tw.toml", &config).ok());
  EXPECT_EQ(config.ledger_key, "file:" + dir + "/other.key.pem");

  // A ledger key that is not P-256 is refused, naming its URI.
  auto p384 = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP384);
  ASSERT_TRUE(p384->WriteFile(dir + "/other.key.pem").ok());
  auto refused = OpenServerKeys(config, base::Clock::System());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("other.key.pem"));

  // A P-256 key there is the one that signs tree heads; no ledger.key.pem is made.
  auto p256 = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  std::filesystem::remove(dir + "/other.key.pem");
  ASSERT_TRUE(p256->WriteFile(dir + "/other.key.pem").ok());
  auto keys = OpenServerKeys(config, base::Clock::System());
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->ledger->public_key(), p256->public_key());
  EXPECT_FALSE(std::filesystem::exists(dir + "/data/ledger.key.pem"));

  ASSERT_TRUE(base::WriteFile(dir + "/bad.toml", "[keys]\nhsm = \"x\"\n").ok());
  absl::Status bad = LoadServerConfig(dir + "/bad.toml", &config);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), HasSubstr("keys.hsm"));
}

TEST(ServerConfigTest, TheCaTableSetsTheRotationScheduleAndUpstreamChain) {
  base::TempDir tmp("tw-config");
  const std::string path = tmp / "tw.toml";
  ASSERT_TRUE(base::WriteFile(
                  path, "upstream_chain = \"/etc/tw/chain.pem\"\n[ca]\nrotate_every = \"720h\"\n")
                  .ok());
  ServerConfig config;
  ASSERT_TRUE(LoadServerConfig(path, &config).ok());
  EXPECT_EQ(config.rotate_every, absl::Hours(720));
  EXPECT_EQ(config.upstream_chain, "/etc/tw/chain.pem");
  for (const char* bad :
       {"[ca]\nrotate_every = \"30m\"\n", "[ca]\nrotate = \"1h\"\n", "[ca]\nrotate_every = 5\n"}) {
    ASSERT_TRUE(base::WriteFile(path, bad).ok());
    absl::Status s = LoadServerConfig(path, &config);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.message()), HasSubstr("ca.rotate")) << bad;
  }
}

TEST(SplitHostPortTest, ReadsNamesAddressesAndBracketedIpv6) {
  std::string host;
  uint16_t port = 1;
  ASSERT_TRUE(SplitHostPort("127.0.0.1:0", &host, &port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 0);
  ASSERT_TRUE(SplitHostPort("[::1]:8443", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 8443);
  ASSERT_TRUE(SplitHostPort("ca.internal:443", &host, &port).ok());
  EXPECT_EQ(host, "ca.internal");
}

TEST(SplitHostPortTest, RefusesWhatIsNotHostColonPort) {
  std::string host;
  uint16_t port;
  for (const char* listen :
       {"127.0.0.1", ":8443", "[::1]", "h:65536", "h:x", "u@h:1", "h:1/x", "[::1:80"}) {
    EXPECT_EQ(SplitHostPort(listen, &host, &port).code(), absl::StatusCode::kInvalidArgument)
        << listen;
  }
}

}  // namespace
}  // namespace tw::server
