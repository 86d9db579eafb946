// A phone (a fieldctl process) killed with SIGKILL at random moments while
// recording and while syncing, 20 times: afterwards every recorded event is
// on the server exactly once, and nothing recorded and acknowledged to the
// user is missing.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "tests/clients/field_world.h"

namespace fieldsync::testing {
namespace {

class KillTest : public FieldWorld {};

// Event ids of a `--json outbox` listing, with their states.
std::map<std::string, std::string> OutboxStates(const std::string& json) {
  std::map<std::string, std::string> out;
  size_t at = 0;
  while ((at = json.find("{\"device_seq\"", at)) != std::string::npos) {
    size_t end = json.find('}', at);
    const std::string row = json.substr(at, end - at + 1);
    out[JsonField(row, "event_id")] = JsonField(row, "state");
    at = end;
  }
  return out;
}

TEST_F(KillTest, KilledWhileRecordingOrSyncingEveryRecordedEventLandsExactlyOnce) {
  Link("L1", "cadre1", kH1);
  Must("phone1", {"sync"});
  std::mt19937 random(20240301);  // Fixed: a failure replays.
  // Kill moments spread over a whole run: how long a recording and a sync
  // of a small burst take on this machine (for choosing moments only,
  // never asserted).
  auto timed = [&](std::vector<std::string> args) {
    auto start = std::chrono::steady_clock::now();
    Must("phone1", std::move(args));
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                 start)
        .count();
  };
  const std::vector<std::string> record = {"--json",
                                           "visit",
                                           "record",
                                           "--household",
                                           kH1,
                                           "--start",
                                           "2024-03-01T09:00:00+08:00",
                                           "--end",
                                           "2024-03-01T10:00:00+08:00"};
  const long record_us = timed(record);
  for (int i = 0; i < 2; ++i) Must("phone1", record);
  const long sync_us = timed({"sync"});
  std::set<std::string> acknowledged;  // Record commands that said "done".

  int killed = 0;
  for (int round = 0; round < 20; ++round) {
    // A burst of recordings, the last one killed at a random moment.
    for (int i = 0; i < 3; ++i) {
      CtlRun run = Must("phone1", {"--json", "visit", "record", "--household", kH1, "--start",
                                   "2024-03-01T09:00:00+08:00", "--end",
                                   "2024-03-01T10:00:00+08:00", "--notes", "走訪"});
      acknowledged.insert(JsonField(run.out, "event_id"));
    }
    const bool during_sync = round % 2 == 1;
    pid_t pid = during_sync ? Spawn("phone1", {"sync"}) : Spawn("phone1", record);
    // The kill lands anywhere from the start to a bit past the usual end.
    std::uniform_int_distribution<long> delay_us(0, (during_sync ? sync_us : record_us) * 5 / 4);
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(random)));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) ++killed;
  }
  // Let the phone finish: a sync with nothing killed.
  Must("phone1", {"sync"});
  CtlRun listing = Must("phone1", {"--json", "outbox"});
  std::map<std::string, std::string> states = OutboxStates(listing.out);
  for (const std::string& id : acknowledged) {
    EXPECT_TRUE(states.count(id)) << "acknowledged event " << id << " is not in the outbox";
  }
  std::map<std::string, int> on_server;
  for (const sync::LoggedEvent& stored : History(kH1)) {
    if (stored.event().has_visit_recorded()) ++on_server[stored.event().event_id()];
  }
  for (const auto& [id, state] : states) {
    EXPECT_TRUE(state == "accepted" || state == "duplicate") << id << " is " << state;
    EXPECT_EQ(on_server[id], 1) << "event " << id << " is on the server " << on_server[id]
                                << " times";
  }
  EXPECT_EQ(on_server.size(), states.size());
  EXPECT_GE(states.size(), acknowledged.size());
  // The kills must have hit running processes, or the test tested nothing.
  EXPECT_GT(killed, 5) << "only " << killed << " of 20 kills hit a running fieldctl";
  std::cout << "{\"kills_that_hit\": " << killed << ", \"events\": " << states.size()
            << ", \"acknowledged\": " << acknowledged.size() << ", \"record_us\": " << record_us
            << ", \"sync_us\": " << sync_us << "}\n";
}

}  // namespace
}  // namespace fieldsync::testing
