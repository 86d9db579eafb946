// The store's read-only state (EventStore::WriteState) on a disk that refuses
// writes: the first failed write makes every write answer UNAVAILABLE
// without reaching RocksDB, reads go on, and once the disk takes writes
// again the store recovers by itself and the log continues gapless.
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "storage/event_store.h"
#include "storage/sha256.h"
#include "tests/storage/power_loss_fs.h"
#include "tests/storage/test_util.h"

namespace fieldsync::storage {
namespace {

using ::fieldsync::storage::test::PowerLossFs;
using ::fieldsync::storage::test::ScopedTempDir;

constexpr char kNoSpace[] = "store is read-only: no space left";

std::vector<AppendEntry> Entries(const std::string& prefix, int n) {
  std::vector<AppendEntry> entries;
  for (int i = 0; i < n; ++i) {
    AppendEntry e;
    e.event_id = prefix + std::to_string(i);
    e.payload = "payload " + e.event_id;
    entries.push_back(std::move(e));
  }
  return entries;
}

class WriteStates {
 public:
  void Add(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    states_.push_back(status);
  }
  std::vector<absl::Status> Get() {
    absl::MutexLock lock(&mu_);
    return states_;
  }

 private:
  absl::Mutex mu_;
  std::vector<absl::Status> states_ ABSL_GUARDED_BY(mu_);
};

TEST(ReadOnlyStoreTest, FullDiskRefusesWritesServesReadsAndRecoversWithAGaplessLog) {
  ScopedTempDir dir;
  std::filesystem::create_directories(dir.path() + "/trash");
  auto fs = std::make_shared<PowerLossFs>(dir.path() + "/trash");
  WriteStates reported;
  StoreOptions options;
  options.file_system = fs;
  options.recovery_interval = absl::Milliseconds(20);
  options.on_write_state_changed = [&](const absl::Status& s) { reported.Add(s); };
  auto store = OpenEventStore(dir.path() + "/store", options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Append(Entries("before-", 10)).ok());
  ASSERT_TRUE((*store)->WriteState().ok());

  fs->FailWrites(rocksdb::IOStatus::NoSpace("No space left on device: While appending to file: "
                                            "/srv/secret/000012.log"));
  auto failed = (*store)->Append(Entries("lost-", 3));
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(absl::IsUnavailable(failed.status())) << failed.status();
  EXPECT_EQ(failed.status().message(), kNoSpace);
  EXPECT_EQ((*store)->WriteState().message(), kNoSpace);
  // Every later write is refused the same way, blobs included; reads go on.
  for (int i = 0; i < 3; ++i) {
    auto again = (*store)->Append(Entries("again-" + std::to_string(i) + "-", 2));
    EXPECT_EQ(again.status().message(), kNoSpace);
  }
  const std::string content = "photo";
  auto blob = (*store)->PutBlobChunk(DigestBytes(Sha256({content})), content.size(), 0, content);
  EXPECT_EQ(blob.status().message(), kNoSpace);
  EXPECT_EQ((*store)->Head(), 10u);
  auto record = (*store)->Read(10);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->payload, "payload before-9");
  EXPECT_TRUE((*store)->VerifyChain(1, 10).ok());

  // Space returns: the store recovers by itself, within a bound.
  fs->StopFailing();
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!(*store)->WriteState().ok() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_TRUE((*store)->WriteState().ok()) << (*store)->WriteState();
  auto after = (*store)->Append(Entries("after-", 2));
  ASSERT_TRUE(after.ok()) << after.status();
  const uint64_t head = (*store)->Head();
  // The failed append left no gap and no fork: either it never reached the
  // WAL, or it did whole and the reopen found it.
  EXPECT_TRUE((*after)[0].offset == 11 || (*after)[0].offset == 14) << (*after)[0].offset;
  EXPECT_TRUE((*store)->VerifyChain(1, head).ok());

  // Reported once each way, the cause for the log kept apart from clients.
  std::vector<absl::Status> states = reported.Get();
  ASSERT_EQ(states.size(), 2u);
  EXPECT_TRUE(absl::IsUnavailable(states[0]));
  EXPECT_NE(states[0].message().find("/srv/secret/000012.log"), std::string::npos);
  EXPECT_TRUE(states[1].ok());

  // A restart sees the same gapless log.
  store->reset();
  StoreOptions plain;
  plain.file_system = fs;
  auto reopened = OpenEventStore(dir.path() + "/store", plain);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->Head(), head);
  EXPECT_TRUE((*reopened)->VerifyChain(1, head).ok());
}

TEST(ReadOnlyStoreTest, LessFreeSpaceThanMinFreeBytesRefusesWritesBeforeTheDiskIsFull) {
  ScopedTempDir dir;
  StoreOptions options;
  // More than any disk has free.
  options.min_free_bytes = uint64_t{1} << 62;
  auto store = OpenEventStore(dir.path() + "/store", options);
  ASSERT_TRUE(store.ok()) << store.status();
  auto refused = (*store)->Append(Entries("a-", 2));
  EXPECT_TRUE(absl::IsUnavailable(refused.status())) << refused.status();
  EXPECT_EQ(refused.status().message(), kNoSpace);
  EXPECT_EQ((*store)->Head(), 0u);
  EXPECT_TRUE((*store)->ReadAfter(0, ReadLimits{}).ok());
}

}  // namespace
}  // namespace fieldsync::storage
