#include "sdk/renewer.h"

#include <vector>

#include "gtest/gtest.h"

namespace trustwarden::internal {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1800000000);
constexpr uint64_t kSeed = 7;

TEST(RenewalTimeTest, IsHalfwayThroughTheLifeGiveOrTakeFivePercent) {
  const Lifetime life{kStart, kStart + absl::Seconds(1000)};
  std::mt19937_64 rng(kSeed);
  absl::Time earliest = absl::InfiniteFuture(), latest = absl::InfinitePast();
  for (int i = 0; i < 1000; ++i) {
    const absl::Time t = RenewalTime(life, rng);
    earliest = std::min(earliest, t);
    latest = std::max(latest, t);
  }
  EXPECT_GE(earliest, kStart + absl::Seconds(450));
  EXPECT_LE(latest, kStart + absl::Seconds(550));
  // Spread over the window, so identities created together renew apart.
  EXPECT_LT(earliest, kStart + absl::Seconds(460));
  EXPECT_GT(latest, kStart + absl::Seconds(540));
}

// An identity as the renewer sees it: its certificate's lifetime, and what each hook did.
class FakeIdentity {
 public:
  explicit FakeIdentity(tw::base::FakeClock& clock, absl::Duration life)
      : clock_(clock), life_(life), lifetime_{kStart, kStart + life} {}

  // Renewals answer with this from now on; OK renews for another `life`.
  void AnswerRenewals(absl::Status answer) {
    absl::MutexLock lock(&mu_);
    answer_ = std::move(answer);
  }
  // Shipping reports records left for the next `count` calls.
  void LeaveRecordsFor(int count) {
    absl::MutexLock lock(&mu_);
    ships_left_ = count;
  }

  Renewer::Hooks Hooks() {
    return {.lifetime =
                [this] {
                  absl::MutexLock lock(&mu_);
                  return lifetime_;
                },
            .renew =
                [this] {
                  absl::MutexLock lock(&mu_);
                  renewals_.push_back(clock_.Now());
                  if (answer_.ok()) lifetime_ = {clock_.Now(), clock_.Now() + life_};
                  return answer_;
                },
            .ship =
                [this] {
                  absl::MutexLock lock(&mu_);
                  ships_.push_back(clock_.Now());
                  return ships_left_-- > 0;
                }};
  }

  // When the renewals happened, once there have been `count` (real-time bound: a broken
  // renewer fails the test instead of hanging it).
  std::vector<absl::Time> AwaitRenewals(size_t count) {
    absl::MutexLock lock(&mu_);
    AwaitCalls(renewals_, count);
    return renewals_;
  }
  std::vector<absl::Time> AwaitShips(size_t count) {
    absl::MutexLock lock(&mu_);
    AwaitCalls(ships_, count);
    return ships_;
  }
  std::vector<absl::Time> renewals() {
    absl::MutexLock lock(&mu_);
    return renewals_;
  }

 private:
  void AwaitCalls(const std::vector<absl::Time>& calls, size_t count)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const auto enough = [&] {
      mu_.AssertReaderHeld();
      return calls.size() >= count;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
  }

  tw::base::FakeClock& clock_;
  const absl::Duration life_;
  absl::Mutex mu_;
  Lifetime lifetime_ ABSL_GUARDED_BY(mu_);
  absl::Status answer_ ABSL_GUARDED_BY(mu_);
  int ships_left_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<absl::Time> renewals_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Time> ships_ ABSL_GUARDED_BY(mu_);
};

class RenewerTest : public ::testing::Test {
 protected:
  // The renewal times the renewer draws, in order, for certificates of `life`s.
  static std::vector<absl::Time> Draws(std::vector<Lifetime> lifetimes) {
    std::mt19937_64 rng(kSeed);
    std::vector<absl::Time> out;
    for (const Lifetime& l : lifetimes) out.push_back(RenewalTime(l, rng));
    return out;
  }
  // When the renewer's thread sleeps until, once it has gone to sleep.
  absl::Time NextWakeup() {
    std::optional<absl::Time> t = clock_.NextWakeup(absl::Seconds(10));
    EXPECT_TRUE(t.has_value()) << "the renewer never went to sleep";
    return t.value_or(absl::InfinitePast());
  }

  tw::base::FakeClock clock_{kStart};
};

TEST_F(RenewerTest, RenewsAtItsRenewalTimeAndNotBefore) {
  const absl::Duration life = absl::Seconds(100);
  FakeIdentity identity(clock_, life);
  Renewer renewer(clock_, identity.Hooks(), kSeed);
  renewer.Start();
  const absl::Time due = Draws({{kStart, kStart + life}})[0];
  ASSERT_EQ(NextWakeup(), due);
  clock_.Set(due - absl::Nanoseconds(1));
  EXPECT_TRUE(identity.renewals().empty());  // Set() returns once the renewer saw the time
  clock_.Set(due);
  EXPECT_EQ(identity.AwaitRenewals(1), std::vector<absl::Time>{due});
  // The next one is halfway through the new certificate's life.
  EXPECT_EQ(NextWakeup(), Draws({{kStart, kStart + life}, {due, due + life}})[1]);
}

TEST_F(RenewerTest, RetriesWithDoublingDelaysUntilTheCertificateExpires) {
  const absl::Time expiry = kStart + absl::Seconds(10);
  FakeIdentity identity(clock_, expiry - kStart);
  identity.AnswerRenewals(absl::UnavailableError("the server is away"));
  Renewer renewer(clock_, identity.Hooks(), kSeed);
  renewer.Start();
  const absl::Time due = Draws({{kStart, expiry}})[0];  // about 5 s in
  ASSERT_EQ(NextWakeup(), due);
  clock_.Set(due);
  identity.AwaitRenewals(1);
  ASSERT_EQ(NextWakeup(), due + absl::Seconds(1));
  clock_.Set(due + absl::Seconds(1));
  identity.AwaitRenewals(2);
  ASSERT_EQ(NextWakeup(), due + absl::Seconds(3));
  clock_.Set(due + absl::Seconds(3));
  identity.AwaitRenewals(3);
  // 4 s more would pass the expiry: the last attempt is at it.
  ASSERT_EQ(NextWakeup(), expiry);
  clock_.Set(expiry);
  identity.AwaitRenewals(4);
  // An expired certificate cannot be renewed: no more attempts, however late it gets.
  EXPECT_EQ(NextWakeup(), absl::InfiniteFuture());
  clock_.Set(expiry + absl::Hours(1));
  EXPECT_EQ(identity.renewals().size(), 4u);
}

TEST_F(RenewerTest, ASuccessStartsTheRetryDelaysOver) {
  const absl::Duration life = absl::Seconds(100);
  FakeIdentity identity(clock_, life);
  identity.AnswerRenewals(absl::DeadlineExceededError("slow"));
  Renewer renewer(clock_, identity.Hooks(), kSeed);
  renewer.Start();
  const absl::Time due = Draws({{kStart, kStart + life}})[0];
  ASSERT_EQ(NextWakeup(), due);
  clock_.Set(due);
  identity.AwaitRenewals(1);
  ASSERT_EQ(NextWakeup(), due + absl::Seconds(1));
  identity.AnswerRenewals(absl::OkStatus());
  clock_.Set(due + absl::Seconds(1));
  identity.AwaitRenewals(2);
  const absl::Time renewed = due + absl::Seconds(1);
  const absl::Time next = Draws({{kStart, kStart + life}, {renewed, renewed + life}})[1];
  ASSERT_EQ(NextWakeup(), next);
  identity.AnswerRenewals(absl::UnavailableError("away again"));
  clock_.Set(next);
  identity.AwaitRenewals(3);
  EXPECT_EQ(NextWakeup(), next + absl::Seconds(1));
}

TEST_F(RenewerTest, ARefusalEndsTheRenewals) {
  FakeIdentity identity(clock_, absl::Seconds(100));
  identity.AnswerRenewals(absl::PermissionDeniedError("revoked"));
  Renewer renewer(clock_, identity.Hooks(), kSeed);
  renewer.Start();
  const absl::Time due = NextWakeup();
  clock_.Set(due);
  identity.AwaitRenewals(1);
  EXPECT_EQ(clock_.NextWakeup(absl::Milliseconds(200)), std::nullopt);  // the thread ended
}

TEST_F(RenewerTest, ShipsEverySecondWhileRecordsWait) {
  FakeIdentity identity(clock_, absl::Hours(1));
  identity.LeaveRecordsFor(2);  // the start's shipping and the next leave records behind
  Renewer renewer(clock_, identity.Hooks(), kSeed);
  renewer.Start();
  EXPECT_EQ(identity.AwaitShips(1), std::vector<absl::Time>{kStart});
  ASSERT_EQ(NextWakeup(), kStart + absl::Seconds(1));
  clock_.Set(kStart + absl::Seconds(1));
  identity.AwaitShips(2);
  ASSERT_EQ(NextWakeup(), kStart + absl::Seconds(2));
  clock_.Set(kStart + absl::Seconds(2));
  EXPECT_EQ(identity.AwaitShips(3).back(), kStart + absl::Seconds(2));
  // Nothing left: back to the renewal schedule.
  EXPECT_EQ(NextWakeup(), Draws({{kStart, kStart + absl::Hours(1)}})[0]);
  EXPECT_TRUE(identity.renewals().empty());
}

TEST_F(RenewerTest, RecordsJustSpooledAreShippedASecondLater) {
  FakeIdentity identity(clock_, absl::Hours(1));
  Renewer renewer(clock_, identity.Hooks(), kSeed);
  renewer.ShipSoon();  // before its first sleep, so that this test knows which sleep it sees
  renewer.Start();
  ASSERT_EQ(NextWakeup(), kStart + absl::Seconds(1));
  clock_.Set(kStart + absl::Seconds(1));
  EXPECT_EQ(identity.AwaitShips(2), (std::vector<absl::Time>{kStart, kStart + absl::Seconds(1)}));
  EXPECT_EQ(NextWakeup(), Draws({{kStart, kStart + absl::Hours(1)}})[0]);
}

TEST_F(RenewerTest, StopEndsTheThreadWithoutWaitingForItsDeadline) {
  FakeIdentity identity(clock_, absl::Hours(1));
  Renewer renewer(clock_, identity.Hooks(), kSeed);
  renewer.Start();
  NextWakeup();
  renewer.Stop();
  renewer.Stop();  // idempotent
  EXPECT_EQ(clock_.NextWakeup(absl::ZeroDuration()), std::nullopt);
  EXPECT_TRUE(identity.renewals().empty());
}

}  // namespace
}  // namespace trustwarden::internal
