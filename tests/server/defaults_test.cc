// One defaults table (issue 8): the options of storage, of the sync engine
// and of the services are derived from the ServerConfig in one place
// (server/config.cc), and the defaults each part keeps for itself (for its
// own tests and benchmarks) are the config's defaults, not another copy
// (they were 8192 vs 2000 group records, 64 vs 20 MiB blobs).
#include "gtest/gtest.h"
#include "server/config.h"

namespace fieldsync::server {
namespace {

TEST(DefaultsTest, TheStoreDefaultsAreTheConfigDefaults) {
  const storage::StoreOptions derived = StoreOptionsFrom(v1::ServerConfig());
  const storage::StoreOptions own;
  EXPECT_EQ(derived.max_group_records, own.max_group_records);
  EXPECT_EQ(derived.max_group_bytes, own.max_group_bytes);
  EXPECT_EQ(derived.max_blob_bytes, own.max_blob_bytes);
  EXPECT_EQ(derived.block_cache_bytes, own.block_cache_bytes);
  EXPECT_EQ(derived.write_buffer_bytes, own.write_buffer_bytes);
  EXPECT_EQ(derived.max_background_jobs, own.max_background_jobs);
  EXPECT_EQ(derived.max_open_files, own.max_open_files);
  EXPECT_EQ(derived.recovery_interval, own.recovery_interval);
  // On purpose different: fieldsyncd checks free space (storage alone does
  // not) and takes records as large as one gRPC message.
  EXPECT_EQ(derived.min_free_bytes, uint64_t{64} << 20);
  EXPECT_EQ(derived.max_record_bytes, size_t{4} << 20);
  // The documented values.
  EXPECT_EQ(derived.max_group_records, 2000u);
  EXPECT_EQ(derived.max_blob_bytes, uint64_t{20} << 20);
}

TEST(DefaultsTest, TheEngineDefaultsAreTheConfigDefaults) {
  const sync::SyncOptions derived = SyncOptionsFrom(SettingsFrom(v1::ServerConfig()), {});
  const sync::SyncOptions own;
  EXPECT_EQ(derived.max_push_events, own.max_push_events);
  EXPECT_EQ(derived.max_push_bytes, own.max_push_bytes);
  EXPECT_EQ(derived.max_event_bytes, own.max_event_bytes);
  EXPECT_EQ(derived.max_hlc_skew, own.max_hlc_skew);
  EXPECT_EQ(derived.max_pull_events, own.max_pull_events);
  EXPECT_EQ(derived.max_pull_bytes, own.max_pull_bytes);
  EXPECT_EQ(derived.max_page_size, own.max_page_size);
  EXPECT_EQ(derived.max_examined_records, own.max_examined_records);
}

TEST(DefaultsTest, AnEmptyConfigGivesTheDocumentedServiceSettings) {
  const ServiceSettings s = SettingsFrom(v1::ServerConfig());
  EXPECT_EQ(s.max_blob_bytes, uint64_t{20} << 20);
  EXPECT_EQ(s.max_page_size, 1000u);
  EXPECT_EQ(s.backups_to_keep, 7u);
  EXPECT_EQ(s.read_threads, 4u);
  EXPECT_EQ(s.read_queue_depth, 256u);
  EXPECT_EQ(s.max_examined_records, 10000u);
  EXPECT_EQ(s.max_streams_per_user, 16u);
  EXPECT_EQ(s.backup_dir, "./var/data/backups");
  EXPECT_EQ(s.max_hlc_skew, absl::Minutes(5));
}

TEST(DefaultsTest, TheConfigsValuesReachEveryPart) {
  v1::ServerConfig config;
  config.mutable_storage()->set_commit_max_batch_events(7);
  config.mutable_limits()->set_max_blob_bytes(1234);
  config.mutable_limits()->set_max_examined_records(9);
  config.mutable_storage()->set_backups_to_keep(3);
  EXPECT_EQ(StoreOptionsFrom(config).max_group_records, 7u);
  EXPECT_EQ(StoreOptionsFrom(config).max_blob_bytes, 1234u);
  const ServiceSettings settings = SettingsFrom(config);
  EXPECT_EQ(settings.max_blob_bytes, 1234u);
  EXPECT_EQ(settings.backups_to_keep, 3u);
  EXPECT_EQ(SyncOptionsFrom(settings, {}).max_examined_records, 9u);
}

}  // namespace
}  // namespace fieldsync::server
