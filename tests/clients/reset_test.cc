// A cursor the server cannot continue (RESET): the phone pushes its outbox,
// drops its pulled state (never the outbox) and rebuilds it from the
// snapshot.
#include <string>

#include "clients/sdk/sqlite_db.h"
#include "fieldsync/v1/sync_service.pb.h"
#include "gtest/gtest.h"
#include "tests/clients/field_world.h"

namespace fieldsync::testing {
namespace {

class ResetTest : public FieldWorld {};

TEST_F(ResetTest, UnknownCursorRebuildsStateFromTheSnapshotAndKeepsTheOutbox) {
  Link("L1", "cadre1", kH1);
  Must("phone1", {"sync"});
  Must("phone1", {"visit", "record", "--household", kH1, "--start", "2024-03-01T09:00:00+08:00",
                  "--end", "2024-03-01T10:00:00+08:00"});
  {
    // The cursor of another deployment: a digest that is not 32 bytes.
    auto db = client::SqliteDb::Open(Db("phone1"));
    ASSERT_TRUE(db.ok()) << db.status();
    v1::Checkpoint foreign;
    foreign.set_offset(3);
    foreign.set_scope_digest("not a digest");
    auto update = (*db)->Prepare("UPDATE meta SET value = ? WHERE key = 'cursor'");
    ASSERT_TRUE(update.ok()) << update.status();
    update->BindBlob(1, foreign.SerializeAsString());
    ASSERT_TRUE(update->Run().ok());
    // A stale local record the snapshot must replace, and one the scope no
    // longer has, which the reset must drop.
    ASSERT_TRUE((*db)->Exec("UPDATE households SET household_number = 'STALE'").ok());
    ASSERT_TRUE((*db)
                    ->Exec("INSERT INTO households(id, village_code, household_number,"
                           " last_offset, state) SELECT 'ghost', village_code, 'GHOST',"
                           " last_offset, state FROM households LIMIT 1")
                    .ok());
  }
  CtlRun synced = Must("phone1", {"--json", "sync"});
  EXPECT_EQ(JsonField(synced.out, "reset"), "true") << synced.out;
  EXPECT_EQ(JsonInt(synced.out, "accepted"), 1) << synced.out;
  CtlRun listed = Must("phone1", {"--json", "household", "list"});
  EXPECT_NE(listed.out.find("\"household_number\":\"N-1\""), std::string::npos) << listed.out;
  EXPECT_EQ(listed.out.find("STALE"), std::string::npos) << listed.out;
  CtlRun ghost = Must("phone1", {"household", "show", "GHOST"}, 1);
  CtlRun outbox = Must("phone1", {"outbox"});
  EXPECT_NE(outbox.out.find("1 accepted"), std::string::npos) << outbox.out;
  // And the next sync continues incrementally from the new cursor.
  CtlRun next = Must("phone1", {"--json", "sync"});
  EXPECT_EQ(JsonField(next.out, "reset"), "false") << next.out;
}

}  // namespace
}  // namespace fieldsync::testing
