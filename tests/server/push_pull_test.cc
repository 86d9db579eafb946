// SyncService.Push and Pull end to end: a real server on port 0, real gRPC
// channels, a real RocksDB store, devices with real Ed25519 keys.
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/time.h"
#include "gtest/gtest.h"
#include "server/sync_service.h"
#include "sync/event_codec.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

using PushPullTest = SyncWorld;

std::set<std::string> HouseholdIds(const std::vector<v1::PullResponse>& pages) {
  std::set<std::string> ids;
  for (const v1::PullResponse& page : pages) {
    for (const v1::Household& household : page.snapshot().households()) ids.insert(household.id());
  }
  return ids;
}

std::vector<sync::LoggedEvent> Events(const std::vector<v1::PullResponse>& pages) {
  std::vector<sync::LoggedEvent> events;
  for (const v1::PullResponse& page : pages) {
    for (const sync::LoggedEvent& event : Decoded(page.events())) events.push_back(event);
  }
  return events;
}

TEST_F(PushPullTest, PushAnswersOneResultPerEvent) {
  const uint64_t head = Head();
  v1::Event visit = phone().Visit(kH1, kV1);
  v1::Event outside = phone().Visit(kH3, kV2);  // Not the cadre's household.
  v1::PushResponse first = MustPush(tablet(), {tablet().SetField(kH1, kV1, "phone", Text("1"), 0)});
  (void)first;
  v1::PushResponse response;
  ASSERT_TRUE(Push(phone(), {visit, outside}, &response).ok());
  ASSERT_EQ(response.results_size(), 2);
  ASSERT_TRUE(response.results(0).has_accepted()) << response.results(0).ShortDebugString();
  EXPECT_EQ(response.results(0).accepted().offset(), head + 2);
  ASSERT_TRUE(response.results(1).has_rejected());
  EXPECT_EQ(response.results(1).rejected().code(), v1::REJECTION_CODE_OUT_OF_SCOPE);
  // The rejection still advanced the sequence: the queue is not blocked.
  EXPECT_EQ(response.next_expected_seq().at(phone().id()), 3u);

  // A replay is a duplicate of the original offset.
  v1::PushResponse again;
  ASSERT_TRUE(Push(phone(), {visit}, &again).ok());
  ASSERT_TRUE(again.results(0).has_duplicate());
  EXPECT_EQ(again.results(0).duplicate().original_offset(), head + 2);

  // County staff edit the same field from the version they saw (0): a
  // concurrent edit, recorded as a conflict.
  v1::PushResponse conflict;
  ASSERT_TRUE(Push(county(), {county().SetField(kH1, kV1, "phone", Text("2"), 0)}, &conflict).ok());
  ASSERT_TRUE(conflict.results(0).has_conflict_recorded()) << conflict.ShortDebugString();
  EXPECT_EQ(conflict.results(0).conflict_recorded().conflict_ids_size(), 1);
  EXPECT_EQ(base::FromTimestamp(conflict.server_time()), harness().clock().Now());
}

TEST_F(PushPullTest, EmptyPushAnswersTheNextExpectedSequence) {
  MustPush(phone(), {phone().Visit(kH1, kV1), phone().Visit(kH1, kV1)});
  v1::PushResponse response;
  ASSERT_TRUE(Push(phone(), {}, &response).ok());
  EXPECT_EQ(response.results_size(), 0);
  EXPECT_EQ(response.next_expected_seq().at(phone().id()), 3u);
}

TEST_F(PushPullTest, AReplayIsADuplicateAcrossARestart) {
  v1::Event visit = phone().Visit(kH1, kV1);
  v1::PushResponse first = MustPush(phone(), {visit});
  const uint64_t offset = first.results(0).accepted().offset();
  Restart();
  const uint64_t head = Head();
  v1::PushResponse again;
  ASSERT_TRUE(Push(phone(), {visit}, &again).ok());
  ASSERT_TRUE(again.results(0).has_duplicate()) << again.ShortDebugString();
  EXPECT_EQ(again.results(0).duplicate().original_offset(), offset);
  EXPECT_EQ(Head(), head);
  // And the device continues where it was.
  v1::PushResponse next = MustPush(phone(), {phone().Visit(kH1, kV1)});
  EXPECT_EQ(next.next_expected_seq().at(phone().id()), 3u);
}

TEST_F(PushPullTest, ASequenceGapHoldsEachEventWithTheNextExpectedNumber) {
  MustPush(phone(), {phone().Visit(kH1, kV1)});
  phone().set_next_seq(5);  // 2, 3 and 4 never arrived.
  const uint64_t head = Head();
  v1::PushResponse response;
  grpc::Status status =
      Push(phone(), {phone().Visit(kH1, kV1), phone().Visit(kH1, kV1)}, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), 2);
  for (const v1::PushResult& result : response.results()) {
    ASSERT_TRUE(result.has_held()) << result.ShortDebugString();
    EXPECT_EQ(result.held().expected_device_seq(), 2u);
    EXPECT_TRUE(absl::StrContains(result.held().reason(), "next expected is 2"))
        << result.held().reason();
  }
  EXPECT_EQ(response.next_expected_seq().at(phone().id()), 2u);
  EXPECT_EQ(Head(), head);  // Nothing of the batch was written.
}

TEST_F(PushPullTest, FirstPullIsASnapshotThenPullsAreIncremental) {
  std::vector<v1::PullResponse> first = PullAll(tablet().token(), {});
  ASSERT_FALSE(first.empty());
  EXPECT_FALSE(first.front().has_reset());
  EXPECT_EQ(HouseholdIds(first), (std::set<std::string>{kH1, kH2, kH3}));  // Not kH4.
  const v1::Checkpoint cursor = first.back().checkpoint();
  EXPECT_EQ(cursor.offset(), Head());

  v1::Event visit = phone().Visit(kH1, kV1);
  MustPush(phone(), {visit});
  MustPush(county_b(), {county_b().Visit(kH4, kV4)});  // Outside the township.
  std::vector<v1::PullResponse> next = PullAll(tablet().token(), cursor);
  std::vector<sync::LoggedEvent> events = Events(next);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event().event_id(), visit.event_id());
  EXPECT_EQ(events[0].actor(), "cadre1");
  EXPECT_TRUE(HouseholdIds(next).empty());
  EXPECT_EQ(next.back().checkpoint().offset(), Head());

  // Nothing new: nothing more.
  std::vector<v1::PullResponse> idle = PullAll(tablet().token(), next.back().checkpoint());
  EXPECT_TRUE(Events(idle).empty());
}

TEST_F(PushPullTest, AFutureOrUnknownCursorAnswersResetWithASnapshot) {
  std::vector<v1::PullResponse> first = PullAll(tablet().token(), {});
  v1::Checkpoint future = first.back().checkpoint();
  future.set_offset(Head() + 100);  // E.g. a server restored from an older backup.
  v1::PullRequest request;
  *request.mutable_cursor() = future;
  v1::PullResponse response;
  ASSERT_TRUE(Pull(tablet().token(), request, &response).ok());
  EXPECT_EQ(response.reset().reason(), v1::RESET_REASON_FUTURE);
  EXPECT_EQ(response.reset().snapshot_offset(), Head());
  EXPECT_EQ(HouseholdIds({response}), (std::set<std::string>{kH1, kH2, kH3}));

  request.mutable_cursor()->set_scope_digest("not a digest");
  ASSERT_TRUE(Pull(tablet().token(), request, &response).ok());
  EXPECT_EQ(response.reset().reason(), v1::RESET_REASON_UNKNOWN_CURSOR);
}

TEST_F(PushPullTest, ALinkThatStartsOrEndsChangesWhatTheDevicePulls) {
  std::vector<v1::PullResponse> first = PullAll(phone().token(), {});
  EXPECT_EQ(HouseholdIds(first), (std::set<std::string>{kH1}));
  v1::Checkpoint cursor = first.back().checkpoint();

  ASSERT_TRUE(
      StartLink("L-h2", "cadre1", v1::SUBJECT_KIND_HOUSEHOLD, kH2, v1::LINK_ROLE_HOUSEHOLD_HELPER)
          .ok());
  std::vector<v1::PullResponse> added = PullAll(phone().token(), cursor);
  EXPECT_FALSE(added.front().has_reset());
  EXPECT_EQ(HouseholdIds(added), (std::set<std::string>{kH2}));
  EXPECT_TRUE(added.front().removed_from_scope().empty());
  cursor = added.back().checkpoint();

  ASSERT_TRUE(EndLink("L-h1").ok());
  std::vector<v1::PullResponse> removed = PullAll(phone().token(), cursor);
  EXPECT_FALSE(removed.front().has_reset());
  ASSERT_EQ(removed.front().removed_from_scope_size(), 1);
  EXPECT_EQ(removed.front().removed_from_scope(0).id(), kH1);
  EXPECT_TRUE(HouseholdIds(removed).empty());
}

TEST_F(PushPullTest, ALinkToAVillageBringsItsHouseholdsAndTheVillage) {
  std::vector<v1::PullResponse> first = PullAll(phone().token(), {});
  ASSERT_TRUE(
      StartLink("L-v2", "cadre1", v1::SUBJECT_KIND_VILLAGE, kV2, v1::LINK_ROLE_VILLAGE_CADRE).ok());
  std::vector<v1::PullResponse> added = PullAll(phone().token(), first.back().checkpoint());
  EXPECT_EQ(HouseholdIds(added), (std::set<std::string>{kH3}));
  // The link itself reaches the device (the village is in its subject index
  // even though no pushed event ever named it).
  bool village_link = false;
  for (const v1::PullResponse& page : added) {
    for (const v1::Link& link : page.snapshot().links()) {
      village_link = village_link || link.id() == "L-v2";
    }
    for (const sync::LoggedEvent& event : Decoded(page.events())) {
      village_link = village_link || (event.event().has_link_started() &&
                                      event.event().link_started().link_id() == "L-v2");
    }
  }
  EXPECT_TRUE(village_link);

  // A first sync from scratch finds the village through the subject index
  // (AdminService's link is indexed like a pushed event): its link is in the
  // snapshot.
  std::set<std::string> links;
  for (const v1::PullResponse& page : PullAll(phone().token(), {})) {
    for (const v1::Link& link : page.snapshot().links()) links.insert(link.id());
  }
  EXPECT_TRUE(links.count("L-v2")) << "links in the snapshot: " << links.size();
  EXPECT_TRUE(links.count("L-h1"));
}

TEST_F(PushPullTest, ATabletRelaysAPhonesSignedEventsAttributedToThePhone) {
  v1::Event visit = phone().Visit(kH1, kV1);
  v1::PushResponse relayed = MustPush(tablet(), {visit});
  const uint64_t offset = relayed.results(0).accepted().offset();
  EXPECT_EQ(relayed.next_expected_seq().at(phone().id()), 2u);
  std::vector<sync::LoggedEvent> log = harness().ReadLog();
  const sync::LoggedEvent& stored = log.back();
  EXPECT_EQ(stored.offset(), offset);
  EXPECT_EQ(stored.event().device_id(), phone().id());
  EXPECT_EQ(stored.actor(), "cadre1");
  EXPECT_EQ(stored.relayed_by(), tablet().id());
  // The phone pushes it too, later: one copy.
  v1::PushResponse direct;
  ASSERT_TRUE(Push(phone(), {visit}, &direct).ok());
  EXPECT_EQ(direct.results(0).duplicate().original_offset(), offset);

  // A relayed event must lie in its signer's scope as well: kH2 is the
  // township's, not the cadre's.
  v1::PushResponse laundered;
  ASSERT_TRUE(Push(tablet(), {phone().Visit(kH2, kV1)}, &laundered).ok());
  EXPECT_EQ(OutcomeOf(laundered.results(0)), "REJECTION_CODE_OUT_OF_SCOPE");
}

TEST_F(PushPullTest, HqPullsEverythingAndCannotPush) {
  std::vector<v1::PullResponse> pages = PullAll(hq_token(), {});
  EXPECT_EQ(HouseholdIds(pages), (std::set<std::string>{kH1, kH2, kH3, kH4}));
  v1::PushRequest request;
  v1::PushResponse response;
  auto context = ServiceHarness::Context(hq_token());
  EXPECT_EQ(sync().Push(context.get(), request, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

}  // namespace
}  // namespace fieldsync::testing
