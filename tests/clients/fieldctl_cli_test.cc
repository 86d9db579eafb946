// fieldctl's output and exit codes, table and --json, command by command:
// 0 done, 1 failed, 2 usage, 3 a sync that left events rejected, in
// conflict or held.
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/clients/field_world.h"

namespace fieldsync::testing {
namespace {

class FieldctlCliTest : public FieldWorld {};

struct Case {
  std::string device;
  std::vector<std::string> args;
  int exit_code;
  std::string expect;  // In stdout or stderr.
};

TEST_F(FieldctlCliTest, UsageHelpAndFailuresAnswerTheirExitCodes) {
  const std::vector<Case> cases = {
      {"", {}, 2, "no command"},
      {"", {"frobnicate"}, 2, "unknown command frobnicate"},
      {"", {"--help"}, 0, "Exit codes"},
      {"phone1", {"visit", "record", "--household", kH1}, 2, "needs --household, --start, --end"},
      {"phone1",
       {"visit", "record", "--household", kH1, "--start", "yesterday", "--end", "now"},
       2,
       "want RFC 3339"},
      {"phone1",
       {"visit", "record", "--household", kH1, "--start", "2024-03-01T10:00:00+08:00", "--end",
        "2024-03-01T09:00:00+08:00"},
       2,
       "--end is before --start"},
      {"phone1",
       {"visit", "record", "--household", kH1, "--start", "2024-03-01T09:00:00+08:00", "--end",
        "2024-03-01T10:00:00+08:00", "--purpose", "picnic"},
       2,
       "want one of routine"},
      {"phone1", {"household", "set", kH1}, 2, "needs FIELD=VALUE"},
      {"phone1", {"household", "set", kH1, "size:int=many"}, 2, "not an integer"},
      {"phone1", {"conflicts", "resolve", "C1"}, 2, "exactly one of --side N, --value V"},
      {"phone1", {"outbox", "export"}, 2, "needs FILE"},
      {"fresh", {"sync"}, 1, "not enrolled: run `fieldctl enroll --code CODE` first"},
      {"fresh", {"enroll", "--code", "not-a-code"}, 1, "enroll"},
      {"phone1", {"enroll", "--code", "x"}, 1, "already enrolled"},
      {"phone1", {"household", "show", "nope"}, 1, "not in local state"},
      {"phone1", {"report", "assessment"}, 2, "needs --scope PREFIX"},
      {"phone1", {"export", "--from", "0"}, 1, "export: "},
      {"", {"admin", "user", "list"}, 1, "--token-file"},
      {"", {"admin", "nothing", "here"}, 2, "unknown admin command"},
  };
  for (const Case& c : cases) {
    CtlRun run = Fieldctl(c.device, c.args);
    EXPECT_EQ(run.exit_code, c.exit_code) << ::testing::PrintToString(c.args) << "\n" << run.err;
    EXPECT_NE((run.out + run.err).find(c.expect), std::string::npos)
        << ::testing::PrintToString(c.args) << " printed:\n"
        << run.out << run.err;
  }
}

TEST_F(FieldctlCliTest, EveryCommandTakesHelp) {
  for (const std::vector<std::string>& command :
       std::vector<std::vector<std::string>>{{"enroll"},
                                             {"visit"},
                                             {"household"},
                                             {"status"},
                                             {"plan"},
                                             {"sync"},
                                             {"outbox"},
                                             {"relay"},
                                             {"conflicts"},
                                             {"admin"},
                                             {"report"},
                                             {"export"}}) {
    std::vector<std::string> args = command;
    args.push_back("--help");
    CtlRun run = Fieldctl("phone1", args);
    EXPECT_EQ(run.exit_code, 0) << command[0] << ": " << run.err;
    EXPECT_NE(run.out.find("usage: fieldctl"), std::string::npos) << command[0] << ": " << run.out;
  }
}

TEST_F(FieldctlCliTest, JsonFailuresCarryTheStatusCode) {
  CtlRun run = Fieldctl("fresh", {"--json", "sync"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(JsonField(run.out, "code"), "FAILED_PRECONDITION") << run.out;
}

TEST_F(FieldctlCliTest, DeviceCommandsPrintTablesAndJson) {
  Link("L1", "cadre1", kH1);
  CtlRun first = Must("phone1", {"sync"});
  EXPECT_NE(first.out.find("pulled"), std::string::npos) << first.out;

  CtlRun table = Must("phone1", {"household", "list"});
  EXPECT_NE(table.out.find("NUMBER"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("N-1"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("戶主一"), std::string::npos) << table.out;
  CtlRun json = Must("phone1", {"--json", "household", "list"});
  EXPECT_EQ(json.out.rfind("{\"households\":[", 0), 0u) << json.out;

  CtlRun show = Must("phone1", {"household", "show", "N-1"});
  EXPECT_NE(show.out.find("status identified"), std::string::npos) << show.out;
  EXPECT_EQ(show.out.find("11010519491231002X"), std::string::npos) << "ID number on screen";

  CtlRun visit = Must("phone1", {"visit", "record", "--household", "N-1", "--start",
                                 "2024-03-01T09:00:00+08:00", "--end", "2024-03-01T10:00:00+08:00",
                                 "--purpose", "policy_explanation", "--notes", "宣講政策"});
  EXPECT_NE(visit.out.find("pending until `fieldctl sync`"), std::string::npos) << visit.out;
  CtlRun pending = Must("phone1", {"outbox"});
  EXPECT_NE(pending.out.find("visit_recorded"), std::string::npos) << pending.out;
  EXPECT_NE(pending.out.find("1 pending"), std::string::npos) << pending.out;

  CtlRun proposed = Must("phone1", {"--json", "status", "propose", "--household", kH1, "--to",
                                    "not_exited", "--reason", "核實收入"});
  EXPECT_EQ(JsonField(proposed.out, "state"), "pending");
  Must("phone1", {"plan", "revise", "--household", kH1, "--year", "2024", "--item",
                  "industry:養牛兩頭:500000", "--item", "education:助學"});

  CtlRun synced = Must("phone1", {"--json", "sync"});
  EXPECT_EQ(JsonInt(synced.out, "accepted"), 3) << synced.out;
  EXPECT_EQ(JsonInt(synced.out, "visits"), 1) << synced.out;
  EXPECT_GT(JsonInt(synced.out, "gzip_bytes_sent"), 0) << synced.out;
  EXPECT_NE(JsonField(synced.out, "bytes_per_visit"), "0") << synced.out;
  CtlRun accepted = Must("phone1", {"outbox", "list", "--state", "accepted"});
  EXPECT_NE(accepted.out.find("3 accepted"), std::string::npos) << accepted.out;
}

TEST_F(FieldctlCliTest, RejectedEventStaysVisibleWithItsReasonAndSyncSaysSo) {
  Link("L1", "cadre1", kH1);
  Must("phone1", {"sync"});
  // A field the schema does not have: the server rejects it.
  Must("phone1", {"household", "set", kH1, "favourite_colour=blue"});
  CtlRun synced = Must("phone1", {"--json", "sync"}, 3);
  EXPECT_EQ(JsonInt(synced.out, "rejected"), 1) << synced.out;
  CtlRun outbox = Must("phone1", {"outbox", "--state", "rejected"});
  EXPECT_NE(outbox.out.find("REJECTION_CODE_UNKNOWN_FIELD"), std::string::npos) << outbox.out;
  // A later sync has nothing new to report: done.
  Must("phone1", {"sync"});
}

TEST_F(FieldctlCliTest, AdminCommandsPrintTablesAndJson) {
  CtlRun users = Must("", {"--token-file", dir() + "/admin.token", "admin", "user", "list"});
  EXPECT_NE(users.out.find("cadre1"), std::string::npos) << users.out;
  EXPECT_NE(users.out.find("township_staff"), std::string::npos) << users.out;
  CtlRun devices = Admin({"--json", "admin", "device", "list"});
  EXPECT_EQ(devices.exit_code, 0) << devices.err;
  EXPECT_NE(devices.out.find("\"devices\""), std::string::npos) << devices.out;
  Link("L9", "cadre1", kH2);
  CtlRun links = Admin({"admin", "link", "list", "--cadre", "cadre1"});
  EXPECT_NE(links.out.find("L9"), std::string::npos) << links.out;
  CtlRun bad = Admin({"admin", "link", "start", "--cadre", "cadre1", "--target-kind", "household",
                      "--target", "no-such-household", "--role", "household_helper"});
  EXPECT_EQ(bad.exit_code, 1) << bad.out;
  EXPECT_NE(bad.err.find("admin link start"), std::string::npos) << bad.err;
  CtlRun backup = Admin({"--json", "admin", "backup", "create", "--label", "test"});
  EXPECT_EQ(backup.exit_code, 0) << backup.err;
  EXPECT_NE(backup.out.find("\"backup\""), std::string::npos) << backup.out;
}

TEST_F(FieldctlCliTest, SyncWithTheServerDownFailsSayingWhatToDoAndResumesLater) {
  Link("L1", "cadre1", kH1);
  Must("phone1", {"sync"});
  for (int i = 0; i < 3; ++i) {
    Must("phone1", {"visit", "record", "--household", kH1, "--start", "2024-03-01T09:00:00+08:00",
                    "--end", "2024-03-01T10:00:00+08:00"});
  }
  StopServer();
  CtlRun down = Must("phone1", {"--retries", "2", "sync"}, 1);
  EXPECT_NE(down.err.find("is the server running"), std::string::npos) << down.err;
  CtlRun pending = Must("phone1", {"outbox", "--state", "pending"});
  EXPECT_NE(pending.out.find("3 pending"), std::string::npos) << pending.out;
  StartServer();
  CtlRun up = Must("phone1", {"--json", "sync"});
  EXPECT_EQ(JsonInt(up.out, "accepted"), 3) << up.out;
  EXPECT_EQ(JsonInt(up.out, "pending_left"), 0) << up.out;
}

TEST_F(FieldctlCliTest, PhotosGoAfterTheirVisitInChunksAndOnlyOnce) {
  Link("L1", "cadre1", kH1);
  Must("phone1", {"sync"});
  const std::string photo = dir() + "/photo.jpg";
  {
    std::ofstream out(photo, std::ios::binary);
    for (int i = 0; i < 200000; ++i) out.put(static_cast<char>((i * 7919) % 251));
  }
  Must("phone1", {"visit", "record", "--household", kH1, "--start", "2024-03-01T09:00:00+08:00",
                  "--end", "2024-03-01T10:00:00+08:00", "--photo", photo});
  CtlRun synced = Must("phone1", {"--json", "sync"});
  EXPECT_EQ(JsonInt(synced.out, "blobs_uploaded"), 1) << synced.out;
  EXPECT_GT(JsonInt(synced.out, "bytes_sent"), 200000) << synced.out;
  CtlRun again = Must("phone1", {"--json", "sync"});
  EXPECT_EQ(JsonInt(again.out, "blobs_uploaded"), 0) << again.out;
  CtlRun missing =
      Must("phone1",
           {"visit", "record", "--household", kH1, "--start", "2024-03-01T09:00:00+08:00", "--end",
            "2024-03-01T10:00:00+08:00", "--photo", dir() + "/none.jpg"},
           1);
  EXPECT_NE(missing.err.find("cannot read"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace fieldsync::testing
