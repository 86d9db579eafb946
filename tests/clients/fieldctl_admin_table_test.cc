// fieldctl's admin commands after they became one table (clients/fieldctl/
// main.cc, Cli::Admin): `admin link end --reason replaced --replacement USER`
// ends a cadre's link and starts the replacement's in the same call, the
// usage errors around it, and `admin unit list` (which used to fall through
// to the backup branch and make a backup instead of listing units).
// Real fieldctl and fieldsyncd processes (tests/clients/field_world.h).
#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/clients/field_world.h"

namespace fieldsync::testing {
namespace {

class FieldctlAdminTableTest : public FieldWorld {};

TEST_F(FieldctlAdminTableTest, LinkEndWithReplacementHandsTheHouseholdToTheNewCadre) {
  Link("L1", "cadre1", kH1);
  CtlRun ended = Admin({"admin", "link", "end", "L1", "--reason", "replaced", "--replacement",
                        "cadre2", "--note", "调岗"});
  ASSERT_EQ(ended.exit_code, 0) << ended.err;
  EXPECT_NE(ended.out.find("link L1 ended"), std::string::npos) << ended.out;
  EXPECT_NE(ended.out.find("cadre2 takes over " + std::string(kH1)), std::string::npos)
      << ended.out;

  // The old link has its last day (today: a link is active through it) and
  // names its replacement; the new one is cadre2's, on the same household.
  CtlRun old_holder = Admin({"--json", "admin", "link", "list", "--cadre", "cadre1"});
  ASSERT_EQ(old_holder.exit_code, 0) << old_holder.err;
  EXPECT_NE(old_holder.out.find("\"valid_to\""), std::string::npos) << old_holder.out;
  EXPECT_NE(old_holder.out.find("\"replaced_by_link_id\""), std::string::npos) << old_holder.out;
  CtlRun new_holder = Admin({"admin", "link", "list", "--cadre", "cadre2"});
  ASSERT_EQ(new_holder.exit_code, 0) << new_holder.err;
  EXPECT_NE(new_holder.out.find(kH1), std::string::npos) << new_holder.out;
}

TEST_F(FieldctlAdminTableTest, LinkEndWithReplacementAsJsonCarriesBothLinks) {
  Link("L2", "cadre1", kH2);
  CtlRun ended = Admin({"--json", "admin", "link", "end", "L2", "--reason", "cadre_left",
                        "--replacement", "cadre2", "--replacement-reason", "接替帮扶"});
  ASSERT_EQ(ended.exit_code, 0) << ended.err;
  EXPECT_NE(ended.out.find("\"ended\""), std::string::npos) << ended.out;
  EXPECT_NE(ended.out.find("\"replacement\""), std::string::npos) << ended.out;
  EXPECT_NE(ended.out.find("cadre2"), std::string::npos) << ended.out;
}

TEST_F(FieldctlAdminTableTest, ReplacedWithoutAReplacementIsAUsageErrorAndTheLinkStays) {
  Link("L3", "cadre1", kH1);
  CtlRun refused = Admin({"admin", "link", "end", "L3", "--reason", "replaced"});
  EXPECT_EQ(refused.exit_code, 2) << refused.out;
  EXPECT_NE(refused.err.find("--replacement USER"), std::string::npos) << refused.err;
  CtlRun stray = Admin({"admin", "link", "end", "L3", "--reason", "cadre_left",
                        "--replacement-from", "2026-01-01"});
  EXPECT_EQ(stray.exit_code, 2) << stray.out;
  CtlRun both = Admin({"admin", "link", "end", "L3", "--reason", "replaced", "--replacement",
                       "cadre2", "--replacement-unit", "U1"});
  EXPECT_EQ(both.exit_code, 2) << both.out;
  CtlRun still = Admin({"admin", "link", "list", "--cadre", "cadre1", "--active-only"});
  EXPECT_NE(still.out.find("L3"), std::string::npos) << still.out;
}

TEST_F(FieldctlAdminTableTest, ReplacementOfTheOtherHolderKindIsTheServersRefusal) {
  Link("L4", "cadre1", kH2);
  CtlRun refused = Admin({"admin", "link", "end", "L4", "--reason", "replaced",
                          "--replacement-unit", "U1"});
  EXPECT_EQ(refused.exit_code, 1) << refused.out;
  EXPECT_NE(refused.err.find("admin link end: "), std::string::npos) << refused.err;
}

TEST_F(FieldctlAdminTableTest, UnitListListsUnitsAndMakesNoBackup) {
  CtlRun units = Admin({"admin", "unit", "list"});
  ASSERT_EQ(units.exit_code, 0) << units.err;
  EXPECT_NE(units.out.find("U1"), std::string::npos) << units.out;
  EXPECT_EQ(units.out.find("backup"), std::string::npos) << units.out;
  // No backup was made: the table has its header line only.
  CtlRun backups = Admin({"admin", "backup", "list"});
  ASSERT_EQ(backups.exit_code, 0) << backups.err;
  EXPECT_LE(std::count(backups.out.begin(), backups.out.end(), '\n'), 1) << backups.out;
}

TEST_F(FieldctlAdminTableTest, AdminHelpListsEveryCommandOfTheTable) {
  CtlRun help = Fieldctl("", {"admin", "--help"});
  ASSERT_EQ(help.exit_code, 0) << help.err;
  for (const char* command :
       {"areas import", "unit upsert", "unit list", "user upsert", "user list", "link start",
        "link end", "link list", "code issue", "device list", "device revoke", "backup create",
        "backup list", "--replacement USER"}) {
    EXPECT_NE(help.out.find(command), std::string::npos) << command << "\n" << help.out;
  }
}

}  // namespace
}  // namespace fieldsync::testing
