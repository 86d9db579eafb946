// The RocksDB options of the event store, in one place.
//
// RocksDbEventStore opens its database with exactly what StoreRocksDbOptions
// returns (plus its Env and its background-error listener), and the raw
// RocksDB ceiling of the benchmarks (bench/raw_rocksdb_baseline.cc) opens its
// database with the same function, so the two cannot drift: the benchmarks'
// ratio then measures fieldsync's code, not a different configuration
// (issue 13). The options themselves, and why, are in docs/storage.md.
//
// This header exposes RocksDB types: it is for storage/ itself and for the
// benchmarks, not for the modules above storage (they see StoreOptions only).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "storage/event_store.h"

namespace fieldsync::storage {

// Database and column-family options for a store opened with `options`.
struct RocksDbOpenOptions {
  rocksdb::DBOptions db;
  // Every column family of the store, in this order: default (metadata),
  // log, event_ids, subjects, scopes, projections, blobs (keys::k*Family).
  // The families share one LRU block cache of options.block_cache_bytes.
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
};

// The store's RocksDB options. Env and listeners are left at their defaults:
// the caller sets them (the store sets its file system and its
// background-error listener).
RocksDbOpenOptions StoreRocksDbOptions(const StoreOptions& options);

// Changes RocksDB options before a store opens with them.
using RocksDbTuning = std::function<void(RocksDbOpenOptions&)>;

// OpenEventStore, but RocksDB opens (and every recovery reopens) with
// StoreRocksDbOptions(options) as changed by `tune` (null: unchanged). For
// benchmarks and experiments only: storage_bench measures one option change
// at a time with it; fieldsyncd never calls it.
absl::StatusOr<std::unique_ptr<EventStore>> OpenEventStoreWithTuning(const std::string& path,
                                                                     StoreOptions options,
                                                                     RocksDbTuning tune);

}  // namespace fieldsync::storage
