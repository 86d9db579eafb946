// Tests of the EventStore contract (storage/event_store.h) against the RocksDB
// implementation, each in a fresh temporary directory. Races are set up with
// notifications, never with sleeps; timeouts are only safety nets.
#include "storage/event_store.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "base/big_endian.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "storage/key_format.h"
#include "storage/sha256.h"
#include "tests/storage/test_util.h"

namespace fieldsync::storage {
namespace {

using ::fieldsync::storage::test::MakeEntry;
using ::fieldsync::storage::test::ScopedTempDir;
using ::testing::ContainsRegex;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Safety net for waits on another thread; a passing run never gets near it.
constexpr absl::Duration kSafetyTimeout = absl::Seconds(30);

const std::string kZeroHash(keys::kHashSize, '\0');

// "1 2 1(dup)": the results of one Append, readable in a failure message.
std::string Describe(const std::vector<AppendResult>& results) {
  return absl::StrJoin(results, " ", [](std::string* out, const AppendResult& result) {
    absl::StrAppend(out, result.offset, result.duplicate ? "(dup)" : "");
  });
}

// Matches a message that names `number` in decimal, not as part of a longer
// number or of a hex digest.
::testing::Matcher<std::string> NamesNumber(uint64_t number) {
  return ContainsRegex(absl::StrCat("(^|[^0-9a-fA-F])", number, "($|[^0-9a-fA-F])"));
}

std::vector<uint64_t> Offsets(const std::vector<LogRecord>& records) {
  std::vector<uint64_t> offsets;
  for (const LogRecord& record : records) offsets.push_back(record.offset);
  return offsets;
}

// The hash key_format.h specifies: SHA-256(prev_hash | u64 offset | payload).
std::string ExpectedHash(const LogRecord& record) {
  std::string offset_bytes;
  base::AppendBe64(&offset_bytes, record.offset);
  return DigestBytes(Sha256({record.prev_hash, offset_bytes, record.payload}));
}

std::string Sha256Of(std::string_view content) { return DigestBytes(Sha256({content})); }

// Deterministic bytes that do not compress away.
std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
  return bytes;
}

// The answer of one AppendAsync, handed from the committer thread.
struct AsyncAppend {
  absl::Notification done;
  absl::StatusOr<std::vector<AppendResult>> result;

  EventStore::AppendCallback Callback() {
    return [this](absl::StatusOr<std::vector<AppendResult>> r) {
      result = std::move(r);
      done.Notify();
    };
  }
};

// Holds the committer thread inside the prepare hook of one append until
// Release(), so that the calls made meanwhile queue up and are taken together
// by the next group. prepare must not block in production; in a test it is the
// deterministic way to form a group.
class CommitterBlocker {
 public:
  // Appends `event_id` (async) and returns once the committer runs its hook.
  ::testing::AssertionResult Hold(EventStore& store, std::string event_id) {
    AppendEntry entry = MakeEntry(std::move(event_id), "blocker");
    entry.prepare = [this](CommitContext&) {
      running_.Notify();
      release_.WaitForNotificationWithTimeout(kSafetyTimeout);
      return absl::OkStatus();
    };
    store.AppendAsync({std::move(entry)}, appended_.Callback());
    started_ = true;
    if (!running_.WaitForNotificationWithTimeout(kSafetyTimeout)) {
      return ::testing::AssertionFailure() << "the committer never ran the blocking hook";
    }
    return ::testing::AssertionSuccess();
  }
  // Lets the committer go on; returns the blocking append's own answer.
  absl::StatusOr<std::vector<AppendResult>> Release() {
    release_.Notify();
    if (!appended_.done.WaitForNotificationWithTimeout(kSafetyTimeout)) {
      return absl::DeadlineExceededError("the blocking append never finished");
    }
    return appended_.result;
  }
  ~CommitterBlocker() {
    if (!release_.HasBeenNotified()) release_.Notify();
    // The hook and the callback refer to this object: outlive them, also when
    // a test stopped early.
    if (started_) appended_.done.WaitForNotificationWithTimeout(kSafetyTimeout);
  }

 private:
  bool started_ = false;
  absl::Notification running_;
  absl::Notification release_;
  AsyncAppend appended_;
};

// A closed store's directory opened with plain RocksDB, every column family
// listed, for reading and editing the on-disk format directly.
class RawDb {
 public:
  // Fails the test (and leaves db() null) if the directory does not open.
  explicit RawDb(const std::string& path) {
    rocksdb::DBOptions db_options;
    std::vector<std::string> names;
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, path, &names);
    if (!s.ok()) {
      ADD_FAILURE() << "ListColumnFamilies(" << path << "): " << s.ToString();
      return;
    }
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const std::string& name : names) {
      descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
    rocksdb::DB* raw = nullptr;
    s = rocksdb::DB::Open(db_options, path, descriptors, &handles_, &raw);
    if (!s.ok()) {
      ADD_FAILURE() << "rocksdb::DB::Open(" << path << "): " << s.ToString();
      return;
    }
    db_.reset(raw);
  }
  ~RawDb() {
    if (db_ == nullptr) return;
    for (rocksdb::ColumnFamilyHandle* handle : handles_) {
      EXPECT_TRUE(db_->DestroyColumnFamilyHandle(handle).ok());
    }
    rocksdb::Status s = db_->Close();
    EXPECT_TRUE(s.ok()) << s.ToString();
  }

  rocksdb::DB* db() const { return db_.get(); }

  // The family named `name`, or null (and a test failure) if there is none.
  rocksdb::ColumnFamilyHandle* Family(std::string_view name) const {
    for (rocksdb::ColumnFamilyHandle* handle : handles_) {
      if (handle->GetName() == name) return handle;
    }
    ADD_FAILURE() << "no column family \"" << name << "\"";
    return nullptr;
  }

  // The value of `key` in family `name`; nullopt if absent or on error.
  std::optional<std::string> Get(std::string_view name, const std::string& key) const {
    rocksdb::ColumnFamilyHandle* family = Family(name);
    if (db_ == nullptr || family == nullptr) return std::nullopt;
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), family, key, &value);
    if (s.IsNotFound()) return std::nullopt;
    EXPECT_TRUE(s.ok()) << s.ToString();
    return s.ok() ? std::optional<std::string>(std::move(value)) : std::nullopt;
  }

  void Put(std::string_view name, const std::string& key, const std::string& value) {
    rocksdb::ColumnFamilyHandle* family = Family(name);
    if (db_ == nullptr || family == nullptr) return;
    rocksdb::Status s = db_->Put(SyncWrite(), family, key, value);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }

  void Delete(std::string_view name, const std::string& key) {
    rocksdb::ColumnFamilyHandle* family = Family(name);
    if (db_ == nullptr || family == nullptr) return;
    rocksdb::Status s = db_->Delete(SyncWrite(), family, key);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }

 private:
  static rocksdb::WriteOptions SyncWrite() {
    rocksdb::WriteOptions options;
    options.sync = true;
    return options;
  }

  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::unique_ptr<rocksdb::DB> db_;
};

// Appends each entry as its own call while `blocker` holds the committer (so
// that the calls form one group, in order), releases it and waits for every
// call's answer.
::testing::AssertionResult AppendBehind(EventStore& store, CommitterBlocker& blocker,
                                        std::vector<std::pair<AppendEntry, AsyncAppend*>> calls) {
  for (auto& [entry, call] : calls) store.AppendAsync({std::move(entry)}, call->Callback());
  if (absl::Status released = blocker.Release().status(); !released.ok()) {
    return ::testing::AssertionFailure() << released;
  }
  for (auto& [entry, call] : calls) {
    if (!call->done.WaitForNotificationWithTimeout(kSafetyTimeout)) {
      return ::testing::AssertionFailure() << "a call never finished";
    }
  }
  return ::testing::AssertionSuccess();
}

// Runs `threads` threads at once, each making `calls` Append calls of
// make(thread, call); the first error of each thread, OK if none.
std::vector<absl::Status> AppendFromThreads(
    EventStore& store, int threads, int calls,
    const std::function<std::vector<AppendEntry>(int thread, int call)>& make) {
  std::vector<absl::Status> failures(threads);
  std::vector<std::thread> running;
  for (int t = 0; t < threads; ++t) {
    running.emplace_back([&, t] {
      for (int call = 0; call < calls; ++call) {
        absl::StatusOr<std::vector<AppendResult>> results = store.Append(make(t, call));
        if (!results.ok()) {
          failures[t] = results.status();
          return;
        }
      }
    });
  }
  for (std::thread& thread : running) thread.join();
  return failures;
}

class EventStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(Open()); }

  std::string StorePath() const { return dir_.Join("store"); }

  // (Re)opens the store at StorePath().
  void Open(StoreOptions options = {}) {
    store_.reset();
    ASSERT_OK_AND_ASSIGN(store_, OpenEventStore(StorePath(), std::move(options)));
  }
  void Close() { store_.reset(); }

  // Appends and returns the results; an error fails the test and returns {}.
  std::vector<AppendResult> MustAppend(std::vector<AppendEntry> entries) {
    absl::StatusOr<std::vector<AppendResult>> results = store_->Append(std::move(entries));
    EXPECT_OK(results);
    if (!results.ok()) return {};
    return *std::move(results);
  }

  // Every record of `store`, read page by page.
  static std::vector<LogRecord> ReadAll(const EventStore& store) {
    std::vector<LogRecord> all;
    while (true) {
      uint64_t after = all.empty() ? 0 : all.back().offset;
      absl::StatusOr<std::vector<LogRecord>> page = store.ReadAfter(after, ReadLimits{});
      EXPECT_OK(page);
      if (!page.ok() || page->empty()) return all;
      for (LogRecord& record : *page) all.push_back(std::move(record));
    }
  }
  std::vector<LogRecord> ReadAll() const { return ReadAll(*store_); }

  std::optional<uint64_t> Lookup(std::string_view event_id) const {
    absl::StatusOr<std::optional<uint64_t>> offset = store_->LookupEventId(event_id);
    EXPECT_OK(offset);
    return offset.ok() ? *offset : std::nullopt;
  }

  std::optional<std::string> Projection(std::string_view key) const {
    absl::StatusOr<std::optional<std::string>> value = store_->GetProjection(key);
    EXPECT_OK(value);
    return value.ok() ? *value : std::nullopt;
  }

  ScopedTempDir dir_;
  std::unique_ptr<EventStore> store_;
};

// ---------------------------------------------------------------- Append

TEST_F(EventStoreTest, AppendAssignsContiguousOffsetsFromOneAndChainsHashes) {
  EXPECT_EQ(store_->Head(), 0u);
  ASSERT_OK_AND_ASSIGN(std::vector<LogRecord> none, store_->ReadAfter(0, ReadLimits{}));
  EXPECT_THAT(none, IsEmpty());

  EXPECT_EQ(Describe(MustAppend(
                {MakeEntry("e1", "one"), MakeEntry("e2", "two"), MakeEntry("e3", "three")})),
            "1 2 3");
  EXPECT_EQ(Describe(MustAppend({MakeEntry("e4", "four"), MakeEntry("e5", "five")})), "4 5");
  EXPECT_EQ(store_->Head(), 5u);
  EXPECT_GT(store_->ApproximateSizeBytes(), 0u);

  const std::vector<std::string> payloads = {"one", "two", "three", "four", "five"};
  for (uint64_t offset = 1; offset <= 5; ++offset) {
    ASSERT_OK_AND_ASSIGN(LogRecord record, store_->Read(offset));
    EXPECT_EQ(record.offset, offset);
    EXPECT_EQ(record.payload, payloads[offset - 1]);
  }
  EXPECT_EQ(store_->Read(6).status().code(), absl::StatusCode::kNotFound);

  std::vector<LogRecord> all = ReadAll();
  ASSERT_EQ(all.size(), 5u);
  for (size_t i = 0; i < all.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("offset ", all[i].offset));
    EXPECT_EQ(all[i].offset, i + 1);
    EXPECT_EQ(all[i].payload, payloads[i]);
    EXPECT_EQ(all[i].hash.size(), keys::kHashSize);
    EXPECT_EQ(all[i].prev_hash, i == 0 ? kZeroHash : all[i - 1].hash);
    EXPECT_EQ(all[i].hash, ExpectedHash(all[i]));
  }

  ASSERT_OK_AND_ASSIGN(std::vector<LogRecord> tail, store_->ReadAfter(3, ReadLimits{}));
  EXPECT_THAT(Offsets(tail), ElementsAre(4, 5));
  ASSERT_OK_AND_ASSIGN(std::vector<LogRecord> past, store_->ReadAfter(5, ReadLimits{}));
  EXPECT_THAT(past, IsEmpty());
}

TEST_F(EventStoreTest, DuplicateEventIdAnswersOriginalOffsetAndWritesNothing) {
  AppendEntry repeated = MakeEntry("a", "second a", "household/dup", "620102001001");
  repeated.projections.push_back({"proj/dup-in-batch", "x"});
  EXPECT_EQ(
      Describe(MustAppend({MakeEntry("a", "first a"), MakeEntry("b", "b"), std::move(repeated)})),
      "1 2 1(dup)");
  EXPECT_EQ(store_->Head(), 2u);
  EXPECT_EQ(Projection("proj/dup-in-batch"), std::nullopt);

  AppendEntry again = MakeEntry("b", "second b", "household/dup");
  again.projections.push_back({"proj/dup-across", "y"});
  EXPECT_EQ(Describe(MustAppend({std::move(again), MakeEntry("c", "c")})), "2(dup) 3");
  EXPECT_EQ(store_->Head(), 3u);
  EXPECT_EQ(Projection("proj/dup-across"), std::nullopt);

  // A call made only of duplicates writes nothing at all.
  EXPECT_EQ(Describe(MustAppend({MakeEntry("a", "third a"), MakeEntry("c", "c")})),
            "1(dup) 3(dup)");
  EXPECT_EQ(store_->Head(), 3u);

  std::vector<LogRecord> all = ReadAll();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].payload, "first a");
  EXPECT_EQ(all[1].payload, "b");
  EXPECT_EQ(all[2].payload, "c");
  // Nor were the duplicates indexed.
  ASSERT_OK_AND_ASSIGN(std::vector<LogRecord> dup_subject,
                       store_->ReadSubject("household/dup", 0, ReadLimits{}));
  EXPECT_THAT(dup_subject, IsEmpty());
  ASSERT_OK_AND_ASSIGN(std::vector<LogRecord> dup_scope,
                       store_->ReadScope("620102", 0, ReadLimits{}));
  EXPECT_THAT(dup_scope, IsEmpty());
  EXPECT_OK(store_->VerifyChain(1, 3));
}

TEST_F(EventStoreTest, ReappendAfterReopenIsIdempotentAndChainContinues) {
  std::vector<AppendEntry> batch;
  for (int i = 1; i <= 5; ++i)
    batch.push_back(MakeEntry(absl::StrCat("e", i), absl::StrCat("p", i)));
  EXPECT_EQ(Describe(MustAppend(batch)), "1 2 3 4 5");
  ASSERT_OK_AND_ASSIGN(LogRecord fifth, store_->Read(5));

  Close();
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(store_->Head(), 5u);
  EXPECT_EQ(Lookup("e3"), 3u);
  EXPECT_EQ(Describe(MustAppend(batch)), "1(dup) 2(dup) 3(dup) 4(dup) 5(dup)");
  EXPECT_EQ(store_->Head(), 5u);

  EXPECT_EQ(Describe(MustAppend({MakeEntry("e6", "p6"), MakeEntry("e7", "p7")})), "6 7");
  ASSERT_OK_AND_ASSIGN(LogRecord sixth, store_->Read(6));
  EXPECT_EQ(sixth.prev_hash, fifth.hash);
  EXPECT_OK(store_->VerifyChain(1, 7));

  Close();
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(store_->Head(), 7u);
  EXPECT_EQ(Describe(MustAppend({MakeEntry("e7", "again"), MakeEntry("e8", "p8")})), "7(dup) 8");
  EXPECT_OK(store_->VerifyChain(1, 8));
}

TEST_F(EventStoreTest, ConcurrentAppendersGetGaplessDuplicateFreeOffsets) {
  constexpr int kThreads = 8;
  constexpr int kAppendsPerThread = 200;
  struct Appended {
    uint64_t offset;
    std::string payload;
  };
  std::vector<std::vector<Appended>> appended(kThreads);
  std::vector<absl::Status> failures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &appended, &failures] {
      std::mt19937 rng(t);
      std::uniform_int_distribution<int> batch_size(1, 20);
      int seq = 0;
      for (int call = 0; call < kAppendsPerThread; ++call) {
        std::vector<AppendEntry> entries;
        std::vector<std::string> payloads;
        for (int n = batch_size(rng); n > 0; --n) {
          std::string id = absl::StrCat("t", t, "-", seq++);
          std::string payload = absl::StrCat(id, ":", std::string(rng() % 64, 'x'));
          payloads.push_back(payload);
          entries.push_back(MakeEntry(std::move(id), std::move(payload)));
        }
        absl::StatusOr<std::vector<AppendResult>> results = store_->Append(std::move(entries));
        if (!results.ok()) {
          failures[t] = results.status();
          return;
        }
        if (results->size() != payloads.size()) {
          failures[t] = absl::InternalError(
              absl::StrCat("got ", results->size(), " results for ", payloads.size(), " entries"));
          return;
        }
        for (size_t i = 0; i < payloads.size(); ++i) {
          if ((*results)[i].duplicate) {
            failures[t] = absl::InternalError(
                absl::StrCat("unique id reported duplicate at ", (*results)[i].offset));
            return;
          }
          appended[t].push_back({(*results)[i].offset, payloads[i]});
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& failure : failures) ASSERT_OK(failure);

  std::map<uint64_t, std::string> by_offset;
  for (int t = 0; t < kThreads; ++t) {
    uint64_t previous = 0;
    for (const Appended& a : appended[t]) {
      // A call that starts after another returned gets higher offsets.
      EXPECT_GT(a.offset, previous) << "thread " << t;
      previous = a.offset;
      EXPECT_TRUE(by_offset.emplace(a.offset, a.payload).second)
          << "offset " << a.offset << " handed out twice";
    }
  }
  const uint64_t total = by_offset.size();
  ASSERT_GT(total, 0u);
  EXPECT_EQ(by_offset.begin()->first, 1u);
  EXPECT_EQ(by_offset.rbegin()->first, total) << "offsets are not gapless";
  EXPECT_EQ(store_->Head(), total);

  std::vector<LogRecord> all = ReadAll();
  ASSERT_EQ(all.size(), total);
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_EQ(all[i].offset, i + 1);
    EXPECT_EQ(all[i].payload, by_offset[all[i].offset]) << "offset " << all[i].offset;
  }
  EXPECT_OK(store_->VerifyChain(1, total));
}

TEST_F(EventStoreTest, ConcurrentAppendsOfTheSameEventIdStoreItOnce) {
  constexpr int kThreads = 8;
  constexpr int kIds = 200;
  // Every thread appends every id, in its own order and batch sizes, all at
  // once, so that the same id meets itself within one group and across groups.
  absl::Notification start;
  std::vector<std::map<std::string, AppendResult>> answers(kThreads);
  std::vector<absl::Status> failures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &start, &answers, &failures] {
      std::vector<int> order(kIds);
      for (int i = 0; i < kIds; ++i) order[i] = i;
      std::mt19937 rng(100 + t);
      std::shuffle(order.begin(), order.end(), rng);
      std::uniform_int_distribution<int> batch_size(1, 10);
      start.WaitForNotification();
      for (size_t next = 0; next < order.size();) {
        std::vector<AppendEntry> entries;
        std::vector<std::string> ids;
        for (int n = batch_size(rng); n > 0 && next < order.size(); --n) {
          ids.push_back(absl::StrCat("shared-", order[next++]));
          entries.push_back(MakeEntry(ids.back(), "payload of " + ids.back()));
        }
        absl::StatusOr<std::vector<AppendResult>> results = store_->Append(std::move(entries));
        if (!results.ok()) {
          failures[t] = results.status();
          return;
        }
        for (size_t i = 0; i < ids.size() && i < results->size(); ++i) {
          answers[t][ids[i]] = (*results)[i];
        }
      }
    });
  }
  start.Notify();
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& failure : failures) ASSERT_OK(failure);

  std::map<uint64_t, std::string> by_offset;
  for (int i = 0; i < kIds; ++i) {
    const std::string id = absl::StrCat("shared-", i);
    SCOPED_TRACE(id);
    int written = 0;
    std::set<uint64_t> offsets;
    for (int t = 0; t < kThreads; ++t) {
      ASSERT_EQ(answers[t].count(id), 1u);
      offsets.insert(answers[t][id].offset);
      if (!answers[t][id].duplicate) ++written;
    }
    EXPECT_EQ(written, 1) << "threads that were told they wrote it";
    ASSERT_EQ(offsets.size(), 1u) << "threads disagree on its offset";
    EXPECT_EQ(Lookup(id), *offsets.begin());
    EXPECT_TRUE(by_offset.emplace(*offsets.begin(), id).second);
  }
  EXPECT_EQ(store_->Head(), static_cast<uint64_t>(kIds));
  std::vector<LogRecord> all = ReadAll();
  ASSERT_EQ(all.size(), static_cast<size_t>(kIds));
  for (const LogRecord& record : all) {
    EXPECT_EQ(record.payload, "payload of " + by_offset[record.offset]);
  }
  EXPECT_OK(store_->VerifyChain(1, kIds));
}

TEST_F(EventStoreTest, AppendsLargerThanTheGroupLimitsAreCommittedWhole) {
  absl::Mutex mu;
  std::vector<GroupCommitInfo> groups;
  StoreOptions options;
  options.max_group_records = 4;
  options.max_group_bytes = 1000;
  options.on_group_committed = [&](const GroupCommitInfo& info) {
    absl::MutexLock lock(&mu);
    groups.push_back(info);
  };
  ASSERT_NO_FATAL_FAILURE(Open(std::move(options)));

  std::vector<AppendEntry> big;
  for (int i = 1; i <= 10; ++i)
    big.push_back(MakeEntry(absl::StrCat("big", i), std::string(300, 'b')));
  EXPECT_EQ(Describe(MustAppend(std::move(big))), "1 2 3 4 5 6 7 8 9 10");

  std::vector<std::mt19937> rngs;
  for (int t = 0; t < 4; ++t) rngs.emplace_back(t);
  std::vector<absl::Status> failures =
      AppendFromThreads(*store_, 4, 20, [&rngs](int t, int call) {
        std::vector<AppendEntry> entries;
        for (int n = 1 + rngs[t]() % 6; n > 0; --n) {
          entries.push_back(
              MakeEntry(absl::StrCat("t", t, "-", call, "-", n), std::string(300, 'c')));
        }
        return entries;
      });
  for (const absl::Status& failure : failures) ASSERT_OK(failure);

  const uint64_t head = store_->Head();
  EXPECT_EQ(ReadAll().size(), head);
  EXPECT_OK(store_->VerifyChain(1, head));
  Close();  // No more callbacks into this test's locals.
  absl::MutexLock lock(&mu);
  for (const GroupCommitInfo& group : groups) {
    // Only a group of a single call may exceed the record limit.
    if (group.appends > 1) {
      EXPECT_LE(group.records, 4u) << "group up to head " << group.head;
    }
  }
}

TEST_F(EventStoreTest, GroupCommittedCallbackDescribesEachGroup) {
  absl::Mutex mu;
  std::vector<GroupCommitInfo> groups;
  StoreOptions options;
  options.on_group_committed = [&](const GroupCommitInfo& info) {
    absl::MutexLock lock(&mu);
    groups.push_back(info);
  };
  ASSERT_NO_FATAL_FAILURE(Open(std::move(options)));

  auto await_head = [&](uint64_t head) {
    absl::MutexLock lock(&mu);
    auto reached = [&] { return !groups.empty() && groups.back().head == head; };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&reached), kSafetyTimeout));
    return groups.empty() ? GroupCommitInfo{} : groups.back();
  };
  MustAppend({MakeEntry("a", "1"), MakeEntry("b", "2"), MakeEntry("c", "3")});
  GroupCommitInfo first = await_head(3);
  EXPECT_EQ(first.appends, 1u);
  EXPECT_EQ(first.records, 3u);
  EXPECT_GT(first.bytes, 0u);

  MustAppend({MakeEntry("a", "again"), MakeEntry("d", "4")});
  GroupCommitInfo second = await_head(4);
  EXPECT_EQ(second.appends, 1u);
  EXPECT_EQ(second.records, 1u) << "duplicates are not records written";
  Close();  // No more callbacks into this test's locals.
}

TEST_F(EventStoreTest, AppendAsyncDeliversResultsToCallback) {
  AsyncAppend first;
  store_->AppendAsync({MakeEntry("a", "pa"), MakeEntry("b", "pb")}, first.Callback());
  ASSERT_TRUE(first.done.WaitForNotificationWithTimeout(kSafetyTimeout));
  ASSERT_OK(first.result);
  EXPECT_EQ(Describe(*first.result), "1 2");
  ASSERT_OK_AND_ASSIGN(LogRecord second, store_->Read(2));
  EXPECT_EQ(second.payload, "pb");

  AsyncAppend duplicate;
  store_->AppendAsync({MakeEntry("a", "again"), MakeEntry("c", "pc")}, duplicate.Callback());
  ASSERT_TRUE(duplicate.done.WaitForNotificationWithTimeout(kSafetyTimeout));
  ASSERT_OK(duplicate.result);
  EXPECT_EQ(Describe(*duplicate.result), "1(dup) 3");

  AsyncAppend empty;
  store_->AppendAsync({}, empty.Callback());
  ASSERT_TRUE(empty.done.WaitForNotificationWithTimeout(kSafetyTimeout));
  EXPECT_EQ(empty.result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Head(), 3u);
}

// ---------------------------------------------------------------- Validation

TEST_F(EventStoreTest, MalformedAppendIsInvalidArgumentAndWritesNothing) {
  StoreOptions options;
  options.max_record_bytes = 64;
  ASSERT_NO_FATAL_FAILURE(Open(std::move(options)));
  EXPECT_EQ(Describe(MustAppend({MakeEntry("seed", "p")})), "1");

  auto good = [](std::string id) {
    AppendEntry entry = MakeEntry(id, "ok", "household/" + id, "620102001001");
    entry.projections.push_back({"proj/" + id, "v"});
    return entry;
  };
  struct Case {
    std::string name;
    std::vector<AppendEntry> entries;
  };
  std::vector<Case> cases;
  cases.push_back({"empty batch", {}});
  cases.push_back({"missing event_id", {MakeEntry("", "p")}});
  cases.push_back({"oversized event_id", {MakeEntry(std::string(129, 'e'), "p")}});
  cases.push_back({"oversized payload", {MakeEntry("big", std::string(65, 'x'))}});
  cases.push_back({"short area code", {MakeEntry("area11", "p", "", "62010200100")}});
  cases.push_back({"long area code", {MakeEntry("area13", "p", "", "6201020010011")}});
  cases.push_back({"non-digit area code", {MakeEntry("areax", "p", "", "62010200100a")}});
  cases.push_back({"subject with NUL", {MakeEntry("nul", "p", std::string("household/\0x", 12))}});
  cases.push_back({"oversized subject", {MakeEntry("longsubject", "p", std::string(513, 's'))}});
  {
    std::vector<AppendEntry> last_bad;
    last_bad.push_back(good("g1"));
    last_bad.push_back(good("g2"));
    last_bad.push_back(MakeEntry("g3", std::string(65, 'x')));
    cases.push_back({"only the last entry has an oversized payload", std::move(last_bad)});
  }
  {
    std::vector<AppendEntry> last_bad;
    last_bad.push_back(good("g4"));
    last_bad.push_back(good("g5"));
    last_bad.push_back(MakeEntry("g6", "p", "", "6201"));
    cases.push_back({"only the last entry has a bad area code", std::move(last_bad)});
  }
  {
    std::vector<AppendEntry> last_bad;
    last_bad.push_back(good("g7"));
    last_bad.push_back(MakeEntry("", "p"));
    cases.push_back({"only the last entry lacks an event_id", std::move(last_bad)});
  }

  for (Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<std::string> ids;
    for (const AppendEntry& entry : c.entries) {
      if (!entry.event_id.empty() && entry.event_id.size() <= 128) ids.push_back(entry.event_id);
    }
    absl::StatusOr<std::vector<AppendResult>> results = store_->Append(std::move(c.entries));
    EXPECT_EQ(results.status().code(), absl::StatusCode::kInvalidArgument) << results.status();
    EXPECT_EQ(store_->Head(), 1u);
    for (const std::string& id : ids) {
      EXPECT_EQ(Lookup(id), std::nullopt) << id;
      EXPECT_EQ(Projection("proj/" + id), std::nullopt) << id;
      ASSERT_OK_AND_ASSIGN(std::vector<LogRecord> indexed,
                           store_->ReadSubject("household/" + id, 0, ReadLimits{}));
      EXPECT_THAT(indexed, IsEmpty()) << id;
    }
  }
  ASSERT_OK_AND_ASSIGN(std::vector<LogRecord> scope, store_->ReadScope("620102", 0, ReadLimits{}));
  EXPECT_THAT(scope, IsEmpty());

  // The limits are inclusive, and ids of rejected calls were never taken.
  EXPECT_EQ(Describe(MustAppend({MakeEntry(std::string(128, 'e'), std::string(64, 'x'),
                                           std::string(512, 's'), "620102001001")})),
            "2");
  EXPECT_EQ(Describe(MustAppend({good("g1"), good("g7")})), "3 4");
  EXPECT_OK(store_->VerifyChain(1, 4));
}

TEST_F(EventStoreTest, AppendOfMoreThanMaxAppendRecordsIsInvalidArgument) {
  StoreOptions options;
  options.max_append_records = 3;
  ASSERT_NO_FATAL_FAILURE(Open(std::move(options)));
  absl::StatusOr<std::vector<AppendResult>> results = store_->Append(
      {MakeEntry("a", "1"), MakeEntry("b", "2"), MakeEntry("c", "3"), MakeEntry("d", "4")});
  EXPECT_EQ(results.status().code(), absl::StatusCode::kInvalidArgument) << results.status();
  EXPECT_EQ(store_->Head(), 0u);
  EXPECT_EQ(Lookup("a"), std::nullopt);
  EXPECT_EQ(Describe(MustAppend({MakeEntry("a", "1"), MakeEntry("b", "2"), MakeEntry("c", "3")})),
            "1 2 3");
}

// ---------------------------------------------------------------- Reads

TEST_F(EventStoreTest, LookupEventIdFindsStoredIdsOnly) {
  MustAppend({MakeEntry("x", "1"), MakeEntry("y", "2")});
  EXPECT_EQ(Lookup("x"), 1u);
  EXPECT_EQ(Lookup("y"), 2u);
  EXPECT_EQ(Lookup("z"), std::nullopt);
  EXPECT_EQ(Lookup("x "), std::nullopt);
}

TEST_F(EventStoreTest, ReadSubjectAndReadScopeFilterInOffsetOrder) {
  MustAppend({
      MakeEntry("e1", "p1", "household/A", "620102001001"),
      MakeEntry("e2", "p2", "household/B", "620102001002"),
      MakeEntry("e3", "p3", "household/A", "620102002001"),
      MakeEntry("e4", "p4"),
  });
  MustAppend({
      MakeEntry("e5", "p5", "household/AB", "620103001001"),
      MakeEntry("e6", "p6", "household/A", "620102001001"),
      MakeEntry("e7", "p7", "household/", "630102001001"),
  });

  auto subject = [this](std::string_view s, uint64_t after) {
    absl::StatusOr<std::vector<LogRecord>> records = store_->ReadSubject(s, after, ReadLimits{});
    EXPECT_OK(records);
    std::vector<uint64_t> offsets;
    if (!records.ok()) return offsets;
    for (const LogRecord& record : *records) {
      EXPECT_EQ(record.payload, absl::StrCat("p", record.offset));
      offsets.push_back(record.offset);
    }
    return offsets;
  };
  EXPECT_THAT(subject("household/A", 0), ElementsAre(1, 3, 6));
  EXPECT_THAT(subject("household/A", 1), ElementsAre(3, 6));
  EXPECT_THAT(subject("household/A", 3), ElementsAre(6));
  EXPECT_THAT(subject("household/A", 6), IsEmpty());
  EXPECT_THAT(subject("household/AB", 0), ElementsAre(5));
  EXPECT_THAT(subject("household/", 0), ElementsAre(7));
  EXPECT_THAT(subject("household/B", 0), ElementsAre(2));
  EXPECT_THAT(subject("household/C", 0), IsEmpty());

  auto scope = [this](std::string_view prefix, uint64_t after) {
    absl::StatusOr<std::vector<LogRecord>> records = store_->ReadScope(prefix, after, ReadLimits{});
    EXPECT_OK(records);
    std::vector<uint64_t> offsets;
    if (!records.ok()) return offsets;
    for (const LogRecord& record : *records) {
      EXPECT_EQ(record.payload, absl::StrCat("p", record.offset));
      offsets.push_back(record.offset);
    }
    return offsets;
  };
  // County (6 digits).
  EXPECT_THAT(scope("620102", 0), ElementsAre(1, 2, 3, 6));
  EXPECT_THAT(scope("620102", 2), ElementsAre(3, 6));
  EXPECT_THAT(scope("620103", 0), ElementsAre(5));
  EXPECT_THAT(scope("630102", 0), ElementsAre(7));
  EXPECT_THAT(scope("999999", 0), IsEmpty());
  // Township (9 digits).
  EXPECT_THAT(scope("620102001", 0), ElementsAre(1, 2, 6));
  EXPECT_THAT(scope("620102001", 1), ElementsAre(2, 6));
  EXPECT_THAT(scope("620102002", 0), ElementsAre(3));
  // Village (12 digits).
  EXPECT_THAT(scope("620102001001", 0), ElementsAre(1, 6));
  EXPECT_THAT(scope("620102001001", 1), ElementsAre(6));
  EXPECT_THAT(scope("620102001002", 0), ElementsAre(2));

  for (std::string_view unsupported :
       {"", "6", "6201", "62010200", "6201020010", "6201020010011"}) {
    EXPECT_EQ(store_->ReadScope(unsupported, 0, ReadLimits{}).status().code(),
              absl::StatusCode::kInvalidArgument)
        << "prefix \"" << unsupported << "\"";
  }
}

TEST_F(EventStoreTest, ReadLimitsBoundRecordsAndBytesButAlwaysReturnOneRecord) {
  for (int i = 1; i <= 5; ++i) {
    MustAppend({MakeEntry(absl::StrCat("e", i), std::string(100, 'a' + i), "s", "620102001001")});
  }
  using Reader = std::function<absl::StatusOr<std::vector<LogRecord>>(uint64_t, ReadLimits)>;
  const std::vector<std::pair<std::string, Reader>> readers = {
      {"ReadAfter", [this](uint64_t after, ReadLimits l) { return store_->ReadAfter(after, l); }},
      {"ReadSubject",
       [this](uint64_t after, ReadLimits l) { return store_->ReadSubject("s", after, l); }},
      {"ReadScope",
       [this](uint64_t after, ReadLimits l) { return store_->ReadScope("620102", after, l); }},
  };
  auto limits = [](size_t max_records, size_t max_bytes) {
    ReadLimits l;
    l.max_records = max_records;
    l.max_bytes = max_bytes;
    return l;
  };
  for (const auto& [name, read] : readers) {
    SCOPED_TRACE(name);
    auto offsets = [&](uint64_t after, ReadLimits l) {
      absl::StatusOr<std::vector<LogRecord>> records = read(after, l);
      EXPECT_OK(records);
      return records.ok() ? Offsets(*records) : std::vector<uint64_t>{};
    };
    EXPECT_THAT(offsets(0, limits(1000, 1 << 20)), ElementsAre(1, 2, 3, 4, 5));
    EXPECT_THAT(offsets(0, limits(2, 1 << 20)), ElementsAre(1, 2));
    EXPECT_THAT(offsets(1, limits(3, 1 << 20)), ElementsAre(2, 3, 4));
    EXPECT_THAT(offsets(0, limits(1000, 250)), ElementsAre(1, 2));
    EXPECT_THAT(offsets(0, limits(1000, 200)), ElementsAre(1, 2));
    EXPECT_THAT(offsets(0, limits(1000, 50)), ElementsAre(1));
    EXPECT_THAT(offsets(3, limits(1000, 50)), ElementsAre(4));
    EXPECT_THAT(offsets(0, limits(1000, 0)), ElementsAre(1));
    EXPECT_THAT(offsets(5, limits(1000, 50)), IsEmpty());
  }
}

// ---------------------------------------------------------------- Projections

TEST_F(EventStoreTest, ProjectionsAreCommittedWithTheRecord) {
  AppendEntry first = MakeEntry("e1", "p1");
  first.projections = {{"household/1", "v1"}, {"household/2", "v2"}};
  MustAppend({std::move(first)});
  EXPECT_EQ(Projection("household/1"), "v1");
  EXPECT_EQ(Projection("household/2"), "v2");
  EXPECT_EQ(Projection("household/3"), std::nullopt);

  AppendEntry second = MakeEntry("e2", "p2");
  second.projections = {{"household/1", std::nullopt}, {"household/2", "v2b"}};
  MustAppend({std::move(second)});
  EXPECT_EQ(Projection("household/1"), std::nullopt);
  EXPECT_EQ(Projection("household/2"), "v2b");

  Close();
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(Projection("household/1"), std::nullopt);
  EXPECT_EQ(Projection("household/2"), "v2b");
}

TEST_F(EventStoreTest, ScanProjectionsHonoursPrefixStartAfterAndLimit) {
  AppendEntry entry = MakeEntry("e1", "p1");
  entry.projections = {
      {"a/2", "v-a2"}, {"b/1", "v-b1"}, {"a/1", "v-a1"}, {"a0/x", "v-a0x"}, {"a/3", "v-a3"}};
  MustAppend({std::move(entry)});

  using KV = std::pair<std::string, std::string>;
  auto scan = [this](std::string_view prefix, std::string_view start_after, size_t limit) {
    absl::StatusOr<std::vector<KV>> kvs = store_->ScanProjections(prefix, start_after, limit);
    EXPECT_OK(kvs);
    return kvs.ok() ? *kvs : std::vector<KV>{};
  };
  EXPECT_THAT(scan("a/", "", 10),
              ElementsAre(KV("a/1", "v-a1"), KV("a/2", "v-a2"), KV("a/3", "v-a3")));
  EXPECT_THAT(scan("a/", "", 2), ElementsAre(KV("a/1", "v-a1"), KV("a/2", "v-a2")));
  EXPECT_THAT(scan("a/", "a/1", 10), ElementsAre(KV("a/2", "v-a2"), KV("a/3", "v-a3")));
  EXPECT_THAT(scan("a/", "a/1x", 1), ElementsAre(KV("a/2", "v-a2")));
  EXPECT_THAT(scan("a/", "a/3", 10), IsEmpty());
  EXPECT_THAT(scan("b/", "", 10), ElementsAre(KV("b/1", "v-b1")));
  EXPECT_THAT(scan("c/", "", 10), IsEmpty());
  EXPECT_THAT(scan("", "", 10), ElementsAre(KV("a/1", "v-a1"), KV("a/2", "v-a2"), KV("a/3", "v-a3"),
                                            KV("a0/x", "v-a0x"), KV("b/1", "v-b1")));

  AppendEntry removal = MakeEntry("e2", "p2");
  removal.projections = {{"a/2", std::nullopt}};
  MustAppend({std::move(removal)});
  EXPECT_THAT(scan("a/", "", 10), ElementsAre(KV("a/1", "v-a1"), KV("a/3", "v-a3")));
}

TEST_F(EventStoreTest, PrepareSeesItsOffsetAndEarlierProjectionWrites) {
  AppendEntry seed = MakeEntry("seed", "p");
  seed.projections = {{"counter", "1"}};
  MustAppend({std::move(seed)});

  // Written by prepare on the committer thread; read here after Append returns.
  std::vector<uint64_t> prepared_offsets;
  std::vector<std::optional<std::string>> seen;
  auto get = [&seen](CommitContext& ctx, std::string_view key) {
    absl::StatusOr<std::optional<std::string>> value = ctx.Get(key);
    if (!value.ok()) return value.status();
    seen.push_back(*value);
    return absl::OkStatus();
  };

  AppendEntry e1 = MakeEntry("e1", "p1");
  e1.projections = {{"x", "static-from-e1"}};
  e1.prepare = [&](CommitContext& ctx) {
    prepared_offsets.push_back(ctx.offset());
    absl::Status s = get(ctx, "counter");  // "1", from the earlier call.
    ctx.Put("counter", "2");
    return s;
  };
  AppendEntry e2 = MakeEntry("e2", "p2");
  e2.prepare = [&](CommitContext& ctx) {
    prepared_offsets.push_back(ctx.offset());
    absl::Status s = get(ctx, "counter");  // "2", put by e1's prepare.
    if (s.ok()) s = get(ctx, "x");         // e1's own projection write.
    ctx.Put("counter", "3");
    ctx.Delete("x");
    return s;
  };
  AppendEntry e3 = MakeEntry("e3", "p3");
  e3.prepare = [&](CommitContext& ctx) {
    prepared_offsets.push_back(ctx.offset());
    absl::Status s = get(ctx, "x");  // Deleted by e2's prepare.
    if (s.ok()) s = get(ctx, "counter");
    return s;
  };
  EXPECT_EQ(Describe(MustAppend({std::move(e1), std::move(e2), std::move(e3)})), "2 3 4");
  EXPECT_THAT(prepared_offsets, ElementsAre(2, 3, 4));
  EXPECT_THAT(seen, ElementsAre("1", "2", "static-from-e1", std::nullopt, "3"));
  EXPECT_EQ(Projection("counter"), "3");
  EXPECT_EQ(Projection("x"), std::nullopt);

  // A later call sees what the earlier call committed.
  seen.clear();
  prepared_offsets.clear();
  AppendEntry e4 = MakeEntry("e4", "p4");
  e4.prepare = [&](CommitContext& ctx) {
    prepared_offsets.push_back(ctx.offset());
    return get(ctx, "counter");
  };
  EXPECT_EQ(Describe(MustAppend({std::move(e4)})), "5");
  EXPECT_THAT(prepared_offsets, ElementsAre(5));
  EXPECT_THAT(seen, ElementsAre("3"));
}

TEST_F(EventStoreTest, PrepareCanRewriteThePayload) {
  MustAppend({MakeEntry("before", "b")});
  AppendEntry entry = MakeEntry("e1", "original");
  entry.prepare = [](CommitContext& ctx) {
    ctx.payload() = absl::StrCat("rewritten@", ctx.offset(), ":", ctx.payload());
    return absl::OkStatus();
  };
  EXPECT_EQ(Describe(MustAppend({std::move(entry)})), "2");
  MustAppend({MakeEntry("after", "a")});

  ASSERT_OK_AND_ASSIGN(LogRecord record, store_->Read(2));
  EXPECT_EQ(record.payload, "rewritten@2:original");
  EXPECT_EQ(record.hash, ExpectedHash(record));
  EXPECT_OK(store_->VerifyChain(1, 3));
}

TEST_F(EventStoreTest, FailingPrepareFailsItsCallAndWritesNothing) {
  MustAppend({MakeEntry("seed", "p")});
  AppendEntry first = MakeEntry("f1", "p1", "household/f", "620102001001");
  first.projections = {{"proj/f1", "v"}};
  AppendEntry second = MakeEntry("f2", "p2");
  second.prepare = [](CommitContext& ctx) {
    ctx.Put("proj/f2", "v");
    return absl::FailedPreconditionError("rejected by prepare");
  };
  absl::StatusOr<std::vector<AppendResult>> results =
      store_->Append({std::move(first), std::move(second)});
  EXPECT_EQ(results.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(results.status().message(), "rejected by prepare");
  EXPECT_EQ(store_->Head(), 1u);
  EXPECT_EQ(Lookup("f1"), std::nullopt);
  EXPECT_EQ(Lookup("f2"), std::nullopt);
  EXPECT_EQ(Projection("proj/f1"), std::nullopt);
  EXPECT_EQ(Projection("proj/f2"), std::nullopt);
  ASSERT_OK_AND_ASSIGN(std::vector<LogRecord> subject,
                       store_->ReadSubject("household/f", 0, ReadLimits{}));
  EXPECT_THAT(subject, IsEmpty());

  EXPECT_EQ(Describe(MustAppend({MakeEntry("f1", "p1")})), "2");
  EXPECT_OK(store_->VerifyChain(1, 2));
}

TEST_F(EventStoreTest, FailingPrepareDoesNotFailAnotherCallOfTheSameGroup) {
  CommitterBlocker blocker;
  ASSERT_TRUE(blocker.Hold(*store_, "blocker"));

  AppendEntry doomed_first = MakeEntry("doomed1", "d1");
  doomed_first.projections = {{"proj/doomed", "v"}};
  AppendEntry doomed_second = MakeEntry("doomed2", "d2");
  doomed_second.prepare = [](CommitContext&) { return absl::AbortedError("rejected by prepare"); };
  std::vector<AppendEntry> doomed;
  doomed.push_back(std::move(doomed_first));
  doomed.push_back(std::move(doomed_second));
  AsyncAppend failing;
  store_->AppendAsync(std::move(doomed), failing.Callback());
  AppendEntry fine = MakeEntry("fine", "f");
  fine.projections = {{"proj/fine", "v"}};
  AsyncAppend succeeding;
  store_->AppendAsync({std::move(fine)}, succeeding.Callback());
  absl::StatusOr<std::vector<AppendResult>> blocked = blocker.Release();

  ASSERT_TRUE(failing.done.WaitForNotificationWithTimeout(kSafetyTimeout));
  ASSERT_TRUE(succeeding.done.WaitForNotificationWithTimeout(kSafetyTimeout));
  ASSERT_OK(blocked);
  EXPECT_EQ(Describe(*blocked), "1");
  EXPECT_EQ(failing.result.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(failing.result.status().message(), "rejected by prepare");
  ASSERT_OK(succeeding.result);
  EXPECT_EQ(Describe(*succeeding.result), "2");

  EXPECT_EQ(store_->Head(), 2u);
  EXPECT_EQ(Lookup("doomed1"), std::nullopt);
  EXPECT_EQ(Lookup("doomed2"), std::nullopt);
  EXPECT_EQ(Projection("proj/doomed"), std::nullopt);
  EXPECT_EQ(Projection("proj/fine"), "v");
  std::vector<LogRecord> all = ReadAll();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].payload, "f");
  EXPECT_OK(store_->VerifyChain(1, 2));
}

TEST_F(EventStoreTest, PrepareSeesEarlierCallsOfTheSameGroupButNotFailedOnes) {
  AppendEntry seed = MakeEntry("seed", "p");
  seed.projections = {{"k", "committed"}};
  MustAppend({std::move(seed)});

  CommitterBlocker blocker;
  ASSERT_TRUE(blocker.Hold(*store_, "blocker"));
  // Queued behind the blocker, these four calls form one group, in order.
  AppendEntry writer = MakeEntry("writer", "w");
  writer.projections = {{"k", "from-writer"}};
  AppendEntry failed = MakeEntry("failed", "f");
  failed.prepare = [](CommitContext& ctx) {
    ctx.Put("k", "from-failed");
    ctx.Put("only-failed", "x");
    return absl::InvalidArgumentError("no");
  };
  std::vector<std::optional<std::string>> seen;  // Written by the committer.
  AppendEntry reader = MakeEntry("reader", "r");
  reader.prepare = [&seen](CommitContext& ctx) {
    for (std::string_view key : {"k", "only-failed"}) {
      absl::StatusOr<std::optional<std::string>> value = ctx.Get(key);
      if (!value.ok()) return value.status();
      seen.push_back(*value);
    }
    return absl::OkStatus();
  };
  AsyncAppend wrote, failed_call, read;
  ASSERT_TRUE(AppendBehind(*store_, blocker, {{std::move(writer), &wrote},
                                               {std::move(failed), &failed_call},
                                               {std::move(reader), &read}}));

  ASSERT_OK(wrote.result);
  EXPECT_EQ(Describe(*wrote.result), "3");
  EXPECT_EQ(failed_call.result.status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_OK(read.result);
  EXPECT_EQ(Describe(*read.result), "4");
  EXPECT_THAT(seen, ElementsAre("from-writer", std::nullopt));
  EXPECT_EQ(Projection("k"), "from-writer");
  EXPECT_EQ(Projection("only-failed"), std::nullopt);
  EXPECT_OK(store_->VerifyChain(1, 4));
}

// Every record carries a hook that counts in the projections: under any
// grouping of concurrent calls, each hook must see the count left by the
// record before it in the log (the counter equals the offset), and a call
// whose hook fails must leave no trace in the count.
TEST_F(EventStoreTest, PrepareHooksSeeEveryEarlierRecordUnderConcurrentAppends) {
  constexpr int kThreads = 4;
  constexpr int kCalls = 60;
  auto counting = [](std::string id, bool fail) {
    AppendEntry entry = MakeEntry(std::move(id), "unset");
    entry.prepare = [fail](CommitContext& ctx) {
      absl::StatusOr<std::optional<std::string>> value = ctx.Get("counter");
      if (!value.ok()) return value.status();
      uint64_t count = 0;
      if (value->has_value() && !absl::SimpleAtoi(**value, &count)) {
        return absl::InternalError(absl::StrCat("bad counter ", **value));
      }
      if (count + 1 != ctx.offset()) {
        return absl::InternalError(
            absl::StrCat("offset ", ctx.offset(), " saw the counter at ", count));
      }
      ctx.Put("counter", absl::StrCat(count + 1));
      ctx.payload() = absl::StrCat("count=", count + 1);
      if (fail) return absl::AbortedError("this call fails on purpose");
      return absl::OkStatus();
    };
    return entry;
  };
  std::vector<absl::Status> failures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &failures, &counting] {
      std::mt19937 rng(t);
      for (int call = 0; call < kCalls; ++call) {
        // One call in seven fails in the hook of its last entry.
        const bool doomed = (t * kCalls + call) % 7 == 0;
        std::vector<AppendEntry> entries;
        const int size = 1 + static_cast<int>(rng() % 5);
        for (int n = 0; n < size; ++n) {
          entries.push_back(
              counting(absl::StrCat("t", t, "-", call, "-", n), doomed && n == size - 1));
        }
        absl::StatusOr<std::vector<AppendResult>> results = store_->Append(std::move(entries));
        if (doomed) {
          if (results.status().code() != absl::StatusCode::kAborted) {
            failures[t] = absl::InternalError(
                absl::StrCat("doomed call answered ", results.status().ToString()));
            return;
          }
        } else if (!results.ok()) {
          failures[t] = results.status();
          return;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& failure : failures) ASSERT_OK(failure);

  const uint64_t head = store_->Head();
  ASSERT_GT(head, 0u);
  EXPECT_EQ(Projection("counter"), absl::StrCat(head));
  std::vector<LogRecord> all = ReadAll();
  ASSERT_EQ(all.size(), head);
  for (const LogRecord& record : all) {
    ASSERT_EQ(record.payload, absl::StrCat("count=", record.offset));
  }
  EXPECT_OK(store_->VerifyChain(1, head));
}

// Nearest over stored entries, earlier calls of the group, a failed call of
// the group (invisible) and the call's own writes, both directions.
TEST_F(EventStoreTest, NearestSeesWhatGetSeesInKeyOrder) {
  AppendEntry seed = MakeEntry("seed", "p");
  seed.projections = {{"v/a", "A"}, {"v/c", "C"}, {"v/e", "E"}, {"w/x", "X"}, {"u/z", "Z"}};
  MustAppend({std::move(seed)});

  CommitterBlocker blocker;
  ASSERT_TRUE(blocker.Hold(*store_, "blocker"));
  AppendEntry writer = MakeEntry("writer", "w");
  writer.prepare = [](CommitContext& ctx) {
    ctx.Put("v/b", "B");
    ctx.Delete("v/c");
    return absl::OkStatus();
  };
  AppendEntry failed = MakeEntry("failed", "f");
  failed.prepare = [](CommitContext& ctx) {
    ctx.Put("v/bb", "from-failed");
    return absl::InvalidArgumentError("no");
  };
  std::vector<std::string> seen;  // Written by the committer.
  AppendEntry reader = MakeEntry("reader", "r");
  reader.prepare = [&seen](CommitContext& ctx) {
    ctx.Put("v/d", "D");
    ctx.Delete("v/e");
    const std::vector<std::tuple<std::string, std::string, bool>> asks = {
        {"v/", "v/", true},   {"v/", "v/a", true},  {"v/", "v/b", true},  {"v/", "v/d", true},
        {"v/", "v/z", false}, {"v/", "v/d", false}, {"v/", "v/b", false}, {"v/", "v/a", false},
        {"w/", "w/", true},   {"w/", "w/y", false}, {"v/", "v/c", false}};
    for (const auto& [prefix, key, forward] : asks) {
      absl::StatusOr<std::optional<std::pair<std::string, std::string>>> entry =
          ctx.Nearest(prefix, key, forward);
      if (!entry.ok()) return entry.status();
      seen.push_back(*entry ? absl::StrCat((*entry)->first, "=", (*entry)->second) : "-");
    }
    return absl::OkStatus();
  };
  AsyncAppend wrote, failed_call, read;
  ASSERT_TRUE(AppendBehind(*store_, blocker, {{std::move(writer), &wrote},
                                               {std::move(failed), &failed_call},
                                               {std::move(reader), &read}}));
  ASSERT_OK(read.result);
  EXPECT_THAT(seen, ElementsAre("v/a=A", "v/b=B", "v/d=D", "-", "v/d=D", "v/b=B", "v/a=A", "-",
                                "w/x=X", "w/x=X", "v/b=B"));

  // A later call sees the same through the stored entries alone.
  seen.clear();
  AppendEntry later = MakeEntry("later", "l");
  later.prepare = [&seen](CommitContext& ctx) {
    for (std::string_view key : {"v/", "v/a", "v/b", "v/d"}) {
      absl::StatusOr<std::optional<std::pair<std::string, std::string>>> entry =
          ctx.Nearest("v/", key, true);
      if (!entry.ok()) return entry.status();
      seen.push_back(*entry ? (*entry)->first : "-");
    }
    return absl::OkStatus();
  };
  MustAppend({std::move(later)});
  EXPECT_THAT(seen, ElementsAre("v/a", "v/b", "v/d", "-"));
}

// The seek is bounded to the prefix: keys just outside it (the prefix's own
// successor, a prefix of 0xff bytes) are never answered, both directions.
TEST_F(EventStoreTest, NearestStaysInsideItsPrefix) {
  const std::string ff = "p\xff";
  AppendEntry seed = MakeEntry("seed", "p");
  seed.projections = {{"p", "bare"},          {ff + "a", "in"},  {ff + "\xff", "in-ff"},
                      {"p\xff\xff\xff", "deep"}, {"q", "after"}, {"o\xff", "before"}};
  MustAppend({std::move(seed)});
  std::vector<std::string> seen;
  AppendEntry reader = MakeEntry("reader", "r");
  reader.prepare = [&](CommitContext& ctx) {
    const std::vector<std::tuple<std::string, std::string, bool>> asks = {
        {ff, ff, true},          {ff, ff + "a", true}, {ff, "p\xff\xff\xff", true},
        {ff, "p\xff\xff\xff\xff", false}, {ff, ff, false},     {ff, ff + "a", false},
        {"p\xff\xff", "p\xff\xff", true}, {"q", "q", false}, {"o\xff", "o\xff\xff", false}};
    for (const auto& [prefix, key, forward] : asks) {
      auto entry = ctx.Nearest(prefix, key, forward);
      if (!entry.ok()) return entry.status();
      seen.push_back(*entry ? (*entry)->second : "-");
    }
    return absl::OkStatus();
  };
  MustAppend({std::move(reader)});
  EXPECT_THAT(seen, ElementsAre("in", "in-ff", "-", "deep", "-", "-", "deep", "-", "before"));
}

// Under concurrent calls (groups, and a group prepared while the one before
// is written), every Nearest answers what a model of the projections, updated
// in log order by the hooks themselves, answers.
TEST_F(EventStoreTest, NearestMatchesAModelUnderConcurrentAppends) {
  constexpr int kThreads = 4;
  constexpr int kCalls = 80;
  std::map<std::string, std::string> model;  // Committer thread only.
  std::atomic<int> mismatches{0};
  std::atomic<int> asked{0};
  auto entry_for = [&](std::string id, uint32_t seed) {
    AppendEntry entry = MakeEntry(std::move(id), "n");
    entry.prepare = [&, seed](CommitContext& ctx) {
      std::mt19937 rng(seed);
      auto key = [&] { return absl::StrCat("k/", rng() % 40); };
      for (int op = 0; op < 6; ++op) {
        const std::string k = key();
        if (rng() % 3 == 0) {
          ctx.Delete(k);
          model.erase(k);
        } else {
          const std::string v = absl::StrCat(ctx.offset(), ".", op);
          ctx.Put(k, v);
          model[k] = v;
        }
        const std::string at = key();
        const bool forward = rng() % 2 == 0;
        absl::StatusOr<std::optional<std::pair<std::string, std::string>>> got =
            ctx.Nearest("k/", at, forward);
        if (!got.ok()) return got.status();
        std::optional<std::pair<std::string, std::string>> want;
        if (forward) {
          auto it = model.upper_bound(at);
          if (it != model.end()) want = *it;
        } else {
          auto it = model.lower_bound(at);
          if (it != model.begin()) want = *std::prev(it);
        }
        ++asked;
        if (*got != want) ++mismatches;
      }
      return absl::OkStatus();
    };
    return entry;
  };
  std::vector<absl::Status> failures =
      AppendFromThreads(*store_, kThreads, kCalls, [&entry_for](int t, int call) {
        std::vector<AppendEntry> entries;
        for (int n = 0; n < 1 + (call % 3); ++n) {
          entries.push_back(entry_for(absl::StrCat("t", t, "-", call, "-", n),
                                      static_cast<uint32_t>(t * 100000 + call * 10 + n)));
        }
        return entries;
      });
  for (const absl::Status& failure : failures) ASSERT_OK(failure);
  EXPECT_GT(asked.load(), 1000);
  EXPECT_EQ(mismatches.load(), 0);
  for (const auto& [key, value] : model) EXPECT_EQ(Projection(key), value) << key;
}

// ---------------------------------------------------------------- VerifyChain

TEST_F(EventStoreTest, VerifyChainAcceptsAnIntactLog) {
  for (int i = 1; i <= 10; ++i) MustAppend({MakeEntry(absl::StrCat("e", i), absl::StrCat("p", i))});
  EXPECT_OK(store_->VerifyChain(1, 10));
  EXPECT_OK(store_->VerifyChain(4, 7));
  EXPECT_OK(store_->VerifyChain(10, 10));
  EXPECT_OK(store_->VerifyChain(1, 1000));  // `to` is clamped to the head.
  EXPECT_EQ(store_->VerifyChain(0, 5).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->VerifyChain(6, 5).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(EventStoreTest, VerifyChainReportsEditedPayloadAsDataLoss) {
  for (int i = 1; i <= 10; ++i) {
    MustAppend({MakeEntry(absl::StrCat("e", i), absl::StrCat("payload of record ", i))});
  }
  Close();
  {
    RawDb raw(StorePath());
    ASSERT_NE(raw.db(), nullptr);
    std::optional<std::string> value = raw.Get(keys::kLogFamily, keys::LogKey(7));
    ASSERT_TRUE(value.has_value());
    ASSERT_GT(value->size(), keys::kRecordHeaderSize);
    ASSERT_EQ(static_cast<uint8_t>((*value)[0]), keys::kRecordFormat);
    ASSERT_EQ(value->substr(keys::kRecordHeaderSize), "payload of record 7");
    (*value)[keys::kRecordHeaderSize + 3] ^= 0x01;
    raw.Put(keys::kLogFamily, keys::LogKey(7), *value);
  }
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(store_->Head(), 10u);
  absl::Status status = store_->VerifyChain(1, 10);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_THAT(std::string(status.message()), NamesNumber(7));
  EXPECT_OK(store_->VerifyChain(1, 6));
}

TEST_F(EventStoreTest, VerifyChainReportsMissingRecordAsDataLoss) {
  for (int i = 1; i <= 10; ++i) MustAppend({MakeEntry(absl::StrCat("e", i), absl::StrCat("p", i))});
  Close();
  {
    RawDb raw(StorePath());
    ASSERT_NE(raw.db(), nullptr);
    ASSERT_TRUE(raw.Get(keys::kLogFamily, keys::LogKey(4)).has_value());
    raw.Delete(keys::kLogFamily, keys::LogKey(4));
  }
  ASSERT_NO_FATAL_FAILURE(Open());
  absl::Status status = store_->VerifyChain(1, 10);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_THAT(std::string(status.message()), NamesNumber(4));
  EXPECT_OK(store_->VerifyChain(1, 3));
}

// ---------------------------------------------------------------- On-disk format

TEST_F(EventStoreTest, OnDiskLayoutFollowsKeyFormat) {
  const std::string subject = "household/620102001001-0001";
  AppendEntry entry = MakeEntry("evt-1", "the payload", subject, "620102001001");
  entry.projections = {{"state/" + subject, "state bytes"}};
  MustAppend({std::move(entry)});
  const std::string done = RandomBytes(300, 4);
  ASSERT_OK(store_->PutBlobChunk(Sha256Of(done), 300, 0, done));
  const std::string partial = RandomBytes(300, 5);
  ASSERT_OK(store_->PutBlobChunk(Sha256Of(partial), 300, 0, partial.substr(0, 100)));
  Close();

  RawDb raw(StorePath());
  ASSERT_NE(raw.db(), nullptr);
  // log: u8 record_format | 32 prev_hash | 32 hash | payload, hash over
  // prev_hash | u64 offset | payload.
  std::string offset_bytes;
  base::AppendBe64(&offset_bytes, 1);
  std::string record_value(1, static_cast<char>(keys::kRecordFormat));
  record_value += kZeroHash;
  record_value += DigestBytes(Sha256({kZeroHash, offset_bytes, "the payload"}));
  record_value += "the payload";
  EXPECT_EQ(raw.Get(keys::kLogFamily, keys::LogKey(1)), record_value);
  EXPECT_EQ(raw.Get(keys::kLogFamily, keys::LogKey(2)), std::nullopt);
  EXPECT_EQ(raw.Get(keys::kEventIdFamily, "evt-1"), keys::OffsetValue(1));
  EXPECT_EQ(raw.Get(keys::kSubjectFamily, keys::SubjectKey(subject, 1)), "");
  for (std::string_view prefix : {"620102", "620102001", "620102001001"}) {
    EXPECT_EQ(raw.Get(keys::kScopeFamily, keys::ScopeKey(prefix, 1)), "") << prefix;
  }
  EXPECT_EQ(raw.Get(keys::kProjectionFamily, "state/" + subject), "state bytes");
  // blobs: the content of a complete blob; the entry of an upload, whose
  // bytes are in its file under blob_uploads/ (no 'C' chunks any more).
  EXPECT_EQ(raw.Get(keys::kBlobFamily, keys::BlobContentKey(Sha256Of(done))), done);
  EXPECT_EQ(raw.Get(keys::kBlobFamily, keys::BlobChunkKey(Sha256Of(done), 0)), std::nullopt);
  EXPECT_EQ(raw.Get(keys::kBlobFamily, keys::BlobUploadKey(Sha256Of(done))), std::nullopt);
  EXPECT_EQ(raw.Get(keys::kBlobFamily, keys::BlobChunkKey(Sha256Of(partial), 0)), std::nullopt);
  EXPECT_TRUE(raw.Get(keys::kBlobFamily, keys::BlobUploadKey(Sha256Of(partial))).has_value());
  EXPECT_EQ(raw.Get(keys::kBlobFamily, keys::BlobContentKey(Sha256Of(partial))), std::nullopt);
  std::ifstream file(StorePath() + "/" + keys::kBlobUploadDir + "/" + ToHex(Sha256Of(partial)),
                     std::ios::binary);
  ASSERT_TRUE(file.is_open());
  std::string upload_bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(upload_bytes, partial.substr(0, 100));
}

// The fixed-width values of key_format.h: an upload entry 'U' is u64
// total_size | u64 received_bytes | i64 updated_at (Unix µs) | owner;
// "format_version" and "head" in the default
// family are u64 (big-endian, as every integer of the format).
TEST_F(EventStoreTest, UploadFormatVersionAndHeadEntriesFollowKeyFormat) {
  MustAppend({MakeEntry("a", "1"), MakeEntry("b", "2")});
  MustAppend({MakeEntry("c", "3")});
  const std::string partial = RandomBytes(300, 6);
  ASSERT_OK(store_->PutBlobChunk(Sha256Of(partial), 300, 0, partial.substr(0, 100)));
  Close();

  RawDb raw(StorePath());
  ASSERT_NE(raw.db(), nullptr);
  std::string upload;
  base::AppendBe64(&upload, 300);
  base::AppendBe64(&upload, 100);
  base::AppendBe64(&upload, 0);  // The Unix epoch: PutBlobChunk without a writer.
  EXPECT_EQ(raw.Get(keys::kBlobFamily, keys::BlobUploadKey(Sha256Of(partial))), upload);
  std::string version;
  base::AppendBe64(&version, keys::kFormatVersion);
  EXPECT_EQ(raw.Get(rocksdb::kDefaultColumnFamilyName, keys::kFormatVersionKey), version);
  EXPECT_EQ(raw.Get(rocksdb::kDefaultColumnFamilyName, "head"), keys::OffsetValue(3));
}

// ---------------------------------------------------------------- Head

// Whoever a head listener tells of a commit must find Head() at least there:
// the store publishes the head before it calls the listeners. A race, so a
// stress loop rather than an exact interleaving; it cannot fail on a correct
// store.
TEST_F(EventStoreTest, HeadIsNeverBehindWhatAHeadListenerWasTold) {
  constexpr uint64_t kAppends = 300;
  absl::Mutex mu;
  uint64_t behind = 0;
  std::string example;
  const uint64_t id = store_->AddHeadListener([&](uint64_t told) {
    const uint64_t head = store_->Head();
    absl::MutexLock lock(&mu);
    if (head < told && behind++ == 0) {
      example = absl::StrCat("a listener was told ", told, ", then Head() returned ", head);
    }
  });
  for (uint64_t i = 1; i <= kAppends; ++i) MustAppend({MakeEntry(absl::StrCat("e", i), "p")});
  store_->RemoveHeadListener(id);
  absl::MutexLock lock(&mu);
  EXPECT_EQ(behind, 0u) << "times Head() lagged a head listener, e.g. " << example;
  EXPECT_EQ(store_->Head(), kAppends);
}

TEST_F(EventStoreTest, HeadListenerIsCalledUntilRemoved) {
  absl::Mutex mu;
  std::vector<uint64_t> removed_saw;
  std::vector<uint64_t> kept_saw;
  const uint64_t removed = store_->AddHeadListener([&](uint64_t head) {
    absl::MutexLock lock(&mu);
    removed_saw.push_back(head);
  });
  const uint64_t kept = store_->AddHeadListener([&](uint64_t head) {
    absl::MutexLock lock(&mu);
    kept_saw.push_back(head);
  });
  EXPECT_NE(removed, kept);

  MustAppend({MakeEntry("a", "1")});
  {
    absl::MutexLock lock(&mu);
    auto both_called = [&] { return !removed_saw.empty() && !kept_saw.empty(); };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&both_called), kSafetyTimeout));
    EXPECT_THAT(removed_saw, ElementsAre(1));
    EXPECT_THAT(kept_saw, ElementsAre(1));
  }

  store_->RemoveHeadListener(removed);
  MustAppend({MakeEntry("b", "2")});
  MustAppend({MakeEntry("c", "3"), MakeEntry("d", "4")});
  {
    absl::MutexLock lock(&mu);
    // Groups are committed in order, so once the kept listener has seen 4 the
    // group that made head 2 is over too.
    auto saw_last = [&] { return !kept_saw.empty() && kept_saw.back() == 4; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&saw_last), kSafetyTimeout));
    EXPECT_THAT(kept_saw, ElementsAre(1, 2, 4));
    EXPECT_THAT(removed_saw, ElementsAre(1));
  }
  store_->RemoveHeadListener(kept);
}

// ---------------------------------------------------------------- Blobs

TEST_F(EventStoreTest, BlobUploadsInChunksResumesAfterReopenAndVerifies) {
  const std::string content = RandomBytes(3000, 1);
  const std::string sha = Sha256Of(content);

  ASSERT_OK_AND_ASSIGN(BlobStatus initial, store_->GetBlobStatus(sha));
  EXPECT_EQ(initial.received_bytes, 0u);
  EXPECT_EQ(initial.total_size, 0u);
  EXPECT_FALSE(initial.complete);
  EXPECT_EQ(store_->GetBlob(sha).status().code(), absl::StatusCode::kNotFound);

  ASSERT_OK_AND_ASSIGN(BlobStatus after_first,
                       store_->PutBlobChunk(sha, 3000, 0, content.substr(0, 1000)));
  EXPECT_EQ(after_first.received_bytes, 1000u);
  EXPECT_EQ(after_first.total_size, 3000u);
  EXPECT_FALSE(after_first.complete);
  EXPECT_EQ(store_->GetBlob(sha).status().code(), absl::StatusCode::kNotFound);

  // A chunk must start where the stored bytes end, neither before nor after.
  for (uint64_t wrong : {0u, 500u, 2000u}) {
    absl::StatusOr<BlobStatus> misplaced =
        store_->PutBlobChunk(sha, 3000, wrong, content.substr(wrong, 500));
    EXPECT_EQ(misplaced.status().code(), absl::StatusCode::kFailedPrecondition)
        << "offset " << wrong << ": " << misplaced.status();
    EXPECT_THAT(std::string(misplaced.status().message()), NamesNumber(1000));
  }

  Close();
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_OK_AND_ASSIGN(BlobStatus resumed, store_->GetBlobStatus(sha));
  EXPECT_EQ(resumed.received_bytes, 1000u);
  EXPECT_EQ(resumed.total_size, 3000u);
  EXPECT_FALSE(resumed.complete);

  ASSERT_OK_AND_ASSIGN(BlobStatus after_second,
                       store_->PutBlobChunk(sha, 3000, 1000, content.substr(1000, 1000)));
  EXPECT_EQ(after_second.received_bytes, 2000u);
  EXPECT_FALSE(after_second.complete);
  ASSERT_OK_AND_ASSIGN(BlobStatus after_last,
                       store_->PutBlobChunk(sha, 3000, 2000, content.substr(2000)));
  EXPECT_EQ(after_last.received_bytes, 3000u);
  EXPECT_TRUE(after_last.complete);

  ASSERT_OK_AND_ASSIGN(BlobStatus status, store_->GetBlobStatus(sha));
  EXPECT_TRUE(status.complete);
  EXPECT_EQ(status.received_bytes, 3000u);
  ASSERT_OK_AND_ASSIGN(std::string stored, store_->GetBlob(sha));
  EXPECT_TRUE(stored == content) << "stored blob differs from the upload";

  // A chunk for a complete blob is accepted and ignored.
  ASSERT_OK_AND_ASSIGN(BlobStatus repeat,
                       store_->PutBlobChunk(sha, 3000, 0, content.substr(0, 10)));
  EXPECT_TRUE(repeat.complete);

  Close();
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_OK_AND_ASSIGN(std::string reopened, store_->GetBlob(sha));
  EXPECT_TRUE(reopened == content) << "blob differs after reopen";
}

TEST_F(EventStoreTest, BlobWithWrongContentIsDiscarded) {
  const std::string content = RandomBytes(2000, 2);
  const std::string sha = Sha256Of(content);
  std::string forged = content;
  forged[1500] ^= 0x40;

  ASSERT_OK(store_->PutBlobChunk(sha, 2000, 0, forged.substr(0, 1000)));
  absl::StatusOr<BlobStatus> last = store_->PutBlobChunk(sha, 2000, 1000, forged.substr(1000));
  EXPECT_EQ(last.status().code(), absl::StatusCode::kInvalidArgument) << last.status();

  ASSERT_OK_AND_ASSIGN(BlobStatus discarded, store_->GetBlobStatus(sha));
  EXPECT_EQ(discarded.received_bytes, 0u);
  EXPECT_FALSE(discarded.complete);
  EXPECT_EQ(store_->GetBlob(sha).status().code(), absl::StatusCode::kNotFound);

  // The upload starts over from 0 and the true content is stored.
  ASSERT_OK_AND_ASSIGN(BlobStatus redone, store_->PutBlobChunk(sha, 2000, 0, content));
  EXPECT_TRUE(redone.complete);
  ASSERT_OK_AND_ASSIGN(std::string stored, store_->GetBlob(sha));
  EXPECT_TRUE(stored == content) << "stored blob differs from the upload";
}

TEST_F(EventStoreTest, GetBlobOfUnknownOrIncompleteBlobIsNotFound) {
  EXPECT_EQ(store_->GetBlob(Sha256Of("never uploaded")).status().code(),
            absl::StatusCode::kNotFound);
  const std::string content = RandomBytes(100, 3);
  ASSERT_OK(store_->PutBlobChunk(Sha256Of(content), 100, 0, content.substr(0, 99)));
  EXPECT_EQ(store_->GetBlob(Sha256Of(content)).status().code(), absl::StatusCode::kNotFound);
}

// ---------------------------------------------------------------- Backup

TEST_F(EventStoreTest, RestoredBackupHoldsTheLogAsOfTheBackupAndContinuesIt) {
  const std::string backups = dir_.Join("backups");
  AppendEntry first = MakeEntry("e1", "p1", "household/1", "620102001001");
  first.projections = {{"household/1", "state-1"}};
  MustAppend({std::move(first), MakeEntry("e2", "p2"), MakeEntry("e3", "p3")});
  ASSERT_OK_AND_ASSIGN(BackupInfo older, store_->Backup(backups));
  EXPECT_EQ(older.head, 3u);

  MustAppend({MakeEntry("e4", "p4", "household/1"), MakeEntry("e5", "p5")});
  ASSERT_OK_AND_ASSIGN(BackupInfo latest, store_->Backup(backups));
  EXPECT_EQ(latest.head, 5u);
  EXPECT_NE(latest.backup_id, older.backup_id);
  const std::vector<LogRecord> backed_up = ReadAll();

  MustAppend({MakeEntry("e6", "p6")});
  Close();

  const std::string restored_path = dir_.Join("restored");
  ASSERT_OK(RestoreEventStore(backups, restored_path));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EventStore> restored, OpenEventStore(restored_path));
  EXPECT_EQ(restored->Head(), 5u);
  std::vector<LogRecord> records = ReadAll(*restored);
  ASSERT_EQ(records.size(), backed_up.size());
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].offset, backed_up[i].offset);
    EXPECT_EQ(records[i].prev_hash, backed_up[i].prev_hash);
    EXPECT_EQ(records[i].hash, backed_up[i].hash);
    EXPECT_EQ(records[i].payload, backed_up[i].payload);
  }
  EXPECT_OK(restored->VerifyChain(1, 5));
  EXPECT_EQ(*restored->LookupEventId("e5"), 5u);
  EXPECT_EQ(*restored->LookupEventId("e6"), std::nullopt);
  EXPECT_EQ(*restored->GetProjection("household/1"), "state-1");
  ASSERT_OK_AND_ASSIGN(std::vector<LogRecord> subject,
                       restored->ReadSubject("household/1", 0, ReadLimits{}));
  EXPECT_THAT(Offsets(subject), ElementsAre(1, 4));

  ASSERT_OK_AND_ASSIGN(std::vector<AppendResult> appended,
                       restored->Append({MakeEntry("e6", "p6-again"), MakeEntry("e7", "p7")}));
  EXPECT_EQ(Describe(appended), "6 7");
  ASSERT_OK_AND_ASSIGN(LogRecord sixth, restored->Read(6));
  EXPECT_EQ(sixth.prev_hash, backed_up.back().hash);
  EXPECT_OK(restored->VerifyChain(1, 7));
}

TEST_F(EventStoreTest, BackupWhileAppendingRestoresAConsistentStore) {
  const std::string backups = dir_.Join("backups");
  std::atomic<bool> stop{false};
  absl::Status appender_failure;
  std::thread appender([&] {
    for (int i = 0; !stop.load(); ++i) {
      absl::StatusOr<std::vector<AppendResult>> results = store_->Append(
          {MakeEntry(absl::StrCat("bg", i), absl::StrCat("p", i), "household/bg", "620102001001")});
      if (!results.ok()) {
        appender_failure = results.status();
        return;
      }
    }
  });
  // The backup starts while the appender is under way (past 20 records).
  absl::Notification past_20;
  const uint64_t listener = store_->AddHeadListener([&](uint64_t head) {
    if (head > 20 && !past_20.HasBeenNotified()) past_20.Notify();
  });
  EXPECT_TRUE(past_20.WaitForNotificationWithTimeout(kSafetyTimeout));
  store_->RemoveHeadListener(listener);
  const uint64_t head_before = store_->Head();
  absl::StatusOr<BackupInfo> info = store_->Backup(backups);
  stop = true;
  appender.join();
  ASSERT_OK(appender_failure);
  ASSERT_OK(info);
  EXPECT_GE(info->head, head_before);
  const uint64_t head_at_close = store_->Head();
  Close();

  const std::string restored_path = dir_.Join("restored");
  ASSERT_OK(RestoreEventStore(backups, restored_path));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EventStore> restored, OpenEventStore(restored_path));
  const uint64_t head = restored->Head();
  EXPECT_GE(head, info->head);
  EXPECT_LE(head, head_at_close);
  std::vector<LogRecord> records = ReadAll(*restored);
  ASSERT_EQ(records.size(), head);
  for (const LogRecord& record : records) {
    EXPECT_EQ(record.payload, absl::StrCat("p", record.offset - 1));
  }
  EXPECT_OK(restored->VerifyChain(1, head));
  ASSERT_OK_AND_ASSIGN(std::vector<LogRecord> subject,
                       restored->ReadSubject("household/bg", 0, ReadLimits{}));
  EXPECT_EQ(subject.size(), head);
}

TEST_F(EventStoreTest, RestoreIntoAnExistingStoreIsFailedPrecondition) {
  const std::string backups = dir_.Join("backups");
  MustAppend({MakeEntry("e1", "p1")});
  ASSERT_OK(store_->Backup(backups));
  MustAppend({MakeEntry("e2", "p2")});
  Close();

  EXPECT_EQ(RestoreEventStore(backups, StorePath()).code(), absl::StatusCode::kFailedPrecondition);
  // The store there is untouched.
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(store_->Head(), 2u);
  EXPECT_OK(store_->VerifyChain(1, 2));
}

}  // namespace
}  // namespace fieldsync::storage
