// fieldload end to end on a small scale: simulated devices, relays and
// shared edits through the SDK; the relayed phones come back as duplicates.
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "gtest/gtest.h"
#include "tests/clients/field_world.h"

namespace fieldsync::testing {
namespace {

class FieldloadTest : public FieldWorld {};

TEST_F(FieldloadTest, SmallRunPrintsPercentilesRatioAndRelayedDuplicates) {
  const std::string command = std::string(FIELDLOAD_PATH) + " --server " + address() +
                              " --token-file " + dir() + "/admin.token --dir " + dir() +
                              "/load --devices 4 --visits 10 --relay-share 0.5 --seed 7";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buffer[4096];
  while (fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
  int status = pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_EQ(JsonInt(out, "devices"), 4) << out;
  EXPECT_EQ(JsonInt(out, "relayed_devices"), 2) << out;
  // Every event of the two relayed phones comes back as a duplicate.
  EXPECT_EQ(JsonInt(out, "late_duplicates"), 20) << out;
  EXPECT_EQ(JsonInt(out, "late_accepted"), 0) << out;
  EXPECT_EQ(JsonInt(out, "events_pushed"), 40) << out;
  EXPECT_EQ(JsonInt(out, "rejected"), 0) << out;
  EXPECT_NE(out.find("\"ratio\":"), std::string::npos) << out;
  EXPECT_NE(out.find("\"p99_ms\":"), std::string::npos) << out;
}

}  // namespace
}  // namespace fieldsync::testing
