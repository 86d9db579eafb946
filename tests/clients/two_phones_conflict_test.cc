// Two phones edit the same household field offline; both sync; township
// staff see one conflict, resolve it; both phones converge on the next sync.
#include <string>

#include "gtest/gtest.h"
#include "tests/clients/field_world.h"

namespace fieldsync::testing {
namespace {

class TwoPhonesConflictTest : public FieldWorld {};

// The value and version of a household field as a device's `household show
// --json` prints it.
std::pair<std::string, long long> FieldOf(const std::string& show_json, const std::string& field) {
  const std::string needle = "\"" + field + "\":";
  size_t at = show_json.find(needle);
  if (at == std::string::npos) return {"", -1};
  std::string rest = show_json.substr(at);
  std::string value = JsonField(rest, "string_value");
  // Versions print as JSON strings (uint64).
  std::string version = JsonField(rest, "version");
  long long v = -1;
  if (!version.empty()) v = std::stoll(version);
  return {value, v};
}

TEST_F(TwoPhonesConflictTest, OfflineEditsOfOneFieldMakeOneConflictAndConvergeAfterResolution) {
  Link("L1", "cadre1", kH1);
  Link("L2", "cadre2", kH1);
  Must("phone1", {"sync"});
  Must("phone2", {"sync"});

  // Both offline, from the same pulled state.
  Must("phone1", {"household", "set", kH1, "phone=13800000001"});
  Must("phone2", {"household", "set", kH1, "phone=13900000002"});

  CtlRun first = Must("phone1", {"--json", "sync"});
  EXPECT_EQ(JsonInt(first.out, "accepted"), 1) << first.out;
  // The second phone's write is concurrent: kept in a conflict, and the sync
  // says so in its own exit code.
  CtlRun second = Must("phone2", {"--json", "sync"}, 3);
  EXPECT_EQ(JsonInt(second.out, "conflicts"), 1) << second.out;
  CtlRun outbox = Must("phone2", {"--json", "outbox", "--state", "conflict"});
  EXPECT_NE(outbox.out.find("\"conflict_ids\":["), std::string::npos) << outbox.out;

  Must("tablet", {"sync"});
  CtlRun listed = Must("tablet", {"--json", "conflicts", "list"});
  const std::string conflict_id = JsonField(listed.out, "id");
  ASSERT_FALSE(conflict_id.empty()) << listed.out;
  // Exactly one conflict, on field phone.
  EXPECT_EQ(listed.out.find("\"created_offset\":", listed.out.find("\"created_offset\":") + 1),
            std::string::npos)
      << listed.out;
  EXPECT_EQ(JsonField(listed.out, "field"), "phone");
  CtlRun table = Must("tablet", {"conflicts", "list"});
  EXPECT_NE(table.out.find(conflict_id), std::string::npos) << table.out;

  // The reviewer keeps the first phone's number (side 0 in offset order).
  Must("tablet",
       {"conflicts", "resolve", conflict_id, "--side", "0", "--note", "called the household"});
  Must("tablet", {"sync"});

  Must("phone1", {"sync"});
  Must("phone2", {"sync"});
  CtlRun show1 = Must("phone1", {"--json", "household", "show", kH1});
  CtlRun show2 = Must("phone2", {"--json", "household", "show", kH1});
  auto [value1, version1] = FieldOf(show1.out, "phone");
  auto [value2, version2] = FieldOf(show2.out, "phone");
  EXPECT_EQ(value1, "13800000001") << show1.out;
  EXPECT_EQ(value2, value1) << show2.out;
  EXPECT_EQ(version2, version1);
  EXPECT_GT(version1, 1);  // The resolution is a write of its own.
  CtlRun after = Must("tablet", {"--json", "conflicts", "list"});
  EXPECT_EQ(after.out.find(conflict_id), std::string::npos) << after.out;
}

}  // namespace
}  // namespace fieldsync::testing
