// PruneBackups (storage/event_store.h): keeps the newest `keep` backups of a
// backup directory and deletes the others; the kept ones still restore.
#include <vector>

#include "gtest/gtest.h"
#include "storage/event_store.h"
#include "tests/storage/test_util.h"

namespace fieldsync::storage {
namespace {

using test::MakeEntry;
using test::ScopedTempDir;

TEST(PruneBackupsTest, KeepsTheNewestBackupsAndDeletesTheOldest) {
  ScopedTempDir dir;
  const std::string backups = dir.Join("backups");
  std::vector<uint32_t> ids;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<EventStore> store, OpenEventStore(dir.Join("db")));
    for (int i = 0; i < 4; ++i) {
      ASSERT_OK(store->Append({MakeEntry("e" + std::to_string(i), "payload")}));
      ASSERT_OK_AND_ASSIGN(BackupInfo info, store->Backup(backups));
      ids.push_back(info.backup_id);
    }
    ASSERT_OK_AND_ASSIGN(std::vector<uint32_t> deleted, PruneBackups(backups, 2));
    EXPECT_EQ(deleted, (std::vector<uint32_t>{ids[0], ids[1]}));
    // Nothing more to delete.
    ASSERT_OK_AND_ASSIGN(deleted, PruneBackups(backups, 2));
    EXPECT_TRUE(deleted.empty());
  }
  // The newest (four records) still restores.
  ASSERT_OK(RestoreEventStore(backups, dir.Join("restored")));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EventStore> restored,
                       OpenEventStore(dir.Join("restored")));
  EXPECT_EQ(restored->Head(), 4u);
}

TEST(PruneBackupsTest, KeepingNoneIsRefusedAndAMissingDirectoryHasNothingToDelete) {
  ScopedTempDir dir;
  EXPECT_EQ(PruneBackups(dir.Join("backups"), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(std::vector<uint32_t> deleted, PruneBackups(dir.Join("nowhere"), 3));
  EXPECT_TRUE(deleted.empty());
}

}  // namespace
}  // namespace fieldsync::storage
