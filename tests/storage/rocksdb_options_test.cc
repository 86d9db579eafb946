// StoreRocksDbOptions is what the store opens RocksDB with (and what the
// benchmarks' raw baseline opens with, so that the two cannot drift): checked
// through the OPTIONS file RocksDB persists for the database the store opened.
// Also the store's two commit threads carry the names push_bench counts CPU
// by (/proc/<pid>/task/<tid>/comm).
#include "storage/rocksdb_options.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "rocksdb/statistics.h"
#include "rocksdb/write_batch.h"
#include "rocksdb/convenience.h"
#include "rocksdb/env.h"
#include "rocksdb/utilities/options_util.h"
#include "storage/event_store.h"
#include "storage/key_format.h"
#include "tests/storage/test_util.h"

namespace fieldsync::storage {
namespace {

using test::MakeEntry;
using test::ScopedTempDir;

// The options RocksDB recorded for the database at `path` (its latest
// OPTIONS file), by column family name.
std::map<std::string, rocksdb::ColumnFamilyOptions> PersistedFamilies(const std::string& path,
                                                                       rocksdb::DBOptions* db) {
  rocksdb::ConfigOptions config;
  config.ignore_unknown_options = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  rocksdb::Status s = rocksdb::LoadLatestOptions(config, path, db, &families);
  EXPECT_TRUE(s.ok()) << s.ToString();
  std::map<std::string, rocksdb::ColumnFamilyOptions> out;
  for (auto& f : families) out[f.name] = f.options;
  return out;
}

TEST(RocksDbOptionsTest, StoreOpensEveryFamilyWithTheSharedOptions) {
  ScopedTempDir dir;
  StoreOptions options;
  {
    auto store = OpenEventStore(dir.path(), options);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Append({MakeEntry("e1", "payload")}).ok());
  }
  const RocksDbOpenOptions expected = StoreRocksDbOptions(options);
  rocksdb::DBOptions db;
  auto persisted = PersistedFamilies(dir.path(), &db);
  ASSERT_EQ(persisted.size(), expected.families.size());
  for (const rocksdb::ColumnFamilyDescriptor& want : expected.families) {
    SCOPED_TRACE(want.name);
    ASSERT_TRUE(persisted.contains(want.name));
    const rocksdb::ColumnFamilyOptions& got = persisted[want.name];
    EXPECT_EQ(got.write_buffer_size, want.options.write_buffer_size);
    EXPECT_EQ(got.compression, want.options.compression);
    EXPECT_EQ(got.bottommost_compression, want.options.bottommost_compression);
    EXPECT_EQ(got.level_compaction_dynamic_level_bytes,
              want.options.level_compaction_dynamic_level_bytes);
    EXPECT_EQ(got.enable_blob_files, want.options.enable_blob_files);
    EXPECT_EQ(got.max_write_buffer_number, want.options.max_write_buffer_number);
    EXPECT_EQ(std::string(got.table_factory->Name()),
              std::string(want.options.table_factory->Name()));
  }
  EXPECT_EQ(db.max_background_jobs, expected.db.max_background_jobs);
  EXPECT_EQ(db.max_total_wal_size, expected.db.max_total_wal_size);
  EXPECT_EQ(db.wal_recovery_mode, expected.db.wal_recovery_mode);
  EXPECT_EQ(db.enable_pipelined_write, expected.db.enable_pipelined_write);
  EXPECT_FALSE(db.unordered_write) << "unordered_write would break the gapless order";
}

// Regression (session 5): RocksDB's info log wrote a LOG file into the data
// directory; on a full disk its failed writer was used again to log the
// background error, and RocksDB's assertion on that path aborted fieldsyncd
// (tests/server/full_disk_test.cc). The log now goes to stderr: no LOG file.
TEST(RocksDbOptionsTest, RocksDbLogsNothingIntoTheDataDirectory) {
  ScopedTempDir dir;
  {
    auto store = OpenEventStore(dir.path(), StoreOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Append({MakeEntry("e1", "payload")}).ok());
  }
  for (const auto& file : std::filesystem::directory_iterator(dir.path())) {
    const std::string name = file.path().filename().string();
    EXPECT_NE(name.rfind("LOG", 0), 0u) << "RocksDB wrote its info log into the data dir: " << name;
  }
  EXPECT_NE(StoreRocksDbOptions(StoreOptions()).db.info_log, nullptr);
}

TEST(RocksDbOptionsTest, BloomFiltersOnlyOnThePointLookupFamilies) {
  const RocksDbOpenOptions o = StoreRocksDbOptions(StoreOptions());
  for (const rocksdb::ColumnFamilyDescriptor& f : o.families) {
    SCOPED_TRACE(f.name);
    const auto* table = f.options.table_factory->GetOptions<rocksdb::BlockBasedTableOptions>();
    ASSERT_NE(table, nullptr);
    const bool point_lookups = f.name == keys::kEventIdFamily || f.name == keys::kProjectionFamily;
    EXPECT_EQ(table->filter_policy != nullptr, point_lookups);
  }
}

TEST(RocksDbOptionsTest, TuningChangesWhatTheStoreOpensWith) {
  ScopedTempDir dir;
  RocksDbTuning tune = [](RocksDbOpenOptions& o) {
    for (rocksdb::ColumnFamilyDescriptor& f : o.families) {
      if (f.name == keys::kLogFamily) f.options.max_write_buffer_number = 5;
    }
  };
  {
    auto store = OpenEventStoreWithTuning(dir.path(), StoreOptions(), tune);
    ASSERT_TRUE(store.ok()) << store.status();
  }
  rocksdb::DBOptions db;
  auto persisted = PersistedFamilies(dir.path(), &db);
  EXPECT_EQ(persisted[keys::kLogFamily].max_write_buffer_number, 5);
  EXPECT_EQ(persisted[keys::kEventIdFamily].max_write_buffer_number,
            rocksdb::ColumnFamilyOptions().max_write_buffer_number);
}

// Regression (session 6): the point-lookup families kept one whole-file
// bloom filter per SST in the block cache. A large file's filter (megabytes)
// does not stay in its cache shard, so every Get read it from the file again
// and verified its checksum: report_bench's 0.6 GB store spent 88% of its
// commit time in FilterBlockReaderCommon::GetOrReadFilterBlock. Filters are
// now partitioned: a Get loads the small partition it needs, which stays
// cached. Here: one SST of 1.2 M keys (a ~1.5 MB filter) behind a 4 MiB cache
// (8 shards of 512 KiB), and 2,000 Gets of missing keys (the common case:
// every new event id, every first write of a key).
TEST(RocksDbOptionsTest, AFilterIsReadFromTheFileOnceNotOncePerGet) {
  ScopedTempDir dir;
  StoreOptions options;
  options.block_cache_bytes = 4 << 20;
  RocksDbOpenOptions o = StoreRocksDbOptions(options);
  o.db.statistics = rocksdb::CreateDBStatistics();
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(o.db, dir.path(), o.families, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::ColumnFamilyHandle* projections = nullptr;
  for (size_t i = 0; i < handles.size(); ++i) {
    if (o.families[i].name == keys::kProjectionFamily) projections = handles[i];
  }
  ASSERT_NE(projections, nullptr);
  constexpr int kKeys = 1200000;
  rocksdb::WriteBatch batch;
  for (int i = 0; i < kKeys; ++i) {
    batch.Put(projections, absl::StrFormat("dom/as/cv/c%07d", i), "v");
    if (batch.Count() == 50000) {
      ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &batch).ok());
      batch.Clear();
    }
  }
  ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &batch).ok());
  ASSERT_TRUE(db->Flush(rocksdb::FlushOptions(), projections).ok());
  ASSERT_TRUE(db->CompactRange(rocksdb::CompactRangeOptions(), projections, nullptr, nullptr).ok());
  // Reopened, as after a restart: a table opened while its file was in L0
  // keeps that file's filter pinned (pin_l0_filter_and_index_blocks_in_cache).
  for (rocksdb::ColumnFamilyHandle* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  handles.clear();
  db.reset();
  ASSERT_TRUE(rocksdb::DB::Open(o.db, dir.path(), o.families, &handles, &raw).ok());
  db.reset(raw);
  for (size_t i = 0; i < handles.size(); ++i) {
    if (o.families[i].name == keys::kProjectionFamily) projections = handles[i];
  }

  const uint64_t misses_before =
      o.db.statistics->getTickerCount(rocksdb::BLOCK_CACHE_FILTER_MISS);
  constexpr int kGets = 2000;
  std::string value;
  for (int i = 0; i < kGets; ++i) {
    rocksdb::Status s = db->Get(rocksdb::ReadOptions(), projections,
                                absl::StrFormat("dom/as/cv/c%07d-missing", i * 600), &value);
    ASSERT_TRUE(s.IsNotFound()) << s.ToString();
  }
  const uint64_t misses =
      o.db.statistics->getTickerCount(rocksdb::BLOCK_CACHE_FILTER_MISS) - misses_before;
  // Partitioned: each partition read once (a few hundred at most); whole:
  // the filter read for every Get.
  EXPECT_LT(misses, static_cast<uint64_t>(kGets / 4))
      << "filter block reads for " << kGets << " Gets; filter bytes loaded: "
      << o.db.statistics->getTickerCount(rocksdb::BLOCK_CACHE_FILTER_BYTES_INSERT);
  for (rocksdb::ColumnFamilyHandle* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
}

// The names of this process's threads.
std::multiset<std::string> ThreadNames() {
  std::multiset<std::string> names;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream in(task.path() / "comm");
    std::string name;
    std::getline(in, name);
    names.insert(name);
  }
  return names;
}

TEST(RocksDbOptionsTest, CommitThreadsAreNamedForPerThreadCpuAccounting) {
  ScopedTempDir dir;
  auto store = OpenEventStore(dir.path(), StoreOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  // Both threads name themselves first thing; an append round trip through
  // both of them means both have started.
  ASSERT_TRUE((*store)->Append({MakeEntry("e1", "payload")}).ok());
  const std::multiset<std::string> names = ThreadNames();
  EXPECT_EQ(names.count("fs-committer"), 1u);
  EXPECT_EQ(names.count("fs-writer"), 1u);
}

}  // namespace
}  // namespace fieldsync::storage
