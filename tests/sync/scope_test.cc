// Scope (sync/scope.h) and the hybrid logical clock (sync/hlc.h).
#include "sync/scope.h"

#include "gtest/gtest.h"
#include "sync/event_codec.h"
#include "sync/hlc.h"

namespace fieldsync::sync {
namespace {

TEST(ScopeTest, NormalizeSortsDeduplicatesAndDropsCoveredPrefixes) {
  Scope scope;
  scope.area_prefixes = {"620102001001", "620102", "620103001", "620102", "620102002"};
  const Scope normal = Normalize(scope);
  EXPECT_EQ(normal.area_prefixes, (std::vector<std::string>{"620102", "620103001"}));
}

TEST(ScopeTest, EqualScopesHaveEqualDigestsWhateverTheOrder) {
  Scope a;
  a.area_prefixes = {"620103001", "620102"};
  a.subject_keys = {"household/x", "household/y"};
  Scope b;
  b.area_prefixes = {"620102", "620102001", "620103001"};
  b.subject_keys = {"household/y", "household/x"};
  EXPECT_EQ(ScopeDigest(a), ScopeDigest(b));
  EXPECT_EQ(ScopeDigest(a).size(), 32u);
  b.subject_keys.insert("household/z");
  EXPECT_NE(ScopeDigest(a), ScopeDigest(b));
  EXPECT_NE(ScopeDigest(a, "deployment-1"), ScopeDigest(a, "deployment-2"));
  Scope all;
  all.all = true;
  Scope all_with_parts = all;
  all_with_parts.area_prefixes = {"62"};
  EXPECT_EQ(ScopeDigest(all), ScopeDigest(all_with_parts));
}

TEST(ScopeTest, ContainsByAreaOrByNamedSubject) {
  Scope scope;
  scope.area_prefixes = {"620102001"};
  scope.subject_keys = {"household/h1"};
  EXPECT_TRUE(Contains(scope, "620102001007", "household/other"));
  EXPECT_FALSE(Contains(scope, "620102002007", "household/other"));
  EXPECT_TRUE(Contains(scope, "620102002007", "household/h1"));
  EXPECT_FALSE(Contains(scope, "", "user/u1"));
  EXPECT_TRUE(CoversPrefix(scope, "620102001001"));
  EXPECT_FALSE(CoversPrefix(scope, "620102"));
  EXPECT_FALSE(CoversPrefix(scope, ""));
  Scope all;
  all.all = true;
  EXPECT_TRUE(Contains(all, "", "user/u1"));
  EXPECT_TRUE(CoversPrefix(all, ""));
}

TEST(SubjectKeyTest, ParsesWhatSubjectKeyMakes) {
  v1::SubjectRef ref;
  ref.set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
  ref.set_id("abc");
  const std::optional<v1::SubjectRef> parsed = ParseSubjectKey(SubjectKey(ref));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->kind(), v1::SUBJECT_KIND_HOUSEHOLD);
  EXPECT_EQ(parsed->id(), "abc");
  EXPECT_FALSE(ParseSubjectKey("nonsense/abc").has_value());
  EXPECT_FALSE(ParseSubjectKey("household/").has_value());
  EXPECT_FALSE(ParseSubjectKey("household").has_value());
}

TEST(HybridClockTest, NeverGoesBackAndOrdersAfterWhatItObserved) {
  absl::Time now = absl::FromUnixMillis(1'700'000'000'000);
  HybridClock clock([&now] { return now; });
  const uint64_t a = clock.Tick();
  const uint64_t b = clock.Tick();
  EXPECT_EQ(HlcMillis(a), 1'700'000'000'000u);
  EXPECT_GT(b, a);
  now -= absl::Seconds(10);  // The wall clock steps back.
  EXPECT_GT(clock.Tick(), b);
  const uint64_t seen = HlcOf(1'800'000'000'000, 7);
  clock.Observe(seen);
  EXPECT_GT(clock.Tick(), seen);
  EXPECT_EQ(HlcCounter(HlcOf(5, 9)), 9);
}

}  // namespace
}  // namespace fieldsync::sync
