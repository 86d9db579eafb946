// EventStore cursors (PutCursor / GetCursor): a log reader's position kept in
// the store outside any append: it survives a reopen, adds no log record,
// never disturbs the log's projections, and is refused while the store is
// read-only.
#include <memory>

#include "gtest/gtest.h"
#include "storage/event_store.h"
#include "storage/key_format.h"
#include "tests/storage/power_loss_fs.h"
#include "tests/storage/test_util.h"

namespace fieldsync::storage {
namespace {

using test::PowerLossFs;
using test::ScopedTempDir;

TEST(CursorTest, WrittenValueSurvivesReopenAndAddsNoLogRecord) {
  ScopedTempDir dir;
  {
    auto store = OpenEventStore(dir.Join("store"));
    ASSERT_TRUE(store.ok()) << store.status();
    auto absent = (*store)->GetCursor("kafka/events");
    ASSERT_TRUE(absent.ok()) << absent.status();
    EXPECT_FALSE(absent->has_value());
    ASSERT_TRUE((*store)->Append({test::MakeEntry("e1", "one")}).ok());
    ASSERT_TRUE((*store)->PutCursor("kafka/events", 1).ok());
    ASSERT_TRUE((*store)->PutCursor("kafka/other", 7).ok());
    ASSERT_TRUE((*store)->PutCursor("kafka/events", 5).ok());
    EXPECT_EQ((*store)->Head(), 1u) << "a cursor is no log record";
  }
  auto store = OpenEventStore(dir.Join("store"));
  ASSERT_TRUE(store.ok()) << store.status();
  auto events = (*store)->GetCursor("kafka/events");
  ASSERT_TRUE(events.ok() && events->has_value()) << events.status();
  EXPECT_EQ(**events, 5u);
  auto other = (*store)->GetCursor("kafka/other");
  ASSERT_TRUE(other.ok() && other->has_value());
  EXPECT_EQ(**other, 7u);
  EXPECT_EQ((*store)->Head(), 1u);
  EXPECT_TRUE((*store)->VerifyChain(1, 1).ok());
  // Its key is in the projections space under the reserved prefix.
  auto raw = (*store)->GetProjection(keys::CursorKey("kafka/events"));
  ASSERT_TRUE(raw.ok() && raw->has_value());
  EXPECT_EQ(raw->value().size(), 8u);
}

TEST(CursorTest, EmptyNameIsInvalidArgument) {
  ScopedTempDir dir;
  auto store = OpenEventStore(dir.Join("store"));
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE(absl::IsInvalidArgument((*store)->PutCursor("", 1)));
  EXPECT_TRUE(absl::IsInvalidArgument((*store)->GetCursor("").status()));
}

TEST(CursorTest, ReadOnlyStoreRefusesTheWriteAndKeepsTheOldValue) {
  ScopedTempDir dir;
  std::filesystem::create_directories(dir.Join("trash"));
  auto fs = std::make_shared<PowerLossFs>(dir.Join("trash"));
  StoreOptions options;
  options.file_system = fs;
  options.recovery_interval = absl::Hours(1);
  auto store = OpenEventStore(dir.Join("store"), options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->PutCursor("kafka/events", 3).ok());
  fs->FailWrites(rocksdb::IOStatus::NoSpace("No space left on device"));
  EXPECT_FALSE((*store)->Append({test::MakeEntry("e1", "one")}).ok());
  absl::Status refused = (*store)->PutCursor("kafka/events", 4);
  EXPECT_TRUE(absl::IsUnavailable(refused)) << refused;
  auto kept = (*store)->GetCursor("kafka/events");
  ASSERT_TRUE(kept.ok() && kept->has_value()) << kept.status();
  EXPECT_EQ(**kept, 3u);
}

}  // namespace
}  // namespace fieldsync::storage
