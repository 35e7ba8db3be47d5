// The Authority's decisions, called directly with fake time over a SQLite store in a
// temporary directory.
#include "authority/authority.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/testing/loopback.h"
#include "base/testing/temp_dir.h"
#include "core/certificate.h"
#include "core/csr.h"
#include "crypto/software_signer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/entry.h"
#include "ledger/event.h"
#include "store/memory/memory_store.h"

namespace tw::authority {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

// Moves one second forward every time it is read: any code that reads the clock twice
// sees two instants.
class TickingClock final : public base::Clock {
 public:
  absl::Time Now() const override { return kStart + absl::Seconds(ticks_.fetch_add(1)); }

 private:
  mutable std::atomic<int64_t> ticks_{0};
};

class AuthorityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ca::CaDirectory::Init(dir_ + "/ca",
                                      {.trust_domain = *core::TrustDomain::FromName("example.org")},
                                      fake_)
                    .ok());
    auto adopted = ca::RotatingCa::Adopt(dir_ + "/ca", *ca::CaDirectory::Open(dir_ + "/ca"),
                                         ca::CaSigners::FilesIn(dir_ + "/ca"), {});
    ASSERT_TRUE(adopted.ok()) << adopted.status();
    ca_ = *std::move(adopted);
    store_ = std::make_unique<store::MemoryStore>();
    hub_ = std::make_unique<revocation::Hub>(0, std::vector<revocation::Entry>{});
    ledger_ = std::make_unique<ledger::Service>(
        *store_, *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256), "example.org",
        ca_->bundle()->ToJson(), ledger::ServiceOptions{.clock = &fake_});
    Recreate(&fake_);
  }
  void TearDown() override {
    authority_.reset();
    ledger_.reset();
    store_.reset();
  }

  void Recreate(const base::Clock* clock, absl::Duration max_lifetime = absl::Hours(24)) {
    authority_ = std::make_unique<Authority>(
        *ca_, *store_, *hub_, metrics_,
        AuthorityOptions{
            .clock = clock, .max_instance_lifetime = max_lifetime, .ledger = ledger_.get()});
    ASSERT_TRUE(authority_->Load(nullptr).ok());
  }

  struct Made {
    std::unique_ptr<crypto::SoftwareSigner> key;
    IssuedIdentity issued;
    std::vector<core::Certificate> chain;
    const core::Certificate& cert() const { return chain[0]; }
  };

  static std::string Csr(const crypto::SoftwareSigner& key) {
    return core::PemEncode("CERTIFICATE REQUEST", *core::BuildCertificateRequest(key));
  }

  absl::StatusOr<Made> Create(const Caller& caller, const std::string& name,
                              std::vector<std::string> scopes, std::optional<absl::Duration> ttl,
                              core::TrustLevel level = core::TrustLevel::kMedium) {
    Made m{*crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256), {}, {}};
    CreateIdentityRequest request{.name = *core::AgentName::Parse(name),
                                  .ttl = ttl,
                                  .trust_level = level,
                                  .csr = Csr(*m.key)};
    for (const std::string& s : scopes) request.scopes.push_back(*core::Scope::Parse(s));
    auto issued = authority_->CreateIdentity(caller, request);
    if (!issued.ok()) return issued.status();
    m.issued = *std::move(issued);
    m.chain = *core::Certificate::ParseChain(m.issued.svid_pem);
    return m;
  }

  // The caller presenting `made`'s certificate over mTLS.
  Caller AsAgent(const core::Certificate& cert) {
    auto caller = authority_->Authenticate("", {base::Bytes(cert.der().begin(), cert.der().end())});
    EXPECT_TRUE(caller.ok() && caller->svid.has_value()) << caller.status();
    return *caller;
  }

  absl::StatusOr<Made> Renew(const core::Certificate& presented,
                             std::unique_ptr<crypto::SoftwareSigner> key = nullptr) {
    Made m{
        key ? std::move(key) : *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256), {}, {}};
    auto issued = authority_->Renew(AsAgent(presented), Csr(*m.key));
    if (!issued.ok()) return issued.status();
    m.issued = *std::move(issued);
    m.chain = *core::Certificate::ParseChain(m.issued.svid_pem);
    return m;
  }

  // The decoded events matching `query`, in ledger order.
  std::vector<ledger::Event> Events(const store::LedgerQuery& query) {
    std::vector<ledger::Event> out;
    absl::StatusOr<std::vector<ledger::EntryRow>> rows = store_->QueryLedger(query);
    EXPECT_TRUE(rows.ok()) << rows.status();
    if (!rows.ok()) return out;
    for (const ledger::EntryRow& row : *rows) {
      out.push_back(*ledger::DecodeEvent(ledger::DecodeEntry(row.entry)->event));
    }
    return out;
  }

  absl::Status ApplyPolicy(const std::string& toml) {
    return authority_->ApplyPolicy(admin_, toml).status();
  }

  base::FakeClock fake_{kStart};
  TickingClock ticking_;
  base::TempDir tmp_{"tw-authority"};
  const std::string dir_ = tmp_.path();
  std::unique_ptr<ca::RotatingCa> ca_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<revocation::Hub> hub_;
  metrics::Metrics metrics_;
  std::unique_ptr<ledger::Service> ledger_;
  std::unique_ptr<Authority> authority_;
  const Caller admin_{.principal = "admin", .admin = true};
};

TEST_F(AuthorityTest, AnAuditorTokenCannotCreateIdentities) {
  auto created = authority_->CreateToken(admin_, "aud", /*auditor=*/true);
  ASSERT_TRUE(created.ok()) << created.status();
  auto auditor = authority_->Authenticate(created->token, {});
  ASSERT_TRUE(auditor.ok());
  EXPECT_TRUE(auditor->auditor);
  EXPECT_EQ(Create(*auditor, "acme/fin/payer", {"read:x"}, absl::Minutes(5)).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(authority_->RequireAuditor(*auditor).ok());
  EXPECT_EQ(authority_->CreateToken(admin_, "admin").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A policy naming one read-only principal for acme/*/*.
std::string ReaderPolicy(const std::string& principal) {
  return absl::StrCat("[principals.", principal, R"(]
names = ["acme/*/*"]
scopes = ["read:*"]
max_ttl = "1h"
max_trust_level = "low"
may_delegate = false
max_depth = 0
)");
}

TEST_F(AuthorityTest, ATokenForAPrincipalThePolicyDoesNotNameNeedsForce) {
  auto typo = authority_->CreateToken(admin_, "ci-pipelin");
  EXPECT_EQ(typo.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(typo.status().message(), HasSubstr("not named in policy version 1"));
  EXPECT_TRUE(authority_->CreateToken(admin_, "ci-pipelin", false, std::nullopt, true).ok());
  EXPECT_TRUE(authority_->CreateToken(admin_, "soc", /*auditor=*/true).ok());
  ASSERT_TRUE(ApplyPolicy(ReaderPolicy("ci-pipeline")).ok());
  EXPECT_TRUE(authority_->CreateToken(admin_, "ci-pipeline").ok());
}

TEST_F(AuthorityTest, ApplyingAnIdenticalPolicyIsANoOp) {
  const std::string source = ReaderPolicy("ci");
  auto first = authority_->ApplyPolicy(admin_, source);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->unchanged);
  auto again = authority_->ApplyPolicy(admin_, "# the same, reformatted\n" + source);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->unchanged);
  EXPECT_EQ(again->version.version, first->version.version);
  EXPECT_EQ(authority_->ListPolicies(admin_)->size(), 2u);  // the default and this one
}

TEST_F(AuthorityTest, TokensExpireAndAreRevoked) {
  auto expiring = *authority_->CreateToken(admin_, "ci", false, absl::Minutes(10), /*force=*/true);
  auto kept = *authority_->CreateToken(admin_, "ops", false, std::nullopt, /*force=*/true);
  EXPECT_TRUE(authority_->Authenticate(expiring.token, {}).ok());
  fake_.Set(kStart + absl::Minutes(10));
  auto expired = authority_->Authenticate(expiring.token, {});
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(expired.status().message(), HasSubstr("expired"));

  ASSERT_TRUE(authority_->RevokeToken(admin_, kept.id).ok());
  auto revoked = authority_->Authenticate(kept.token, {});
  EXPECT_THAT(revoked.status().message(), HasSubstr("revoked"));
  EXPECT_EQ(authority_->RevokeToken(admin_, kept.id).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(authority_->RevokeToken(admin_, "0123456789abcdef").code(),
            absl::StatusCode::kNotFound);
  // Revocation and expiry survive a restart (they are read back from the store).
  Recreate(&fake_);
  EXPECT_THAT(authority_->Authenticate(kept.token, {}).status().message(), HasSubstr("revoked"));
  auto listed = *authority_->ListTokens(admin_);
  ASSERT_EQ(listed.size(), 3u);
  for (const store::TokenRecord& t : listed) EXPECT_TRUE(t.secret_hash.empty());
}

TEST_F(AuthorityTest, TheLastAdminTokenCannotBeRevoked) {
  auto listed = *authority_->ListTokens(admin_);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(authority_->RevokeToken(admin_, listed[0].id).code(),
            absl::StatusCode::kFailedPrecondition);
}

// With a clock that moves on every read, the TTL check and the certificate's notAfter
// must use one instant, or a child asking for all its parent has left outlives it.
TEST_F(AuthorityTest, AChildNeverOutlivesItsParent) {
  Recreate(&ticking_);
  auto parent = Create(admin_, "acme/fin/orchestrator", {"read:*"}, absl::Minutes(10));
  ASSERT_TRUE(parent.ok()) << parent.status();
  const Caller as_parent = AsAgent(parent->cert());
  for (int i = 0; i < 5; ++i) {
    const absl::Duration left =
        absl::Trunc(parent->cert().not_after() - ticking_.Now(), absl::Seconds(1)) -
        absl::Seconds(1);
    auto child = Create(as_parent, "acme/fin/worker", {"read:x"}, left);
    ASSERT_TRUE(child.ok()) << child.status();
    EXPECT_LE(child->cert().not_after(), parent->cert().not_after()) << i;
    auto defaulted = Create(as_parent, "acme/fin/worker", {"read:x"}, std::nullopt);
    ASSERT_TRUE(defaulted.ok()) << defaulted.status();
    EXPECT_LE(defaulted->cert().not_after(), parent->cert().not_after()) << i;
  }
}

TEST_F(AuthorityTest, OnlyTheCurrentCertificateRenewsAndAnOlderOneIsRecorded) {
  auto first = *Create(admin_, "acme/fin/payer", {"read:x"}, absl::Minutes(10));
  auto second = Renew(first.cert());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->issued.record.instance_id, first.issued.record.instance_id);
  auto stolen = Renew(first.cert());
  EXPECT_EQ(stolen.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(stolen.status().message(), HasSubstr("suspected key theft"));
  auto events = *store_->QueryLedger({.decision = "deny", .type = "renewal"});
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].instance, first.issued.record.spiffe_id);
  // The current certificate still renews.
  EXPECT_TRUE(Renew(second->cert()).ok());
}

// The reply to a renewal was lost: the instance asks again with its previous certificate
// and the same key. That renews; another key with that certificate is a thief.
TEST_F(AuthorityTest, ARenewalRetriedAfterALostReplyIsNotKeyTheft) {
  auto first = *Create(admin_, "acme/fin/payer", {"read:x"}, absl::Minutes(10));
  auto key = *crypto::SoftwareSigner::Generate(crypto::KeyType::kEcP256);
  const std::string pem = std::string(key->ToPkcs8Pem().view());
  auto lost = Renew(first.cert(), std::move(key));
  ASSERT_TRUE(lost.ok()) << lost.status();
  auto retried = Renew(first.cert(), *crypto::SoftwareSigner::FromPem(pem));
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_TRUE(store_->QueryLedger({.decision = "deny", .type = "renewal"})->empty());
  EXPECT_EQ(store_->GetIdentity(first.issued.record.instance_id)->serial_hex,
            retried->issued.record.serial_hex);
  auto stolen = Renew(first.cert());  // same old certificate, another key
  EXPECT_THAT(stolen.status().message(), HasSubstr("suspected key theft"));
  EXPECT_TRUE(Renew(retried->cert()).ok());
}

TEST_F(AuthorityTest, RenewalAppliesTheCurrentPolicy) {
  auto made = *Create(admin_, "acme/fin/payer", {"read:x", "write:y"}, absl::Hours(2),
                      core::TrustLevel::kHigh);
  ASSERT_TRUE(ApplyPolicy(R"(
[principals.admin]
names = ["*/*/*"]
scopes = ["read:*"]
max_ttl = "30m"
max_trust_level = "medium"
may_delegate = true
max_depth = 3
)")
                  .ok());
  auto renewed = Renew(made.cert());
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  const store::IdentityRecord& r = renewed->issued.record;
  EXPECT_THAT(r.scopes, ::testing::ElementsAre("read:x"));
  EXPECT_EQ(r.trust_level, "medium");
  EXPECT_EQ(r.policy_version, authority_->current_policy()->version);
  EXPECT_LE(renewed->cert().not_after() - kStart, absl::Minutes(30));
  auto attributes = core::DecodeAttributes(*renewed->cert().attributes());
  ASSERT_TRUE(attributes.ok());
  ASSERT_EQ(attributes->scopes.size(), 1u);
  EXPECT_EQ(attributes->scopes[0].str(), "read:x");
  EXPECT_EQ(*store_->GetIdentity(r.instance_id), r);

  ASSERT_TRUE(ApplyPolicy(R"(
[principals.someone-else]
names = ["*/*/*"]
scopes = ["read:*"]
max_ttl = "30m"
max_trust_level = "medium"
)")
                  .ok());
  auto refused = Renew(renewed->cert());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.status().message(), HasSubstr("no longer in the policy"));
}

TEST_F(AuthorityTest, AnInstanceLivesNoLongerThanTheMaximumLifetime) {
  Recreate(&fake_, absl::Hours(1));
  EXPECT_EQ(Create(admin_, "acme/fin/payer", {"read:x"}, absl::Hours(2)).status().code(),
            absl::StatusCode::kPermissionDenied);
  auto made = *Create(admin_, "acme/fin/payer", {"read:x"}, absl::Minutes(40));
  fake_.Set(kStart + absl::Minutes(30));
  auto renewed = Renew(made.cert());
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_LE(renewed->cert().not_after(), kStart + absl::Hours(1));
  fake_.Set(kStart + absl::Hours(1));
  EXPECT_THAT(Renew(renewed->cert()).status().message(), HasSubstr("max lifetime"));
}

TEST_F(AuthorityTest, LateSignersAreJudgedByTheDurableRevocationRecord) {
  auto made = *Create(admin_, "acme/fin/payer", {"read:x"}, absl::Minutes(10));
  std::vector<base::ByteView> chain = {made.cert().der()};
  auto live = authority_->VerifyLateSigner(chain);
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_FALSE(live->revoked_at.has_value());
  fake_.Set(kStart + absl::Minutes(1));
  ASSERT_TRUE(authority_
                  ->Revoke(admin_, RevokeRequest{revocation::Kind::kInstance,
                                                 made.issued.record.instance_id, "test"})
                  .ok());
  // A hub that has forgotten the revocation (pruned, or a fresh replica) changes nothing.
  hub_ = std::make_unique<revocation::Hub>(0, std::vector<revocation::Entry>{});
  Recreate(&fake_);
  auto revoked = authority_->VerifyLateSigner(chain);
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  ASSERT_TRUE(revoked->revoked_at.has_value());
  EXPECT_EQ(*revoked->revoked_at, kStart + absl::Minutes(1));
  // A day after its signer expired, a spool is too late to deliver.
  fake_.Set(made.cert().not_after() + absl::Hours(24) + absl::Seconds(1));
  auto late = authority_->VerifyLateSigner(chain);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(late.status().message(), HasSubstr("too late"));
}

// Revocation decisions: an agent may revoke itself and its subtree and nothing else; the
// admin anything; the hub hears each entry, and the page never runs past it.
TEST_F(AuthorityTest, AgentsRevokeOnlyTheirOwnSubtree) {
  auto parent = *Create(admin_, "acme/fin/orchestrator", {"read:*"}, absl::Minutes(30));
  auto child = *Create(AsAgent(parent.cert()), "acme/fin/worker", {"read:x"}, absl::Minutes(10));
  auto other = *Create(admin_, "acme/ops/monitor", {"read:x"}, absl::Minutes(10));
  EXPECT_EQ(child.issued.parent_spiffe_id, parent.issued.record.spiffe_id);

  const Caller as_child = AsAgent(child.cert());
  auto refused = authority_->Revoke(
      as_child, {.kind = revocation::Kind::kInstance, .target = other.issued.record.instance_id});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(hub_->IsRevoked(other.issued.record.instance_id));

  auto subtree =
      authority_->Revoke(AsAgent(parent.cert()), {.kind = revocation::Kind::kSubtree,
                                                  .target = parent.issued.record.instance_id,
                                                  .reason = "compromised"});
  ASSERT_TRUE(subtree.ok()) << subtree.status();
  EXPECT_THAT(subtree->instances, ::testing::UnorderedElementsAre(parent.issued.record.instance_id,
                                                                  child.issued.record.instance_id));
  EXPECT_TRUE(hub_->IsRevoked(child.issued.record.instance_id));
  EXPECT_FALSE(hub_->IsRevoked(other.issued.record.instance_id));
  // A revoked agent is refused at once, by the hub, before its certificate expires.
  EXPECT_FALSE(
      authority_
          ->Authenticate("", {base::Bytes(child.cert().der().begin(), child.cert().der().end())})
          ->svid.has_value());

  auto page = authority_->Revocations(0, 10);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].reason, "compromised");
  EXPECT_EQ(page->sequence, 1);
  EXPECT_EQ(page->next_after, 1);
  EXPECT_FALSE(page->more);
}

TEST_F(AuthorityTest, EveryRevokedInstanceHasItsOwnEventAndTheViewSaysByWhom) {
  auto parent = *Create(admin_, "acme/fin/orchestrator", {"read:*"}, absl::Minutes(30));
  auto child = *Create(AsAgent(parent.cert()), "acme/fin/worker", {"read:*"}, absl::Minutes(20));
  auto grandchild =
      *Create(AsAgent(child.cert()), "acme/fin/helper", {"read:x"}, absl::Minutes(10));
  const std::string& pid = parent.issued.record.instance_id;
  // The parent revokes its child's subtree: each instance's trail shows it, and who asked.
  auto revoked =
      authority_->Revoke(AsAgent(parent.cert()), {.kind = revocation::Kind::kSubtree,
                                                  .target = child.issued.record.instance_id,
                                                  .reason = "looping"});
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  auto own = Events({.instance = child.issued.record.spiffe_id, .type = "revocation"});
  ASSERT_EQ(own.size(), 1u);
  EXPECT_EQ(own[0].reason, "looping");
  EXPECT_EQ(own[0].parent, parent.issued.record.spiffe_id);
  EXPECT_EQ(own[0].caller, parent.issued.record.spiffe_id);
  auto cascaded = Events({.instance = grandchild.issued.record.spiffe_id, .type = "revocation"});
  ASSERT_EQ(cascaded.size(), 1u);
  EXPECT_EQ(cascaded[0].resource, "subtree:" + child.issued.record.instance_id);
  EXPECT_EQ(cascaded[0].reason,
            absl::StrCat("cascaded from subtree:", child.issued.record.instance_id, ": looping"));
  EXPECT_EQ(cascaded[0].parent, child.issued.record.spiffe_id);
  auto view = authority_->GetIdentity(admin_, grandchild.issued.record.instance_id);
  ASSERT_TRUE(view.ok() && view->revocation) << view.status();
  EXPECT_EQ(view->revocation->revoked_by, parent.issued.record.spiffe_id);
  EXPECT_EQ(view->revocation->target, child.issued.record.instance_id);
  // The admin revokes the rest by name: revoked_by names the token's principal.
  ASSERT_TRUE(
      authority_
          ->Revoke(admin_, {.kind = revocation::Kind::kAgent, .target = "acme/fin/orchestrator"})
          .ok());
  auto by_name = Events({.instance = parent.issued.record.spiffe_id, .type = "revocation"});
  ASSERT_EQ(by_name.size(), 1u);
  EXPECT_EQ(by_name[0].resource, "agent:acme/fin/orchestrator");
  EXPECT_EQ(by_name[0].caller, "");
  EXPECT_EQ(authority_->GetIdentity(admin_, pid)->revocation->revoked_by, "principal:admin");
  // Revocations are not recorded twice: three instances, three events.
  EXPECT_EQ(Events({.type = "revocation"}).size(), 3u);
}

TEST_F(AuthorityTest, RefusedRenewalsJwtMintsAndRevocationsAreRecorded) {
  auto agent = *Create(admin_, "acme/fin/payer", {"read:x"}, absl::Minutes(30));
  auto other = *Create(admin_, "acme/ops/monitor", {"read:x"}, absl::Minutes(30));
  const Caller as_agent = AsAgent(agent.cert());
  const std::string& spiffe_id = agent.issued.record.spiffe_id;

  EXPECT_EQ(authority_
                ->Revoke(as_agent, {.kind = revocation::Kind::kInstance,
                                    .target = other.issued.record.instance_id})
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
  auto revocation = Events({.caller = spiffe_id, .decision = "deny", .type = "revocation"});
  ASSERT_EQ(revocation.size(), 1u);
  EXPECT_EQ(revocation[0].resource, "instance:" + other.issued.record.instance_id);
  EXPECT_THAT(revocation[0].reason, HasSubstr("only itself or its subtree"));

  auto ci = *authority_->CreateToken(admin_, "ci", false, std::nullopt, /*force=*/true);
  EXPECT_EQ(authority_
                ->Revoke(*authority_->Authenticate(ci.token, {}),
                         {.kind = revocation::Kind::kPrincipal, .target = "x"})
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
  auto by_token = Events({.principal = "ci", .decision = "deny", .type = "revocation"});
  ASSERT_EQ(by_token.size(), 1u);
  EXPECT_EQ(by_token[0].resource, "principal:x");

  // Revoked in the store while its certificate still verifies (the hub not told yet).
  ASSERT_TRUE(
      store_->Revoke(revocation::Kind::kInstance, agent.issued.record.instance_id, "", fake_.Now())
          .ok());
  EXPECT_EQ(authority_->MintJwt(as_agent, {.audience = {"db"}}).status().code(),
            absl::StatusCode::kPermissionDenied);
  auto jwt = Events({.instance = spiffe_id, .decision = "deny", .type = "issuance"});
  ASSERT_EQ(jwt.size(), 1u);
  EXPECT_EQ(jwt[0].resource, "jwt-svid:db");
  EXPECT_EQ(jwt[0].serial, agent.issued.record.serial_hex);
  EXPECT_THAT(jwt[0].reason, HasSubstr("is revoked"));
  EXPECT_EQ(authority_->Renew(as_agent, Csr(*agent.key)).status().code(),
            absl::StatusCode::kPermissionDenied);
  auto renewal = Events({.instance = spiffe_id, .decision = "deny", .type = "renewal"});
  ASSERT_EQ(renewal.size(), 1u);
  EXPECT_THAT(renewal[0].reason, HasSubstr("is revoked"));
}

TEST_F(AuthorityTest, ARefusedCallerCannotGrowTheLedgerWithoutBound) {
  auto agent = *Create(admin_, "acme/fin/payer", {"read:x"}, absl::Minutes(30));
  auto other = *Create(admin_, "acme/ops/monitor", {"read:x"}, absl::Minutes(30));
  const Caller as_agent = AsAgent(agent.cert());
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(authority_
                  ->Revoke(as_agent, {.kind = revocation::Kind::kInstance,
                                      .target = other.issued.record.instance_id})
                  .status()
                  .code(),
              absl::StatusCode::kPermissionDenied);
  }
  const size_t recorded = Events({.decision = "deny", .type = "revocation"}).size();
  EXPECT_GE(recorded, 10u);
  EXPECT_LT(recorded, 200u);
}

TEST_F(AuthorityTest, AdminReadsShowTheParentAndRefuseOthers) {
  auto parent = *Create(admin_, "acme/fin/orchestrator", {"read:*"}, absl::Minutes(30));
  auto child = *Create(AsAgent(parent.cert()), "acme/fin/worker", {"read:x"}, absl::Minutes(10));
  auto view = authority_->GetIdentity(admin_, child.issued.record.instance_id);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->parent_spiffe_id, parent.issued.record.spiffe_id);
  auto listed = authority_->ListIdentities(admin_, {.agent = "acme/fin/worker"});
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].parent_spiffe_id, parent.issued.record.spiffe_id);

  EXPECT_EQ(authority_->GetIdentity(admin_, "not an id").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(authority_->GetIdentity(admin_, "inst-abcdefghijklmnop").status().code(),
            absl::StatusCode::kNotFound);
  const Caller as_child = AsAgent(child.cert());
  EXPECT_EQ(authority_->GetIdentity(as_child, child.issued.record.instance_id).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(authority_->ListPolicies(as_child).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(authority_->ListPolicies(Caller{}).status().code(), absl::StatusCode::kUnauthenticated);
}

// A loopback endpoint that answers nothing: it closes what it accepts, except between
// Hold() and Release(), when it keeps connections open and unanswered.
class SilentEndpoint {
 public:
  SilentEndpoint() {
    uint16_t port = 0;
    fd_ = base::ListenOnLoopback(&port);
    url_ = absl::StrCat("https://127.0.0.1:", port, "/");
    thread_ = std::thread([this] {
      for (int conn; (conn = accept(fd_, nullptr, nullptr)) >= 0;) {
        absl::MutexLock lock(&mu_);
        if (!hold_) {
          close(conn);
          continue;
        }
        held_.push_back(conn);
      }
    });
  }
  ~SilentEndpoint() {
    Release();
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  const std::string& url() const { return url_; }
  void Hold() {
    absl::MutexLock lock(&mu_);
    hold_ = true;
  }
  // True once a connection is held; false after 15 s without one.
  bool WaitHolding() {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(
                                    +[](std::vector<int>* held) { return !held->empty(); }, &held_),
                                absl::Seconds(15));
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    hold_ = false;
    for (int conn : held_) close(conn);
    held_.clear();
  }

 private:
  int fd_ = -1;
  std::string url_;
  absl::Mutex mu_;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<int> held_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

class FederationFetchTest : public AuthorityTest {
 protected:
  void Add(const SilentEndpoint& endpoint) {
    auto relationship = federation::MakeRelationship("energy.city", endpoint.url(), "https_web", "",
                                                     ca_->trust_domain());
    ASSERT_TRUE(relationship.ok()) << relationship.status();
    auto added = authority_->AddFederation(admin_, *relationship, std::nullopt);
    ASSERT_TRUE(added.ok()) << added.status();
    EXPECT_THAT(added->last_error, Not(IsEmpty()));  // its first fetch met a closed connection
  }
  // Starts a refresh and returns once it waits on `endpoint`.
  void StartFetch(SilentEndpoint& endpoint) {
    endpoint.Hold();
    fetch_ = std::thread([this] {
      result_ = authority_->RefreshFederation(admin_, "energy.city").status();
      done_ = true;
    });
    ASSERT_TRUE(endpoint.WaitHolding()) << "the fetch never reached the endpoint";
  }
  void TearDown() override {
    if (fetch_.joinable()) fetch_.join();
    AuthorityTest::TearDown();
  }

  std::thread fetch_;
  std::atomic<bool> done_{false};
  absl::Status result_;
};

TEST_F(FederationFetchTest, ASilentEndpointHoldsUpNoRemovalAndItsFetchAppliesToNothing) {
  SilentEndpoint endpoint;
  ASSERT_NO_FATAL_FAILURE(Add(endpoint));
  ASSERT_NO_FATAL_FAILURE(StartFetch(endpoint));
  EXPECT_TRUE(authority_->RemoveFederation(admin_, "energy.city").ok());
  EXPECT_FALSE(done_);  // removed while the fetch still waits
  EXPECT_THAT(*authority_->ListFederations(admin_), IsEmpty());
  endpoint.Release();
  fetch_.join();
  EXPECT_EQ(result_.code(), absl::StatusCode::kNotFound) << result_;
  EXPECT_THAT(*store_->ListFederations(), IsEmpty());
}

TEST_F(FederationFetchTest, AFetchForAReplacedRelationshipAppliesToNothing) {
  SilentEndpoint endpoint, successor;
  ASSERT_NO_FATAL_FAILURE(Add(endpoint));
  ASSERT_NO_FATAL_FAILURE(StartFetch(endpoint));
  ASSERT_NO_FATAL_FAILURE(Add(successor));
  EXPECT_FALSE(done_);  // replaced while the fetch still waits
  endpoint.Release();
  fetch_.join();
  EXPECT_EQ(result_.code(), absl::StatusCode::kAborted) << result_;
  auto listed = authority_->ListFederations(admin_);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].record.endpoint_url, successor.url());
  EXPECT_THAT((*listed)[0].last_error, Not(IsEmpty()));  // the successor's own fetch's
}

}  // namespace
}  // namespace tw::authority
