// A server that rate-limits the device (RESOURCE_EXHAUSTED): the SDK backs
// off with jitter and retries, and the sync completes with every result.
#include <string>

#include "gtest/gtest.h"
#include "tests/clients/field_world.h"

namespace fieldsync::testing {
namespace {

class BackoffTest : public FieldWorld {
 public:
  // Two requests a second per device, three at once.
  std::string ServerConfigText() const override {
    return "limits { device_requests_per_second: 2 device_request_burst: 3 }\n";
  }
};

TEST_F(BackoffTest, RateLimitedSyncBacksOffAndCompletes) {
  Link("L1", "cadre1", kH1);
  Must("phone1", {"sync"});
  for (int i = 0; i < 4; ++i) {
    Must("phone1", {"visit", "record", "--household", kH1, "--start", "2024-03-01T09:00:00+08:00",
                    "--end", "2024-03-01T10:00:00+08:00"});
  }
  // Small batches so that the sync needs more calls than the bucket holds.
  int retried = 0, accepted = 0;
  for (int round = 0; round < 3; ++round) {
    CtlRun synced = Must("phone1", {"--json", "sync"});
    retried += static_cast<int>(JsonInt(synced.out, "retries"));
    accepted += static_cast<int>(JsonInt(synced.out, "accepted"));
  }
  EXPECT_EQ(accepted, 4);
  EXPECT_GT(retried, 0) << "the bucket never ran dry: the test tested nothing";
}

}  // namespace
}  // namespace fieldsync::testing
