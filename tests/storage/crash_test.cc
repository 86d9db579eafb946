// Crash safety of the event store: crash_child appends from several threads
// and reports every acknowledged record on a pipe; this test SIGKILLs it at a
// random instant, reopens the store and checks what EventStore promises after
// a crash: acknowledged records are there, offsets are gapless, no event id is
// stored twice, the chain is intact. 20 kills on one growing store.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "storage/event_store.h"
#include "tests/storage/crash_protocol.h"
#include "tests/storage/test_util.h"

extern char** environ;

namespace fieldsync::storage {
namespace {

using ::fieldsync::storage::test::ScopedTempDir;

constexpr int kRuns = 20;
constexpr int kMinKillDelayMs = 5;
constexpr int kMaxKillDelayMs = 300;
// Safety net for waiting on the child's first acknowledgement.
constexpr absl::Duration kSafetyTimeout = absl::Seconds(30);

// What one child run acknowledged: offset -> event id.
using Acked = std::map<uint64_t, std::string>;

// Spawns crash_child on `store_path`, waits for its first acknowledged batch
// when `after_first_ack` (otherwise it may die while opening the store), lets
// it run `delay` longer, SIGKILLs it and collects every complete line it wrote.
void RunAndKillChild(const std::string& store_path, int run, bool after_first_ack,
                     std::chrono::milliseconds delay, Acked* acked) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0) << "pipe2: " << errno;
  posix_spawn_file_actions_t actions;
  ASSERT_EQ(posix_spawn_file_actions_init(&actions), 0);
  ASSERT_EQ(posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO), 0);
  std::string program = CRASH_CHILD_PATH;
  std::string path_arg = store_path;
  std::string run_arg = absl::StrCat(run);
  char* argv[] = {program.data(), path_arg.data(), run_arg.data(), nullptr};
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (spawned != 0) {
    close(fds[0]);
    FAIL() << "posix_spawn " << program << ": " << spawned;
  }

  // Drained on a thread so that a full pipe never stalls the child.
  std::string output;
  absl::Notification first_line_or_eof;
  std::thread reader([fd = fds[0], &output, &first_line_or_eof] {
    char buffer[1 << 16];
    while (true) {
      ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      output.append(buffer, static_cast<size_t>(n));
      if (!first_line_or_eof.HasBeenNotified() && output.find('\n') != std::string::npos) {
        first_line_or_eof.Notify();
      }
    }
    if (!first_line_or_eof.HasBeenNotified()) first_line_or_eof.Notify();
  });

  if (after_first_ack) {
    EXPECT_TRUE(first_line_or_eof.WaitForNotificationWithTimeout(kSafetyTimeout))
        << "the child acknowledged nothing";
  }
  // Not a synchronization: the delay only picks the instant of the crash.
  std::this_thread::sleep_for(delay);
  kill(pid, SIGKILL);
  int wait_status = 0;
  while (waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  reader.join();
  close(fds[0]);
  EXPECT_TRUE(WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL)
      << "the child ended by itself before the kill (wait status " << wait_status
      << "); see its stderr above";

  // A line cut by the kill has no '\n' and was never acknowledged.
  std::string_view rest = output;
  for (size_t eol = rest.find('\n'); eol != std::string_view::npos; eol = rest.find('\n')) {
    std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol + 1);
    auto parsed = crash::ParseAckLine(line);
    ASSERT_TRUE(parsed.has_value()) << "malformed line from the child: " << line;
    auto [it, inserted] = acked->emplace(parsed->first, parsed->second);
    EXPECT_TRUE(inserted) << "offset " << parsed->first << " acknowledged for both " << it->second
                          << " and " << parsed->second;
  }
}

// Checks the reopened store after one kill. `checked_head` is the head up to
// which records were checked one by one before (0: check all); `ids` holds
// their event ids and grows with the new ones.
void CheckStore(const std::string& store_path, const Acked& acked, uint64_t* checked_head,
                std::set<std::string>* ids) {
  absl::StatusOr<std::unique_ptr<EventStore>> opened = OpenEventStore(store_path);
  ASSERT_TRUE(opened.ok()) << "reopen after kill: " << opened.status();
  const EventStore& store = **opened;
  const uint64_t head = store.Head();
  ASSERT_GE(head, *checked_head) << "the head went back";
  if (!acked.empty()) {
    ASSERT_GE(head, acked.rbegin()->first) << "an acknowledged offset is past the head";
  }

  for (const auto& [offset, event_id] : acked) {
    absl::StatusOr<std::optional<uint64_t>> found = store.LookupEventId(event_id);
    ASSERT_TRUE(found.ok()) << found.status();
    EXPECT_EQ(*found, offset) << "acknowledged " << event_id << " at " << offset;
  }

  // Every offset up to the head, each with an id that maps back to it.
  uint64_t expected = *checked_head + 1;
  while (expected <= head) {
    ReadLimits limits;
    limits.max_records = 4096;
    absl::StatusOr<std::vector<LogRecord>> page = store.ReadAfter(expected - 1, limits);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_FALSE(page->empty()) << "nothing after " << expected - 1 << " but head is " << head;
    for (const LogRecord& record : *page) {
      ASSERT_EQ(record.offset, expected) << "gap in the log";
      ++expected;
      const std::string event_id(crash::PayloadEventId(record.payload));
      ASSERT_FALSE(event_id.empty()) << "offset " << record.offset << " holds a foreign payload";
      EXPECT_TRUE(ids->insert(event_id).second) << event_id << " stored twice";
      absl::StatusOr<std::optional<uint64_t>> found = store.LookupEventId(event_id);
      ASSERT_TRUE(found.ok()) << found.status();
      EXPECT_EQ(*found, record.offset) << event_id;
      auto ack = acked.find(record.offset);
      if (ack != acked.end()) {
        EXPECT_EQ(ack->second, event_id) << "offset " << record.offset;
      }
    }
  }
  absl::StatusOr<std::vector<LogRecord>> past = store.ReadAfter(head, ReadLimits{});
  ASSERT_TRUE(past.ok()) << past.status();
  EXPECT_TRUE(past->empty()) << "records past the head " << head;

  if (head > 0) {
    absl::Status chain = store.VerifyChain(1, head);
    EXPECT_TRUE(chain.ok()) << chain;
  }
  *checked_head = head;
}

TEST(CrashTest, StoreStaysConsistentAcrossRepeatedSigkills) {
  ScopedTempDir dir;
  const std::string store_path = dir.Join("store");
  const uint32_t seed = std::random_device()();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(kMinKillDelayMs, kMaxKillDelayMs);

  uint64_t checked_head = 0;
  std::set<std::string> ids;
  size_t total_acked = 0;
  for (int run = 0; run < kRuns; ++run) {
    SCOPED_TRACE(absl::StrCat("run ", run));
    Acked acked;
    // Every fourth run the kill may land while the child opens the store.
    ASSERT_NO_FATAL_FAILURE(RunAndKillChild(store_path, run, /*after_first_ack=*/run % 4 != 0,
                                            std::chrono::milliseconds(delay_ms(rng)), &acked));
    total_acked += acked.size();
    ASSERT_NO_FATAL_FAILURE(CheckStore(store_path, acked, &checked_head, &ids));
  }
  EXPECT_GT(total_acked, 0u);
  RecordProperty("acknowledged_records", static_cast<int>(total_acked));
  RecordProperty("log_records", static_cast<int>(checked_head));

  // Once more over the whole log, now that the kills are over.
  uint64_t from_start = 0;
  std::set<std::string> all_ids;
  ASSERT_NO_FATAL_FAILURE(CheckStore(store_path, Acked{}, &from_start, &all_ids));
  EXPECT_EQ(from_start, checked_head);
}

}  // namespace
}  // namespace fieldsync::storage
