// One write path: the events the server makes (AdminService's changes) are
// appended through the sync engine like pushes, against a real server on
// port 0. They order after every HLC the engine adopted, the node is
// sequenced in the engine's high-water marks like any device, every event's
// subject is indexed, and a corrupt high-water mark is DATA_LOSS for pushes
// and admin changes alike, never a silent restart of sequencing.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "base/big_endian.h"
#include "gtest/gtest.h"
#include "sync/event_codec.h"
#include "sync/hlc.h"
#include "sync/sync_keys.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

class WritePathTest : public SyncWorld {
 protected:
  // The node device: the signer of the first event of every store.
  std::string NodeId() {
    std::vector<sync::LoggedEvent> log = harness().ReadLog();
    EXPECT_FALSE(log.empty());
    return log.empty() ? "" : log.front().event().device_id();
  }

  // Overwrites device `device_id`'s high-water mark (sync/dev/<id>) with
  // three bytes, as a damaged store would hold it, through the store's own
  // API: an append whose record is a body-less marker (readers skip it).
  void CorruptHighWaterMark(const std::string& device_id) {
    v1::StoredEvent marker;  // Without event bytes: readers skip it.
    marker.set_actor("test");
    storage::AppendEntry entry;
    entry.event_id = absl::StrCat("test/corrupt/", RandomUuid());
    entry.payload = sync::EncodePayload(marker);
    entry.prepare = [device_id](storage::CommitContext& context) {
      context.Put(sync::sync_keys::Device(device_id), "bad");
      return absl::OkStatus();
    };
    std::vector<storage::AppendEntry> entries;
    entries.push_back(std::move(entry));
    ASSERT_TRUE(harness().store().Append(std::move(entries)).ok());
  }

  grpc::Status UpsertAnalyst(const std::string& id) {
    v1::UpsertUserRequest request;
    request.mutable_user()->set_id(id);
    request.mutable_user()->set_name(id);
    request.mutable_user()->set_role(v1::ROLE_HQ_ANALYST);
    v1::UpsertUserResponse response;
    auto context = ServiceHarness::Context(admin_token());
    return admin().UpsertUser(context.get(), request, &response);
  }
};

TEST_F(WritePathTest, AnAdminChangeOrdersAfterEveryHlcTheEngineAdopted) {
  // A phone whose clock runs two minutes ahead: within the skew the engine
  // adopts, so its HLC is ahead of the server's wall clock.
  v1::Event visit = phone().Visit(kH1, kV1);
  const uint64_t ahead = sync::HlcAt(harness().clock().Now() + absl::Minutes(2));
  visit.set_hlc(ahead);
  phone().Sign(visit);
  v1::PushResponse pushed = MustPush(phone(), {visit});
  ASSERT_TRUE(pushed.results(0).has_accepted()) << pushed.ShortDebugString();

  ASSERT_TRUE(UpsertAnalyst("cadre-late").ok());
  std::vector<sync::LoggedEvent> log = harness().ReadLog();
  ASSERT_TRUE(log.back().event().has_user_upserted());
  // One clock: the server's event comes after what the engine has seen.
  EXPECT_GT(log.back().event().hlc(), ahead);
  EXPECT_GT(log.back().adopted_hlc(), ahead);
}

TEST_F(WritePathTest, TheNodeIsSequencedInTheEnginesHighWaterMarks) {
  ASSERT_TRUE(UpsertAnalyst("cadre-seq").ok());
  const std::string node = NodeId();
  uint64_t last = 0;
  for (const sync::LoggedEvent& stored : harness().ReadLog()) {
    if (stored.event().device_id() == node) last = stored.event().device_seq();
  }
  ASSERT_GT(last, 1u);
  auto mark = harness().store().GetProjection(sync::sync_keys::Device(node));
  ASSERT_TRUE(mark.ok()) << mark.status();
  ASSERT_TRUE(mark->has_value()) << "no sync/dev/ mark for the node " << node;
  EXPECT_EQ(base::ParseBe64(**mark).value_or(0), last);
}

TEST_F(WritePathTest, EveryServerEventsSubjectIsIndexed) {
  v1::UpsertUnitRequest request;
  request.mutable_unit()->set_id("unit-indexed");
  request.mutable_unit()->set_name("鄉扶貧辦");
  request.mutable_unit()->set_area_code(kV1);
  v1::UpsertUnitResponse response;
  auto context = ServiceHarness::Context(admin_token());
  ASSERT_TRUE(admin().UpsertUnit(context.get(), request, &response).ok());
  ASSERT_TRUE(UpsertAnalyst("cadre-indexed").ok());

  auto unit = harness().store().GetProjection(sync::sync_keys::Subject("unit/unit-indexed"));
  ASSERT_TRUE(unit.ok());
  ASSERT_TRUE(unit->has_value()) << "the unit's subject is not indexed";
  EXPECT_EQ(**unit, kV1);
  auto by_area = harness().store().GetProjection(sync::sync_keys::Area(kV1, "unit/unit-indexed"));
  ASSERT_TRUE(by_area.ok());
  EXPECT_TRUE(by_area->has_value());
  auto user = harness().store().GetProjection(sync::sync_keys::Subject("user/cadre-indexed"));
  ASSERT_TRUE(user.ok());
  EXPECT_TRUE(user->has_value()) << "the user's subject is not indexed";
}

TEST_F(WritePathTest, ACorruptHighWaterMarkIsDataLossNeverARestartOfSequencing) {
  MustPush(phone(), {phone().Visit(kH1, kV1)});
  const uint64_t next = phone().next_seq();
  CorruptHighWaterMark(phone().id());
  const uint64_t head = Head();

  // The number sequencing would restart from, and the one that follows.
  for (uint64_t seq : {uint64_t{1}, next}) {
    phone().set_next_seq(seq);
    v1::PushResponse response;
    grpc::Status status = Push(phone(), {phone().Visit(kH1, kV1)}, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS)
        << "seq " << seq << ": " << status.error_message() << " " << response.ShortDebugString();
    EXPECT_TRUE(absl::StrContains(status.error_message(), "high-water mark"))
        << status.error_message();
  }
  EXPECT_EQ(Head(), head);
}

TEST_F(WritePathTest, ACorruptNodeHighWaterMarkFailsTheAdminChangeWithDataLoss) {
  CorruptHighWaterMark(NodeId());
  const uint64_t head = Head();
  grpc::Status status = UpsertAnalyst("cadre-after-damage");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS) << status.error_message();
  EXPECT_EQ(Head(), head);
}

}  // namespace
}  // namespace fieldsync::testing
