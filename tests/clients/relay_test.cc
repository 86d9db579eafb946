// A township tablet relays a phone's outbox bundle; the phone syncs later
// and gets duplicates only.
#include <fstream>
#include <string>

#include "clients/sdk/bundle.h"
#include "gtest/gtest.h"
#include "tests/clients/field_world.h"

namespace fieldsync::testing {
namespace {

class RelayTest : public FieldWorld {};

TEST_F(RelayTest, TabletRelaysPhoneBundleAndPhoneLaterGetsDuplicatesOnly) {
  Link("L1", "cadre1", kH1);
  Must("phone1", {"sync"});
  for (int i = 0; i < 3; ++i) {
    Must("phone1", {"visit", "record", "--household", "N-1", "--start", "2024-03-01T09:00:00+08:00",
                    "--end", "2024-03-01T10:00:00+08:00", "--notes", "走訪 " + std::to_string(i)});
  }
  const std::string bundle = dir() + "/phone1.bundle";
  CtlRun exported = Must("phone1", {"--json", "outbox", "export", bundle});
  EXPECT_EQ(JsonInt(exported.out, "events"), 3) << exported.out;

  CtlRun relayed = Must("tablet", {"--json", "relay", bundle});
  EXPECT_EQ(JsonInt(relayed.out, "accepted"), 3) << relayed.out;
  // Importing the same bundle twice adds nothing and sends nothing new.
  CtlRun again = Must("tablet", {"--json", "relay", bundle});
  EXPECT_EQ(JsonInt(again.out, "pushed"), 0) << again.out;

  // The events are the phone's: signed by it, attributed to cadre1.
  int visits = 0;
  for (const sync::LoggedEvent& stored : History(kH1)) {
    if (!stored.event().has_visit_recorded()) continue;
    ++visits;
    EXPECT_EQ(stored.actor(), "cadre1");
    EXPECT_FALSE(stored.relayed_by().empty());
  }
  EXPECT_EQ(visits, 3);

  CtlRun synced = Must("phone1", {"--json", "sync"});
  EXPECT_EQ(JsonInt(synced.out, "duplicates"), 3) << synced.out;
  EXPECT_EQ(JsonInt(synced.out, "accepted"), 0) << synced.out;
  CtlRun outbox = Must("phone1", {"--json", "outbox"});
  EXPECT_EQ(outbox.out.find("\"state\":\"pending\""), std::string::npos) << outbox.out;
}

TEST_F(RelayTest, DamagedBundleIsRefusedWholeAndImportsNothing) {
  Link("L1", "cadre1", kH1);
  Must("phone1", {"sync"});
  Must("phone1", {"visit", "record", "--household", kH1, "--start", "2024-03-01T09:00:00+08:00",
                  "--end", "2024-03-01T10:00:00+08:00"});
  const std::string bundle = dir() + "/phone1.bundle";
  Must("phone1", {"outbox", "export", bundle});
  std::string bytes;
  {
    std::ifstream in(bundle, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  {
    std::ofstream out(bundle, std::ios::binary | std::ios::trunc);
    out << bytes.substr(0, bytes.size() - 5);  // A copy cut short.
  }
  CtlRun relayed = Must("tablet", {"relay", bundle}, 1);
  EXPECT_NE(relayed.err.find("damaged"), std::string::npos) << relayed.err;
  CtlRun outbox = Must("tablet", {"--json", "outbox"});
  EXPECT_EQ(outbox.out.find("\"relayed\":true"), std::string::npos) << outbox.out;
}

TEST_F(RelayTest, RelayedEventsWaitingForEarlierOnesAreHeldThenSentWhenTheyCome) {
  Link("L1", "cadre1", kH1);
  Must("phone1", {"sync"});
  for (int i = 0; i < 2; ++i) {
    Must("phone1", {"visit", "record", "--household", kH1, "--start", "2024-03-01T09:00:00+08:00",
                    "--end", "2024-03-01T10:00:00+08:00"});
  }
  const std::string both = dir() + "/both.bundle";
  Must("phone1", {"outbox", "export", both});
  auto events = client::ReadBundle(both);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 2u);
  // The second event reaches the tablet alone (another phone's card, say).
  const std::string second = dir() + "/second.bundle", first = dir() + "/first.bundle";
  ASSERT_TRUE(client::WriteBundle(second, {(*events)[1]}).ok());
  ASSERT_TRUE(client::WriteBundle(first, {(*events)[0]}).ok());

  CtlRun held = Must("tablet", {"--json", "relay", second}, 3);
  EXPECT_EQ(JsonInt(held.out, "held"), 1) << held.out;
  CtlRun outbox = Must("tablet", {"outbox", "--state", "held"});
  EXPECT_NE(outbox.out.find("expects event 1"), std::string::npos) << outbox.out;

  // The first comes later: both go, in order.
  CtlRun done = Must("tablet", {"--json", "relay", first});
  EXPECT_EQ(JsonInt(done.out, "accepted"), 2) << done.out;
  EXPECT_EQ(JsonInt(done.out, "held"), 0) << done.out;
}

}  // namespace
}  // namespace fieldsync::testing
