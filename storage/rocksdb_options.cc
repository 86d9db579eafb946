#include "storage/rocksdb_options.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "rocksdb/cache.h"
#include "rocksdb/convenience.h"
#include "rocksdb/env.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/table.h"
#include "storage/key_format.h"

namespace fieldsync::storage {
namespace {

// RocksDB's own log, warnings and errors only, to stderr (the server's log)
// instead of a LOG file in the data directory: on a full disk RocksDB's file
// logger failed a write, then logged the resulting background error through
// the same failed file writer, and RocksDB's assertion on that path aborted
// the whole server (tests/server/full_disk_test.cc). Nothing of the log
// needs the data disk.
class StderrLogger final : public rocksdb::Logger {
 public:
  StderrLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char line[1024];
    const int n = std::vsnprintf(line, sizeof(line), format, ap);
    if (n < 0) return;
    std::string out = "rocksdb: ";
    out.append(line, std::min<size_t>(static_cast<size_t>(n), sizeof(line) - 1));
    out.push_back('\n');
    std::fwrite(out.data(), 1, out.size(), stderr);  // One write: lines do not interleave.
  }
};

rocksdb::ColumnFamilyOptions FamilyOptions(const StoreOptions& options,
                                           const std::shared_ptr<rocksdb::Cache>& cache,
                                           std::string_view name) {
  rocksdb::ColumnFamilyOptions cf;
  cf.write_buffer_size = options.write_buffer_bytes;
  // LZ4 on the upper levels (cheap), ZSTD on the bottommost (most bytes, cold).
  auto supported = rocksdb::GetSupportedCompressions();
  auto has = [&](rocksdb::CompressionType t) {
    return std::find(supported.begin(), supported.end(), t) != supported.end();
  };
  cf.compression = has(rocksdb::kLZ4Compression) ? rocksdb::kLZ4Compression
                                                  : rocksdb::kSnappyCompression;
  if (has(rocksdb::kZSTD)) cf.bottommost_compression = rocksdb::kZSTD;
  cf.level_compaction_dynamic_level_bytes = true;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.block_size = 16 * 1024;
  table.format_version = 5;
  // Indexes and filters live in the block cache, cut into ~4 KiB partitions
  // under a small pinned top level: a lookup loads the one partition it needs.
  // A whole-file filter of a large file (megabytes) does not stay in its cache
  // shard, so without partitions every Get re-read and re-checksummed it from
  // the file (a 0.6 GB store spent 88% of its commit time there).
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = 4096;
  table.pin_top_level_index_and_filter = true;
  // Point lookups dominate the event_id index (every append checks a new id,
  // which almost always misses) and projections: a bloom filter answers most
  // misses without reading a data block.
  if (name == keys::kEventIdFamily || name == keys::kProjectionFamily) {
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  }
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  if (name == keys::kBlobFamily) {
    // Photos: kept out of the LSM tree in blob files, not compressed (JPEG is).
    cf.enable_blob_files = true;
    cf.min_blob_size = 4096;
    cf.blob_compression_type = rocksdb::kNoCompression;
    cf.enable_blob_garbage_collection = true;
  }
  return cf;
}

}  // namespace

RocksDbOpenOptions StoreRocksDbOptions(const StoreOptions& options) {
  RocksDbOpenOptions out;
  rocksdb::DBOptions& db = out.db;
  db.create_if_missing = true;
  db.create_missing_column_families = true;
  db.max_background_jobs = options.max_background_jobs;
  db.max_open_files = options.max_open_files;
  db.bytes_per_sync = 1 << 20;
  db.max_total_wal_size = 512 << 20;
  db.info_log = std::make_shared<StderrLogger>();
  db.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  db.paranoid_checks = true;
  // Recover everything the WAL holds that was synced; a torn tail record from
  // a crash mid-write (never acknowledged) is dropped.
  db.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;

  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  for (const char* name : {rocksdb::kDefaultColumnFamilyName.c_str(), keys::kLogFamily,
                           keys::kEventIdFamily, keys::kSubjectFamily, keys::kScopeFamily,
                           keys::kProjectionFamily, keys::kBlobFamily}) {
    out.families.emplace_back(name, FamilyOptions(options, cache, name));
  }
  return out;
}

}  // namespace fieldsync::storage
