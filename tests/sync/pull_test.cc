// SyncEngine::Pull: first-sync snapshots, incremental pulls bounded by count
// and bytes, RESET for unusable cursors, and scope changes.
#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "sync/event_codec.h"
#include "tests/sync/sync_test_support.h"

namespace fieldsync::test {
namespace {

constexpr char kVillageA[] = "620102001001";
constexpr char kVillageB[] = "620102001002";
constexpr char kVillageC[] = "620102002001";  // Another township.

sync::Scope AreaScope(std::vector<std::string> prefixes) {
  sync::Scope scope;
  scope.area_prefixes = std::move(prefixes);
  return scope;
}

sync::Scope SubjectScope(std::set<std::string> keys) {
  sync::Scope scope;
  scope.subject_keys = std::move(keys);
  return scope;
}

std::set<std::string> HouseholdIds(const v1::Snapshot& snapshot) {
  std::set<std::string> ids;
  for (const v1::Household& h : snapshot.households()) ids.insert(h.id());
  return ids;
}

class PullTest : public ::testing::Test {
 protected:
  explicit PullTest(sync::SyncOptions options = {})
      : env_(options), phone_(env_.AddDevice("phone-1", "cadre-1", v1::ROLE_CADRE)) {}

  std::string Register(const std::string& village) {
    const std::string id = NewUuid();
    EXPECT_OK(env_.Push(phone_, {phone_.Register(id, village, absl::StrCat("P", ++n_))}).status());
    return id;
  }

  v1::PullResponse Pull(const sync::Scope& scope, const v1::Checkpoint* cursor = nullptr,
                        uint32_t max_events = 0, uint64_t max_bytes = 0) {
    v1::PullRequest request;
    if (cursor != nullptr) *request.mutable_cursor() = *cursor;
    request.set_max_events(max_events);
    request.set_max_bytes(max_bytes);
    absl::StatusOr<v1::PullResponse> response = env_.engine().Pull(scope, request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : v1::PullResponse();
  }

  // Pulls until `more` is false; returns every event id seen, in order.
  std::vector<std::string> Drain(const sync::Scope& scope, v1::Checkpoint* cursor,
                                 uint32_t max_events = 0, uint64_t max_bytes = 0,
                                 int* pages = nullptr) {
    std::vector<std::string> ids;
    for (int i = 0; i < 1000; ++i) {
      v1::PullResponse r = Pull(scope, cursor, max_events, max_bytes);
      EXPECT_FALSE(r.has_reset());
      for (const sync::LoggedEvent& e : Decoded(r.events())) ids.push_back(e.event().event_id());
      *cursor = r.checkpoint();
      if (pages != nullptr) ++*pages;
      if (!r.more()) return ids;
    }
    ADD_FAILURE() << "pull never finished";
    return ids;
  }

  Env env_;
  SimDevice& phone_;
  int n_ = 0;
};

TEST_F(PullTest, AFirstSyncIsASnapshotOfTheCurrentStateInScope) {
  const std::string a1 = Register(kVillageA);
  const std::string a2 = Register(kVillageA);
  const std::string c1 = Register(kVillageC);
  const std::string member = NewUuid();
  ASSERT_OK(env_.Push(phone_, {phone_.AddMember(a1, kVillageA, member, "王五"),
                               phone_.RevisePlan(a1, kVillageA, 2024, 0, {"i1"}),
                               phone_.Visit(HouseholdRef(a2), kVillageA)})
                .status());
  // An open conflict on a1.
  SimDevice& other = env_.AddDevice("phone-2", "cadre-2", v1::ROLE_CADRE);
  ASSERT_OK(env_.Push(phone_, {phone_.SetField(a1, kVillageA, "phone", Str("1"), 0)}).status());
  ASSERT_OK(env_.Push(other, {other.SetField(a1, kVillageA, "phone", Str("2"), 0)}).status());

  v1::PullResponse r = Pull(AreaScope({"620102001"}));
  EXPECT_FALSE(r.has_reset()) << "a first sync is no reset";
  EXPECT_EQ(HouseholdIds(r.snapshot()), (std::set<std::string>{a1, a2}));
  ASSERT_EQ(r.snapshot().members_size(), 1);
  EXPECT_EQ(r.snapshot().members(0).id(), member);
  EXPECT_EQ(r.snapshot().plans_size(), 1);
  ASSERT_EQ(r.snapshot().conflicts_size(), 1);
  EXPECT_TRUE(r.snapshot().conflicts(0).open());
  EXPECT_EQ(r.events_size(), 0) << "the snapshot is current; no history";
  EXPECT_EQ(r.checkpoint().offset(), env_.store().Head());
  EXPECT_EQ(r.checkpoint().scope_digest().size(), 32u);
  EXPECT_TRUE(r.checkpoint().snapshot_token().empty());
  EXPECT_FALSE(r.more());
  EXPECT_EQ(r.head_offset(), env_.store().Head());
  (void)c1;
}

TEST_F(PullTest, AnIncrementalPullReturnsOnlyNewEventsInScope) {
  const std::string a1 = Register(kVillageA);
  const std::string c1 = Register(kVillageC);
  const sync::Scope scope = AreaScope({kVillageA});
  v1::Checkpoint cursor = Pull(scope).checkpoint();

  v1::Event va = phone_.Visit(HouseholdRef(a1), kVillageA);
  v1::Event vc = phone_.Visit(HouseholdRef(c1), kVillageC);
  v1::Event fa = phone_.SetField(a1, kVillageA, "phone", Str("5"), 0);
  ASSERT_OK(env_.Push(phone_, {va, vc, fa}).status());
  v1::PullResponse r = Pull(scope, &cursor);
  ASSERT_EQ(r.events_size(), 2);
  EXPECT_EQ(Decoded(r.events(0)).event().event_id(), va.event_id());
  EXPECT_EQ(Decoded(r.events(1)).event().event_id(), fa.event_id());
  EXPECT_EQ(Decoded(r.events(1)).writes()[0].field(), "phone")
      << "clients replay writes without merge logic";
  EXPECT_FALSE(r.events(0).hash().empty());
  EXPECT_EQ(r.checkpoint().offset(), env_.store().Head());
  EXPECT_FALSE(r.more());

  // Nothing new: an empty answer at the same place.
  r = Pull(scope, &r.checkpoint());
  EXPECT_EQ(r.events_size(), 0);
  EXPECT_EQ(r.checkpoint().offset(), env_.store().Head());
}

TEST_F(PullTest, PagesAreBoundedByCountAndBytesAndLoseNothing) {
  const std::string a1 = Register(kVillageA);
  const sync::Scope scope = AreaScope({"620102"});
  v1::Checkpoint start = Pull(scope).checkpoint();
  std::vector<std::string> pushed;
  for (int batch = 0; batch < 5; ++batch) {
    std::vector<v1::Event> events;
    for (int i = 0; i < 10; ++i) {
      events.push_back(phone_.Visit(HouseholdRef(a1), kVillageA));
      pushed.push_back(events.back().event_id());
    }
    ASSERT_OK(env_.Push(phone_, events).status());
  }
  v1::Checkpoint cursor = start;
  int pages = 0;
  EXPECT_EQ(Drain(scope, &cursor, 7, 0, &pages), pushed);
  EXPECT_EQ(pages, 8);  // 7 per page: 50 events in 8 pages.

  // A byte bound of about two events per page.
  cursor = start;
  v1::PullResponse one = Pull(scope, &cursor, 1);
  const uint64_t event_bytes = one.events(0).ByteSizeLong();
  pages = 0;
  EXPECT_EQ(Drain(scope, &cursor, 0, 2 * event_bytes + 10, &pages), pushed);
  EXPECT_GE(pages, 25);
  // A bound smaller than one event still makes progress.
  cursor = start;
  EXPECT_EQ(Drain(scope, &cursor, 0, 10), pushed);
}

TEST_F(PullTest, OmittingProofsLeavesHashesOutAndTheRecordAsStored) {
  const std::string a1 = Register(kVillageA);
  v1::PullRequest request;
  request.set_omit_proofs(true);
  *request.mutable_cursor() = Pull(AreaScope({kVillageA})).checkpoint();
  ASSERT_OK(env_.Push(phone_, {phone_.Visit(HouseholdRef(a1), kVillageA)}).status());
  ASSERT_OK_AND_ASSIGN(v1::PullResponse r, env_.engine().Pull(AreaScope({kVillageA}), request));
  ASSERT_EQ(r.events_size(), 1);
  // The record is the stored bytes, signature included: never re-encoded.
  EXPECT_EQ(Decoded(r.events(0)).signature().size(), 64u);
  EXPECT_TRUE(r.events(0).hash().empty());
  EXPECT_TRUE(r.events(0).prev_hash().empty());
}

TEST_F(PullTest, RejectionMarkersNeverReachAPull) {
  const std::string a1 = Register(kVillageA);
  const sync::Scope scope = Env::AllScope();
  v1::Checkpoint cursor = Pull(scope).checkpoint();
  // A merge-time rejection (household in another village) leaves a marker.
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome outcome,
                       env_.Push(phone_, {phone_.Visit(HouseholdRef(a1), kVillageB),
                                          phone_.Visit(HouseholdRef(a1), kVillageA)}));
  ASSERT_TRUE(outcome.response.results(0).has_rejected());
  v1::PullResponse r = Pull(scope, &cursor);
  ASSERT_EQ(r.events_size(), 1);
  EXPECT_FALSE(Decoded(r.events(0)).is_marker());
}

TEST_F(PullTest, ANamedSubjectScopeSeesItsSubjectsWhereverTheyLive) {
  const std::string a1 = Register(kVillageA);
  const std::string c1 = Register(kVillageC);
  const std::string c2 = Register(kVillageC);
  const sync::Scope scope = SubjectScope({"household/" + a1, "household/" + c1});
  v1::PullResponse r = Pull(scope);
  EXPECT_EQ(HouseholdIds(r.snapshot()), (std::set<std::string>{a1, c1}));
  v1::Checkpoint cursor = r.checkpoint();
  v1::Event v1e = phone_.Visit(HouseholdRef(c1), kVillageC);
  ASSERT_OK(env_.Push(phone_, {v1e, phone_.Visit(HouseholdRef(c2), kVillageC)}).status());
  EXPECT_EQ(Drain(scope, &cursor), std::vector<std::string>{v1e.event_id()});
}

class SnapshotPagingTest : public PullTest {
 protected:
  SnapshotPagingTest()
      : PullTest([] {
          sync::SyncOptions options;
          options.snapshot_page_subjects = 3;
          return options;
        }()) {}
};

TEST_F(SnapshotPagingTest, ALargeSnapshotIsPagedWithATokenAndThenTheLogFollows) {
  std::set<std::string> all;
  for (int i = 0; i < 10; ++i) all.insert(Register(i % 2 ? kVillageA : kVillageB));
  const sync::Scope scope = AreaScope({"620102001"});
  v1::PullResponse r = Pull(scope);
  const uint64_t snapshot_offset = env_.store().Head();
  std::set<std::string> seen = HouseholdIds(r.snapshot());
  EXPECT_EQ(seen.size(), 3u);
  EXPECT_TRUE(r.more());
  EXPECT_FALSE(r.checkpoint().snapshot_token().empty());
  // Something happens while the device pages.
  const std::string late = *all.begin();
  v1::Event visit =
      phone_.Visit(HouseholdRef(late), ReadHousehold(env_.store(), late)->village_code());
  ASSERT_OK(env_.Push(phone_, {visit}).status());
  std::vector<std::string> events;
  int pages = 1;
  while (r.more()) {
    v1::Checkpoint cursor = r.checkpoint();
    r = Pull(scope, &cursor);
    ++pages;
    ASSERT_FALSE(r.has_reset());
    for (const v1::Household& h : r.snapshot().households()) {
      EXPECT_TRUE(seen.insert(h.id()).second) << "no household twice";
    }
    for (const sync::LoggedEvent& e : Decoded(r.events())) events.push_back(e.event().event_id());
  }
  EXPECT_EQ(seen, all);
  EXPECT_EQ(pages, 4);
  EXPECT_TRUE(r.checkpoint().snapshot_token().empty());
  EXPECT_EQ(r.checkpoint().offset(), env_.store().Head());
  // The visit made during paging comes as an event after the snapshot offset.
  EXPECT_EQ(events, std::vector<std::string>{visit.event_id()});
  EXPECT_GT(env_.store().Head(), snapshot_offset);
}

TEST_F(PullTest, UnknownFutureAndCompactedCursorsAnswerResetWithASnapshot) {
  const std::string a1 = Register(kVillageA);
  const sync::Scope scope = AreaScope({kVillageA});
  v1::Checkpoint good = Pull(scope).checkpoint();

  v1::Checkpoint unknown = good;
  unknown.set_scope_digest("short");
  v1::PullResponse r = Pull(scope, &unknown);
  EXPECT_EQ(r.reset().reason(), v1::RESET_REASON_UNKNOWN_CURSOR);
  EXPECT_EQ(r.reset().snapshot_offset(), env_.store().Head());
  EXPECT_EQ(HouseholdIds(r.snapshot()), std::set<std::string>{a1});

  v1::Checkpoint garbage = good;
  garbage.set_snapshot_token("not a token");
  EXPECT_EQ(Pull(scope, &garbage).reset().reason(), v1::RESET_REASON_UNKNOWN_CURSOR);

  v1::Checkpoint future = good;
  future.set_offset(env_.store().Head() + 100);
  r = Pull(scope, &future);
  EXPECT_EQ(r.reset().reason(), v1::RESET_REASON_FUTURE);
  EXPECT_EQ(r.checkpoint().offset(), env_.store().Head());
  EXPECT_EQ(HouseholdIds(r.snapshot()), std::set<std::string>{a1});

  // After a reset the new checkpoint works incrementally.
  v1::Checkpoint after = r.checkpoint();
  ASSERT_OK(env_.Push(phone_, {phone_.Visit(HouseholdRef(a1), kVillageA)}).status());
  EXPECT_EQ(Drain(scope, &after).size(), 1u);
}

TEST(PullCompactionTest, ACursorOlderThanTheRetainedLogAnswersCompacted) {
  sync::SyncOptions options;
  options.oldest_incremental_offset = 3;
  Env env(options);
  SimDevice& phone = env.AddDevice("p", "u", v1::ROLE_CADRE);
  const std::string h = NewUuid();
  ASSERT_OK(
      env.Push(phone, {phone.Register(h, kVillageA, "X1"), phone.Visit(HouseholdRef(h), kVillageA),
                       phone.Visit(HouseholdRef(h), kVillageA)})
          .status());
  v1::PullRequest request;
  request.mutable_cursor()->set_offset(1);
  request.mutable_cursor()->set_scope_digest(
      sync::ScopeDigest(AreaScope({kVillageA}), options.scope_digest_salt));
  ASSERT_OK_AND_ASSIGN(v1::PullResponse r, env.engine().Pull(AreaScope({kVillageA}), request));
  EXPECT_EQ(r.reset().reason(), v1::RESET_REASON_COMPACTED);
}

TEST_F(PullTest, AScopeChangeSendsTheAdditionsAndTheRemovals) {
  const std::string h1 = Register(kVillageA);
  const std::string h2 = Register(kVillageC);
  const std::string h3 = Register(kVillageC);
  const sync::Scope before = SubjectScope({"household/" + h1, "household/" + h2});
  v1::Checkpoint cursor = Pull(before).checkpoint();

  // A link ends and another starts: h1 leaves the scope, h3 enters it.
  const sync::Scope after = SubjectScope({"household/" + h2, "household/" + h3});
  v1::Event visit3 = phone_.Visit(HouseholdRef(h3), kVillageC);
  v1::Event visit2 = phone_.Visit(HouseholdRef(h2), kVillageC);
  ASSERT_OK(env_.Push(phone_, {visit3, visit2}).status());
  v1::PullResponse r = Pull(after, &cursor);
  EXPECT_FALSE(r.has_reset());
  ASSERT_EQ(r.removed_from_scope_size(), 1);
  EXPECT_EQ(r.removed_from_scope(0).id(), h1);
  EXPECT_EQ(HouseholdIds(r.snapshot()), std::set<std::string>{h3});
  // The events after the cursor in the new scope follow (h3's may already be
  // reflected by its snapshot: the client skips those by last_offset).
  std::vector<std::string> events;
  for (const sync::LoggedEvent& e : Decoded(r.events())) events.push_back(e.event().event_id());
  EXPECT_EQ(events, (std::vector<std::string>{visit3.event_id(), visit2.event_id()}));
  EXPECT_EQ(r.checkpoint().scope_digest(), sync::ScopeDigest(after));
  EXPECT_FALSE(r.more());

  // From now on an ordinary incremental pull.
  v1::Checkpoint next = r.checkpoint();
  EXPECT_TRUE(Drain(after, &next).empty());
}

TEST_F(PullTest, AScopeChangeTheServerCannotDiffAnswersReset) {
  const std::string h1 = Register(kVillageA);
  const sync::Scope before = AreaScope({kVillageA});
  v1::Checkpoint cursor = Pull(before).checkpoint();
  env_.Reopen();  // The engine forgets the scopes it has seen.
  v1::PullResponse r = Pull(AreaScope({kVillageB}), &cursor);
  EXPECT_EQ(r.reset().reason(), v1::RESET_REASON_SCOPE_CHANGED);
  EXPECT_EQ(r.snapshot().households_size(), 0);
  (void)h1;
}

TEST_F(PullTest, AWiderAreaScopeAddsTheNewVillagesHouseholds) {
  const std::string a = Register(kVillageA);
  const std::string b = Register(kVillageB);
  v1::Checkpoint cursor = Pull(AreaScope({kVillageA})).checkpoint();
  v1::PullResponse r = Pull(AreaScope({"620102001"}), &cursor);
  EXPECT_EQ(r.removed_from_scope_size(), 0);
  EXPECT_EQ(HouseholdIds(r.snapshot()), std::set<std::string>{b});
  // And narrowing removes them again.
  cursor = r.checkpoint();
  r = Pull(AreaScope({kVillageA}), &cursor);
  ASSERT_EQ(r.removed_from_scope_size(), 1);
  EXPECT_EQ(r.removed_from_scope(0).id(), b);
  (void)a;
}

TEST_F(PullTest, ATownshipOfTwoThousandHouseholdsPullsCompletely) {
  // Two thousand households in ten villages of one township.
  for (int batch = 0; batch < 20; ++batch) {
    std::vector<v1::Event> events;
    for (int i = 0; i < 100; ++i) {
      const std::string village =
          absl::StrCat("620102001", absl::Dec(100 + i % 10, absl::kZeroPad3));
      events.push_back(phone_.Register(NewUuid(), village, absl::StrCat("T", batch, "-", i)));
    }
    ASSERT_OK(env_.Push(phone_, events).status());
  }
  const sync::Scope township = AreaScope({"620102001"});
  const absl::Time start = absl::Now();
  v1::PullResponse r = Pull(township);
  size_t households = r.snapshot().households_size();
  int pages = 1;
  while (r.more()) {
    v1::Checkpoint cursor = r.checkpoint();
    r = Pull(township, &cursor);
    households += r.snapshot().households_size();
    ++pages;
  }
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(households, 2000u);
  // Figures for the record, not assertions (no wall-clock assertions).
  ::testing::Test::RecordProperty("first_pull_ms", absl::StrCat(absl::ToInt64Milliseconds(took)));
  ::testing::Test::RecordProperty("pages", pages);
  std::printf("first pull of 2000 households: %lld ms in %d pages\n",
              static_cast<long long>(absl::ToInt64Milliseconds(took)), pages);
}

}  // namespace
}  // namespace fieldsync::test
