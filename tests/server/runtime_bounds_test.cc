// Every read a call makes is bounded by the records it examines, not by those
// it returns (issue 8): with limits.max_examined_records = 5, a Pull over a
// log of rejection markers (records no one is shown) answers after five of
// them with more = true and a checkpoint past them, and the client resumes; a
// ListRejections page and a GetHistory call stop the same way with a token to
// go on from. Pull and queries run on the read executor (limits.read_threads)
// and still answer correctly. Through gRPC against the in-process server.
#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "sync/event_codec.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

constexpr uint32_t kBudget = 5;

class RuntimeBoundsTest : public SyncWorld {
 public:
  void Configure(v1::ServerConfig& config) override {
    config.mutable_limits()->set_max_examined_records(kBudget);
    config.mutable_limits()->set_read_threads(2);
  }

  // `n` visits the phone may not make (kH3 is not the cadre's): each is
  // rejected and leaves a marker record in the log, which no Pull shows.
  void PushRejected(int n) {
    std::vector<v1::Event> outside;
    for (int i = 0; i < n; ++i) outside.push_back(phone().Visit(kH3, kV2));
    v1::PushResponse response;
    grpc::Status status = Push(phone(), outside, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.results_size(), n);
    for (const v1::PushResult& result : response.results()) {
      ASSERT_TRUE(result.has_rejected()) << OutcomeOf(result);
    }
  }
};

TEST_F(RuntimeBoundsTest, APullStopsAfterTheExaminedBudgetOfRecordsItDoesNotShow) {
  std::vector<v1::PullResponse> first = PullAll(hq_token(), {});
  ASSERT_FALSE(first.empty());
  const v1::Checkpoint cursor = first.back().checkpoint();
  const uint64_t before = Head();
  ASSERT_EQ(cursor.offset(), before);
  PushRejected(8);
  ASSERT_EQ(Head(), before + 8) << "each rejection leaves one marker record in the log";

  v1::PullRequest request;
  *request.mutable_cursor() = cursor;
  v1::PullResponse page;
  grpc::Status status = Pull(hq_token(), request, &page);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // Five markers read, none shown: the call stops there and says so.
  EXPECT_EQ(page.events_size(), 0);
  EXPECT_TRUE(page.more());
  EXPECT_EQ(page.checkpoint().offset(), before + kBudget);

  // The client resumes and reaches the head; an event pushed after the
  // markers is found.
  const v1::PushResponse visit = MustPush(phone(), {phone().Visit(kH1, kV1)});
  std::vector<v1::PullResponse> rest = PullAll(hq_token(), page.checkpoint());
  ASSERT_FALSE(rest.empty());
  EXPECT_FALSE(rest.back().more());
  EXPECT_EQ(rest.back().checkpoint().offset(), Head());
  std::vector<uint64_t> offsets;
  for (const v1::PullResponse& response : rest) {
    EXPECT_LE(static_cast<uint32_t>(response.events_size()), kBudget);
    for (const sync::LoggedEvent& event : Decoded(response.events()))
      offsets.push_back(event.offset());
  }
  EXPECT_EQ(offsets, std::vector<uint64_t>{visit.results(0).accepted().offset()});
}

TEST_F(RuntimeBoundsTest, AFirstSyncPagesItsSnapshotAndStillSeesEveryHousehold) {
  // Six more households in village 2: ten subjects, two budgets' worth.
  std::set<std::string> expected{kH1, kH2, kH3, kH4};
  std::vector<v1::Event> batch;
  for (int i = 0; i < 6; ++i) {
    const std::string id = absl::StrCat("11111111-1111-4111-8111-1000000000", 10 + i);
    batch.push_back(tablet().Register(id, kV2, absl::StrCat("N-2", i)));
    expected.insert(id);
  }
  MustPush(tablet(), batch);
  std::set<std::string> households;
  std::vector<v1::PullResponse> pages = PullAll(hq_token(), {});
  EXPECT_GE(pages.size(), 2u) << "ten subjects, five examined per page";
  for (const v1::PullResponse& page : pages) {
    EXPECT_LE(static_cast<uint32_t>(page.snapshot().households_size()), kBudget);
    for (const v1::Household& household : page.snapshot().households()) {
      households.insert(household.id());
    }
  }
  EXPECT_EQ(households, expected);
}

TEST_F(RuntimeBoundsTest, ARejectionsPageStopsAtTheExaminedBudgetWithATokenToGoOn) {
  PushRejected(8);
  std::set<std::string> seen;
  v1::ListRejectionsRequest request;
  request.set_device_id(phone().id());
  request.set_page_size(100);
  int pages = 0;
  while (true) {
    v1::ListRejectionsResponse response;
    auto context = ServiceHarness::Context(phone().token());
    grpc::Status status = query().ListRejections(context.get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ++pages;
    EXPECT_LE(static_cast<uint32_t>(response.rejections_size()), kBudget);
    for (const v1::RejectionRecord& record : response.rejections()) seen.insert(record.event_id());
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
    ASSERT_LT(pages, 10) << "the pages must end";
  }
  EXPECT_GE(pages, 2);
  EXPECT_EQ(seen.size(), 8u);
}

TEST_F(RuntimeBoundsTest, AHistoryCallStopsAtTheExaminedBudgetAndResumesFromItsOffset) {
  for (int i = 0; i < 7; ++i) MustPush(phone(), {phone().Visit(kH1, kV1)});
  v1::GetHistoryRequest request;
  request.mutable_subject()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
  request.mutable_subject()->set_id(kH1);
  std::vector<uint64_t> offsets;
  int calls = 0;
  while (true) {
    v1::GetHistoryResponse response;
    auto context = ServiceHarness::Context(phone().token());
    grpc::Status status = query().GetHistory(context.get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ++calls;
    EXPECT_LE(static_cast<uint32_t>(response.events_size()), kBudget);
    for (const sync::LoggedEvent& event : Decoded(response.events()))
      offsets.push_back(event.offset());
    if (!response.more()) break;
    request.set_after_offset(response.next_after_offset());
    ASSERT_LT(calls, 20) << "the calls must end";
  }
  EXPECT_GE(calls, 2);
  // Every event of kH1 once, in order (at least the registration and seven visits).
  EXPECT_GE(offsets.size(), 8u);
  EXPECT_TRUE(std::is_sorted(offsets.begin(), offsets.end()));
  EXPECT_EQ(std::set<uint64_t>(offsets.begin(), offsets.end()).size(), offsets.size());
}

// Backups beyond storage.backups_to_keep are deleted after each new one.
class BackupsToKeepTest : public SyncWorld {
 public:
  void Configure(v1::ServerConfig& config) override {
    config.mutable_storage()->set_backups_to_keep(2);
  }
  std::string Backup() {
    v1::CreateBackupRequest request;
    v1::CreateBackupResponse response;
    auto context = ServiceHarness::Context(admin_token());
    grpc::Status status = admin().CreateBackup(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.backup().backup_id();
  }
  std::vector<std::string> Listed() {
    v1::ListBackupsResponse response;
    auto context = ServiceHarness::Context(admin_token());
    grpc::Status status = admin().ListBackups(context.get(), {}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> ids;
    for (const v1::BackupInfo& info : response.backups()) ids.push_back(info.backup_id());
    std::sort(ids.begin(), ids.end());
    return ids;
  }
};

TEST_F(BackupsToKeepTest, TheOldestBackupsBeyondTheSettingAreDeletedAfterANewOne) {
  const std::string first = Backup();
  const std::string second = Backup();
  EXPECT_EQ(Listed(), (std::vector<std::string>{first, second}));
  MustPush(phone(), {phone().Visit(kH1, kV1)});
  const std::string third = Backup();
  EXPECT_EQ(Listed(), (std::vector<std::string>{second, third}));
  const std::string fourth = Backup();
  EXPECT_EQ(Listed(), (std::vector<std::string>{third, fourth}));
}

}  // namespace
}  // namespace fieldsync::testing
