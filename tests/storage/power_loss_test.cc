// Power loss, unlike SIGKILL, loses the page cache. The store runs on a
// PowerLossFs (tests/storage/power_loss_fs.h) while threads append; at a
// random point the power is cut, everything not synced is dropped (unsynced
// file tails, file creations, renames and deletions), and the store is
// reopened: every acknowledged record must be there at its offset with its
// payload, the log gapless up to the head, the chain intact. Many cycles on
// one growing store, bounded in time. This is the test that fails if the
// commit's synced WAL write ever stops being synced.
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "storage/event_store.h"
#include "tests/storage/power_loss_fs.h"
#include "tests/storage/test_util.h"

namespace fieldsync::storage {
namespace {

using ::fieldsync::storage::test::PowerLossFs;
using ::fieldsync::storage::test::ScopedTempDir;

constexpr int kMaxCycles = 100;
constexpr int kMinCycles = 20;
constexpr absl::Duration kTimeBudget = absl::Seconds(60);
constexpr int kAppenders = 3;
constexpr int kRecordsPerAppend = 4;

struct Acked {
  uint64_t offset = 0;
  std::string payload;
};

// What the appender threads had acknowledged: event_id -> where and what.
class AckLog {
 public:
  void Add(const std::string& event_id, uint64_t offset, std::string payload) {
    absl::MutexLock lock(&mu_);
    acked_[event_id] = Acked{offset, std::move(payload)};
    ++count_;
  }
  // Blocks until `count` acknowledgements arrived in total, or `timeout`.
  bool WaitFor(size_t count, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return count_ >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
  }
  size_t count() {
    absl::MutexLock lock(&mu_);
    return count_;
  }
  std::map<std::string, Acked> Snapshot() {
    absl::MutexLock lock(&mu_);
    return acked_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, Acked> acked_ ABSL_GUARDED_BY(mu_);
  size_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

StoreOptions Options(const std::shared_ptr<PowerLossFs>& fs) {
  StoreOptions options;
  options.file_system = fs;
  // Small memtables: flushes, SST files and MANIFEST updates happen within
  // the cycles, so the cut also lands on them.
  options.write_buffer_bytes = 256 << 10;
  options.block_cache_bytes = 8 << 20;
  // A cut makes the store read-only; it must not try to recover meanwhile.
  options.recovery_interval = absl::Hours(1);
  return options;
}

TEST(PowerLossTest, AcknowledgedRecordsSurviveRandomPowerCuts) {
  ScopedTempDir dir;
  const std::string path = dir.path() + "/store";
  const std::string trash = dir.path() + "/trash";
  std::filesystem::create_directories(trash);
  auto fs = std::make_shared<PowerLossFs>(trash);
  std::mt19937_64 random(20261201);
  AckLog acks;
  const absl::Time start = absl::Now();
  uint64_t dropped_bytes = 0;
  int cycles = 0;

  for (; cycles < kMaxCycles && (cycles < kMinCycles || absl::Now() - start < kTimeBudget);
       ++cycles) {
    auto store = OpenEventStore(path, Options(fs));
    ASSERT_TRUE(store.ok()) << "cycle " << cycles << ": " << store.status();

    // Everything acknowledged in earlier cycles survived the cut.
    const std::map<std::string, Acked> acked = acks.Snapshot();
    uint64_t highest = 0;
    for (const auto& [event_id, want] : acked) {
      auto offset = (*store)->LookupEventId(event_id);
      ASSERT_TRUE(offset.ok()) << offset.status();
      ASSERT_TRUE(offset->has_value())
          << "cycle " << cycles << ": acknowledged " << event_id << " (offset " << want.offset
          << ") is missing after a power cut; head " << (*store)->Head();
      ASSERT_EQ(**offset, want.offset) << event_id;
      auto record = (*store)->Read(want.offset);
      ASSERT_TRUE(record.ok()) << record.status();
      ASSERT_EQ(record->payload, want.payload) << event_id;
      highest = std::max(highest, want.offset);
    }
    ASSERT_GE((*store)->Head(), highest);
    if ((*store)->Head() > 0) {
      absl::Status chain = (*store)->VerifyChain(1, (*store)->Head());
      ASSERT_TRUE(chain.ok()) << "cycle " << cycles << ": " << chain;
    }

    // Append until the cut; each thread stops at its first failure.
    std::atomic<bool> stop{false};
    std::vector<std::thread> appenders;
    for (int t = 0; t < kAppenders; ++t) {
      appenders.emplace_back([&, t] {
        for (int i = 0; !stop.load(); ++i) {
          std::vector<AppendEntry> entries;
          for (int r = 0; r < kRecordsPerAppend; ++r) {
            AppendEntry e;
            e.event_id = absl::StrCat("c", cycles, "-t", t, "-", i, "-", r);
            e.subject = absl::StrCat("household/", t);
            e.payload = absl::StrCat("payload of ", e.event_id, std::string(200, 'x'));
            entries.push_back(std::move(e));
          }
          std::vector<std::pair<std::string, std::string>> sent;
          for (const AppendEntry& e : entries) sent.emplace_back(e.event_id, e.payload);
          auto results = (*store)->Append(std::move(entries));
          if (!results.ok()) return;
          for (size_t r = 0; r < results->size(); ++r) {
            acks.Add(sent[r].first, (*results)[r].offset, sent[r].second);
          }
        }
      });
    }
    // The cut lands after a random number of acknowledgements (0 to 60 more
    // appends), so at any point of the commit path and of RocksDB's flushes.
    const size_t target = acks.count() + random() % (60 * kRecordsPerAppend);
    acks.WaitFor(target, absl::Seconds(10));
    fs->Cut();
    stop.store(true);
    for (auto& thread : appenders) thread.join();
    store->reset();
    dropped_bytes += fs->LoseUnsyncedData();
  }

  // A last reopen checks the last cut.
  auto store = OpenEventStore(path, Options(fs));
  ASSERT_TRUE(store.ok()) << store.status();
  const std::map<std::string, Acked> acked = acks.Snapshot();
  for (const auto& [event_id, want] : acked) {
    auto offset = (*store)->LookupEventId(event_id);
    ASSERT_TRUE(offset.ok() && offset->has_value())
        << "acknowledged " << event_id << " is missing after the last power cut";
    ASSERT_EQ(**offset, want.offset);
  }
  ASSERT_TRUE((*store)->VerifyChain(1, (*store)->Head()).ok());
  std::printf("power_loss_test: %d cuts, %zu acknowledged records kept, head %llu, %llu unsynced "
              "bytes dropped\n",
              cycles, acked.size(), static_cast<unsigned long long>((*store)->Head()),
              static_cast<unsigned long long>(dropped_bytes));
}

}  // namespace
}  // namespace fieldsync::storage
