// RateLimiter (server/rate_limit.h): the limits hold, memory stays bounded,
// and no call sweeps the buckets, at 400,000 devices (issue 8). Time is an
// injected clock; nothing here reads the wall clock.
#include "server/rate_limit.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace fieldsync::server {
namespace {

class FakeTime {
 public:
  std::function<absl::Time()> Clock() {
    return [this] { return now_; };
  }
  void Advance(absl::Duration d) { now_ += d; }

 private:
  absl::Time now_ = absl::FromUnixSeconds(1'750'000'000);
};

constexpr size_t kDevices = 400'000;

TEST(RateLimiterTest, ABucketAllowsItsBurstThenRefillsAtItsRate) {
  FakeTime time;
  RateLimiter limiter(/*per_second=*/2, /*burst=*/3, time.Clock());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Allow("phone")) << i;
  EXPECT_FALSE(limiter.Allow("phone"));
  EXPECT_EQ(limiter.Take("phone"), absl::Milliseconds(500));
  time.Advance(absl::Milliseconds(500));
  EXPECT_TRUE(limiter.Allow("phone"));
  EXPECT_FALSE(limiter.Allow("phone"));
  // Another key has its own bucket.
  EXPECT_TRUE(limiter.Allow("tablet"));
}

TEST(RateLimiterTest, EveryCallExaminesABoundedNumberOfBucketsAt400000Devices) {
  FakeTime time;
  RateLimiter limiter(20, 40, time.Clock());
  size_t most = 0;
  for (size_t i = 0; i < kDevices; ++i) {
    ASSERT_TRUE(limiter.Allow(absl::StrCat("device-", i)));
    most = std::max(most, limiter.last_examined());
  }
  // Nothing has refilled (no time passed): all are held, none was swept.
  EXPECT_EQ(limiter.buckets(), kDevices);
  EXPECT_LE(most, 2 + RateLimiter::kMaxEvictionsPerCall);
  // Past the time they all refill, a call still looks at a few only.
  time.Advance(absl::Seconds(10));
  most = 0;
  for (size_t i = 0; i < 1000; ++i) {
    ASSERT_TRUE(limiter.Allow(absl::StrCat("late-", i)));
    most = std::max(most, limiter.last_examined());
  }
  EXPECT_LE(most, 2 + RateLimiter::kMaxEvictionsPerCall);
  // ... and each forgot more than it added: the set shrinks.
  EXPECT_LT(limiter.buckets(), kDevices);
}

TEST(RateLimiterTest, MemoryIsBoundedByTheKeysActiveWithinOneRefillPeriod) {
  FakeTime time;
  // One token taken from 40 refills in 1 / 20 s = 50 ms: a key called once
  // is forgettable 50 calls later.
  RateLimiter limiter(20, 40, time.Clock());
  size_t most = 0;
  for (size_t i = 0; i < kDevices; ++i) {
    ASSERT_TRUE(limiter.Allow(absl::StrCat("device-", i)));
    most = std::max(most, limiter.buckets());
    time.Advance(absl::Milliseconds(1));
  }
  // The keys of the last refill period (about 50), never the 400,000.
  EXPECT_LE(most, 60u);
}

TEST(RateLimiterTest, PastTheCapTheLeastRecentlyUsedBucketIsForgotten) {
  FakeTime time;
  RateLimiter limiter(1, 1, time.Clock(), /*max_buckets=*/100);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limiter.Allow(absl::StrCat("device-", i)));
  EXPECT_EQ(limiter.buckets(), 100u);
  // The most recent ones are still limited.
  EXPECT_FALSE(limiter.Allow("device-999"));
}

TEST(RateLimiterTest, AnEmptyBucketStaysLimitedWhileOtherKeysComeAndGo) {
  FakeTime time;
  RateLimiter limiter(1, 2, time.Clock());
  ASSERT_TRUE(limiter.Allow("greedy"));
  ASSERT_TRUE(limiter.Allow("greedy"));
  for (int i = 0; i < 10'000; ++i) {
    ASSERT_TRUE(limiter.Allow(absl::StrCat("other-", i)));
    // Still within the refill of one token (1 s).
    if (i % 1000 == 0) time.Advance(absl::Milliseconds(50));
  }
  EXPECT_FALSE(limiter.Allow("greedy"));
  time.Advance(absl::Seconds(1));
  EXPECT_TRUE(limiter.Allow("greedy"));
}

TEST(RateLimiterTest, WithoutRefillAnEmptyBucketWaitsForever) {
  FakeTime time;
  RateLimiter limiter(0, 1, time.Clock());
  ASSERT_TRUE(limiter.Allow("k"));
  EXPECT_EQ(limiter.Take("k"), absl::InfiniteDuration());
}

}  // namespace
}  // namespace fieldsync::server
