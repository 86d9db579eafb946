// EventStore: fieldsync's durable, append-only global event log over RocksDB.
//
// What it offers:
//   - Append: records get contiguous, gapless offsets from 1. Every append is
//     written with its indexes (event_id, subject, scope) and the projection
//     writes its caller hands it in ONE RocksDB WriteBatch with a synced WAL.
//     Concurrent appends are coalesced into one synced write (group commit);
//     each caller gets its own offsets back. When Append returns OK the
//     records are on disk. Two store threads do it, pipelined: the committer
//     thread prepares a group (offsets, prepare hooks, hashes) while the
//     writer thread syncs the previous one and then answers it (AppendAsync
//     callbacks, on_group_committed, head listeners).
//   - Idempotency: an event_id already stored answers its original offset,
//     forever, across restarts.
//   - Reads by offset, by subject and by area-code scope, bounded by count and
//     bytes; event_id lookup; the head offset; listeners told when it moves.
//   - A hash chain over the log; VerifyChain finds edited or missing records.
//   - A projections key-value space written atomically with the log.
//   - A content-addressed blob store (SHA-256) with resumable chunked uploads.
//     A partial upload belongs to one owner (an opaque tag: the server's
//     device id) and records the time of its last chunk; its bytes live in a
//     plain file (<path>/blob_uploads/<hex sha256>) so that discarding it
//     gives the disk back at once.
//   - Backup to a directory and restore from it.
//
// The payload of a record is opaque bytes to the store (fieldsync writes a
// serialized fieldsync.v1.StoredEvent there). The on-disk format is in
// storage/key_format.h.
//
// Thread safety: an EventStore is safe for concurrent use from any number of
// threads without external synchronization.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/area_code.h"

namespace rocksdb {
class FileSystem;
}  // namespace rocksdb

namespace fieldsync::storage {

// Settings of the store. Every field documents its meaning and its default.
struct StoreOptions {
  // Largest payload of one record, in bytes. Larger appends are InvalidArgument.
  size_t max_record_bytes = 1 << 20;
  // Longest event_id, in bytes.
  size_t max_event_id_bytes = 128;
  // Longest subject key, in bytes.
  size_t max_subject_bytes = 512;
  // Most records one Append call may carry.
  size_t max_append_records = 10000;
  // A commit group stops taking queued appends once it holds this many records
  // or payload bytes; the rest wait for the next group. Bounds the latency one
  // fsync adds and the memory of one WriteBatch. Defaults 2000 records and
  // 8 MiB, the defaults of fieldsyncd's storage.commit_max_batch_events and
  // storage.commit_max_batch_bytes (server/config.cc StoreOptionsFrom; its
  // config_test keeps the two equal).
  size_t max_group_records = 2000;
  size_t max_group_bytes = 8 << 20;
  // The lengths of area-code prefixes indexed for scope reads: county (6),
  // township (9) and village (12) of the 12-digit national code.
  std::vector<size_t> scope_prefix_lengths = {base::kDefaultScopePrefixLengths.begin(),
                                              base::kDefaultScopePrefixLengths.end()};
  // Largest blob (a photo), in bytes. Default 20 MiB (limits.max_blob_bytes).
  uint64_t max_blob_bytes = 20 << 20;
  // Shared LRU block cache for all column families, in bytes. Default 256 MiB:
  // enough for the index and filter blocks of a province's event_id index.
  size_t block_cache_bytes = 256 << 20;
  // Memtable size per column family, in bytes (RocksDB write_buffer_size).
  size_t write_buffer_bytes = 64 << 20;
  // RocksDB flush and compaction threads (max_background_jobs). Default 4
  // (storage.max_background_jobs); a node with few cores sets it lower, the
  // commit path needs one core of its own.
  int max_background_jobs = 4;
  // Most files RocksDB keeps open; -1 keeps them all. Default 4096.
  int max_open_files = 4096;
  // Called by the writer thread after every committed group (after the
  // group's callers were answered). Must not block.
  std::function<void(const struct GroupCommitInfo&)> on_group_committed;

  // How often a read-only store (see EventStore::WriteState) tries to recover:
  // RocksDB's DB::Resume() as a probe that space is back, then a close and
  // reopen of the database. Must be positive. Default 5 s.
  absl::Duration recovery_interval = absl::Seconds(5);
  // The store turns read-only (cause "no space left") when the file system
  // holding it has less free space than this, before RocksDB itself runs out:
  // some of RocksDB 7.8's own paths (its flushes) can still abort the process
  // on a write error the store never sees. Recovery waits until there is this
  // much free space again. 0 turns the check off. Default 0; fieldsyncd sets
  // storage.min_free_space_mb (64 MiB).
  uint64_t min_free_bytes = 0;
  // Called once when the store becomes read-only, with the accurate cause (a
  // RocksDB message, which may name server files: for the operator's log, not
  // for clients), and once with OK when it is writable again. Called from a
  // store or RocksDB thread; must not block and must not call into the store.
  std::function<void(const absl::Status& cause)> on_write_state_changed;

  // The file system RocksDB reads and writes through. Null (the default) is
  // the real one, rocksdb::FileSystem::Default(). Tests inject a wrapper that
  // loses unsynced data (tests/storage/power_loss_fs.h); it must outlive the
  // store. Backups and restores always use the real file system.
  std::shared_ptr<rocksdb::FileSystem> file_system;
};

// What one group commit did; for metrics.
struct GroupCommitInfo {
  size_t appends = 0;        // Append calls answered by this group.
  size_t records = 0;        // Records written (duplicates excluded).
  size_t bytes = 0;          // Bytes of the WriteBatch.
  absl::Duration write_time;  // Time of the synced RocksDB write (WAL fsync included).
  uint64_t head = 0;          // The head offset after the group.
};

// A write into the projections key space; `value` empty-optional deletes `key`.
struct ProjectionWrite {
  std::string key;
  std::optional<std::string> value;
};

class CommitContext;

// One record to append.
struct AppendEntry {
  // Required, unique, at most max_event_id_bytes: the idempotency key.
  std::string event_id;
  // Optional subject key (e.g. "household/620102001001-0001"); indexed for
  // ReadSubject when not empty. No NUL bytes.
  std::string subject;
  // Optional 12-digit admin-area code; when not empty each configured prefix
  // is indexed for ReadScope.
  std::string area_code;
  // Required: the record's bytes, at most max_record_bytes.
  std::string payload;
  // Projection writes committed with this record (dropped if it is a duplicate).
  std::vector<ProjectionWrite> projections;
  // Optional: run by the committer thread, in log order, after the offset is
  // assigned and before the record is hashed. It may read projections as of
  // this point in the log (earlier records of the same group included), add
  // projection writes and rewrite the payload. A non-OK status fails the whole
  // Append call that carries this entry; nothing of that call is written. It
  // must not block and must not call back into the store.
  std::function<absl::Status(CommitContext&)> prepare;
};

// The answer for one AppendEntry.
struct AppendResult {
  uint64_t offset = 0;     // The record's offset (the original one if duplicate).
  bool duplicate = false;  // The event_id was already stored; nothing was written.
};

// Given to AppendEntry::prepare. Valid only during that call.
class CommitContext {
 public:
  virtual ~CommitContext() = default;
  // The offset assigned to the entry being prepared.
  virtual uint64_t offset() const = 0;
  // The entry's payload, which prepare may rewrite.
  virtual std::string& payload() = 0;
  // The projection value of `key` including every write committed before this
  // entry in log order; nullopt if absent.
  virtual absl::StatusOr<std::optional<std::string>> Get(std::string_view key) = 0;
  // The projection entry nearest `key` among those whose key starts with
  // `prefix`, as Get sees them (earlier writes of the group included, deletes
  // hiding stored entries): the first sorting after `key` (forward) or the
  // last before it (backward); `key` itself never, and it need not exist.
  // nullopt when there is none. One ordered seek (plus one step per deleted
  // entry skipped), whatever the number of entries under the prefix.
  virtual absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Nearest(
      std::string_view prefix, std::string_view key, bool forward) = 0;
  virtual void Put(std::string_view key, std::string_view value) = 0;
  virtual void Delete(std::string_view key) = 0;
};

// A record read back from the log.
struct LogRecord {
  uint64_t offset = 0;
  std::string prev_hash;  // 32 bytes.
  std::string hash;       // 32 bytes.
  std::string payload;
};

// Bounds of one read. A read returns at most max_records records and stops
// before exceeding max_bytes of payload, but always returns the first matching
// record if there is one, so a reader makes progress whatever the bound.
struct ReadLimits {
  size_t max_records = 1000;
  size_t max_bytes = 4 << 20;
};

// State of a blob upload.
struct BlobStatus {
  uint64_t received_bytes = 0;  // Bytes stored so far; the next chunk starts here.
  uint64_t total_size = 0;      // Declared size (0 when unknown: no upload started).
  bool complete = false;        // The content is stored and its SHA-256 verified.
  // Of a partial upload (not complete, total_size > 0): the owner tag its
  // first chunk was written with ("" for an upload of an older build) and the
  // time of its last chunk (UnixEpoch for an older build's).
  std::string owner;
  absl::Time updated_at = absl::UnixEpoch();
};

// Who writes a blob chunk, and when (recorded in the partial upload).
struct BlobWriter {
  std::string owner;
  absl::Time now = absl::UnixEpoch();
};

// One partial upload, as ListBlobUploads reports it.
struct BlobUpload {
  std::string sha256;  // 32 bytes.
  BlobStatus status;
};

// What a backup holds.
struct BackupInfo {
  uint32_t backup_id = 0;
  uint64_t head = 0;  // Head offset at the moment of the backup.
  uint64_t size_bytes = 0;
};

class EventStore {
 public:
  virtual ~EventStore() = default;

  // Appends `entries` as one unit: all get offsets or none is written.
  // Returns one result per entry, in order. Entries whose event_id is already
  // stored (or repeated earlier in `entries`) are duplicates and write nothing.
  // Errors: InvalidArgument for an empty batch, a missing or oversized
  // event_id, an oversized payload or subject, a malformed area code (nothing
  // is written); the status of a failing `prepare`; Unavailable if the store is
  // closing; Unavailable "store is read-only: <cause>" when the write failed
  // or the store is read-only (see WriteState; nothing is acknowledged).
  virtual absl::StatusOr<std::vector<AppendResult>> Append(std::vector<AppendEntry> entries) = 0;

  // As Append, but never blocks: `done` is called once, from the store's
  // writer thread (or the calling thread on a validation error), when the
  // records are durable. `done` must not block: the next group's answers wait
  // for it.
  using AppendCallback = std::function<void(absl::StatusOr<std::vector<AppendResult>>)>;
  virtual void AppendAsync(std::vector<AppendEntry> entries, AppendCallback done) = 0;

  // The highest committed offset (0 for an empty log).
  virtual uint64_t Head() const = 0;
  // The area-code prefix lengths ReadScope serves (StoreOptions::
  // scope_prefix_lengths, as opened): readers narrow a scope by these.
  virtual const std::vector<size_t>& scope_prefix_lengths() const = 0;

  // Registers `listener` to be called with the new head after every committed
  // group, from the store's writer thread; it must not block. Head() already
  // returns at least that head when the listener is called. Returns an id for
  // RemoveHeadListener, after which the listener is never called again.
  using HeadListener = std::function<void(uint64_t head)>;
  virtual uint64_t AddHeadListener(HeadListener listener) = 0;
  virtual void RemoveHeadListener(uint64_t id) = 0;

  // Records with offset > `after`, in offset order.
  virtual absl::StatusOr<std::vector<LogRecord>> ReadAfter(uint64_t after,
                                                           ReadLimits limits) const = 0;
  // One record; NotFound past the head.
  virtual absl::StatusOr<LogRecord> Read(uint64_t offset) const = 0;
  // Records of `subject` with offset > `after`, in offset order.
  virtual absl::StatusOr<std::vector<LogRecord>> ReadSubject(std::string_view subject,
                                                             uint64_t after,
                                                             ReadLimits limits) const = 0;
  // Records whose area code starts with `area_prefix` (whose length must be one
  // of StoreOptions::scope_prefix_lengths, else InvalidArgument), offset > after.
  virtual absl::StatusOr<std::vector<LogRecord>> ReadScope(std::string_view area_prefix,
                                                           uint64_t after,
                                                           ReadLimits limits) const = 0;
  // The offset of `event_id`, or nullopt if it was never stored.
  virtual absl::StatusOr<std::optional<uint64_t>> LookupEventId(std::string_view event_id) const = 0;

  // Checks offsets from..to (inclusive; to is clamped to the head): every
  // record present, each prev_hash equal to the previous record's hash and each
  // hash recomputed from its bytes. Returns DataLoss naming the first bad
  // offset, InvalidArgument if from is 0 or from > to.
  virtual absl::Status VerifyChain(uint64_t from, uint64_t to) const = 0;

  // Projections: committed values only.
  virtual absl::StatusOr<std::optional<std::string>> GetProjection(std::string_view key) const = 0;
  // Up to `limit` (key, value) pairs whose key starts with `prefix` and sorts
  // after `start_after` (empty: from the first).
  virtual absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ScanProjections(
      std::string_view prefix, std::string_view start_after, size_t limit) const = 0;

  // Cursors: a named log position kept by a reader of the log that belongs to
  // no event (the Kafka exporter's exported offset), in the projections space
  // under "cursor/<name>" (storage/key_format.h). PutCursor writes it alone,
  // outside any append: it adds no log record and no other key. `name` must
  // not be empty (InvalidArgument). The write is not synced by itself: the
  // store's next synced write (any group commit) or its close makes it
  // durable, so after a machine crash a cursor may read an earlier value
  // (never a later one): a reader must tolerate re-reading. Errors: the write
  // state (Unavailable "store is read-only: ..."), Unavailable while the store
  // reopens.
  virtual absl::Status PutCursor(std::string_view name, uint64_t offset) = 0;
  // The cursor `name`, or nullopt if it was never written. DataLoss if its
  // value is not 8 bytes.
  virtual absl::StatusOr<std::optional<uint64_t>> GetCursor(std::string_view name) const = 0;

  // Blobs, keyed by their 32-byte SHA-256. Uploads are resumable: a chunk must
  // start where the stored bytes end (FailedPrecondition otherwise, with the
  // expected offset in the message). When the last byte arrives the content is
  // verified against `sha256` (InvalidArgument and the upload discarded on a
  // mismatch) and stored. A chunk for a complete blob is accepted and ignored.
  // The first chunk makes the partial upload `writer.owner`'s: a chunk with
  // another owner tag is AlreadyExists and changes nothing (who may own an
  // upload, and when one may be taken over, is the caller's policy: it
  // discards the other's partial with DiscardBlobUpload first). Every chunk
  // records `writer.now` as the partial's last write. Each chunk is durable
  // (file data and entry synced) when this returns.
  virtual absl::StatusOr<BlobStatus> PutBlobChunk(std::string_view sha256, uint64_t total_size,
                                                  uint64_t offset, std::string_view data,
                                                  const BlobWriter& writer) = 0;
  // As above with an empty owner tag and time (tests of the store's format).
  absl::StatusOr<BlobStatus> PutBlobChunk(std::string_view sha256, uint64_t total_size,
                                          uint64_t offset, std::string_view data) {
    return PutBlobChunk(sha256, total_size, offset, data, BlobWriter{});
  }
  virtual absl::StatusOr<BlobStatus> GetBlobStatus(std::string_view sha256) const = 0;
  // Partial uploads whose sha256 sorts after `start_after` (empty: from the
  // first), in sha256 order, at most `limit`.
  virtual absl::StatusOr<std::vector<BlobUpload>> ListBlobUploads(std::string_view start_after,
                                                                  size_t limit) const = 0;
  // Discards the partial upload of `sha256` if it is still `owner`'s (its
  // entry and its file: the disk is given back). Returns the bytes freed; 0
  // and OK when there is no such partial (complete, absent, another owner's).
  virtual absl::StatusOr<uint64_t> DiscardBlobUpload(std::string_view sha256,
                                                     std::string_view owner) = 0;
  // NotFound unless complete.
  virtual absl::StatusOr<std::string> GetBlob(std::string_view sha256) const = 0;

  // Writes a consistent backup of the whole store into `backup_dir` (created if
  // missing; several backups may share it). Safe while appends continue.
  virtual absl::StatusOr<BackupInfo> Backup(const std::string& backup_dir) = 0;

  // Approximate bytes on disk (SST files, blob files and WAL).
  virtual uint64_t ApproximateSizeBytes() const = 0;

  // OK while the store accepts writes. After the first failed write (a full
  // disk, an I/O error) or a RocksDB background error that stops writes, the
  // store is read-only: every write (Append, AppendAsync, PutBlobChunk)
  // answers this status, Unavailable "store is read-only: no space left" (or
  // another cause: "disk I/O error", ...; never a file path), without touching
  // the disk, and reads go on. Every StoreOptions::recovery_interval the store
  // tries to recover by itself; it becomes writable again once that works,
  // with its head and hash chain re-read from disk, so the next append
  // continues the log exactly after the last durable record. While a reopen
  // is under way (or failed) reads answer Unavailable too.
  virtual absl::Status WriteState() const = 0;
};

// Opens (creating if missing) the store in directory `path`. After a crash at
// any instant the store opens consistent: gapless offsets, no duplicate, an
// intact chain. Errors: InvalidArgument for bad options, FailedPrecondition
// for a store of another format version, the RocksDB error otherwise.
absl::StatusOr<std::unique_ptr<EventStore>> OpenEventStore(const std::string& path,
                                                           StoreOptions options = {});

// Restores the latest backup in `backup_dir` into `data_dir`, which must not
// hold a store already (FailedPrecondition). The store must not be open.
absl::Status RestoreEventStore(const std::string& backup_dir, const std::string& data_dir);

// Deletes the oldest backups in `backup_dir` (made by EventStore::Backup) so
// that the newest `keep` remain, and their files that no kept backup shares.
// Returns the ids deleted, oldest first (empty when there were at most `keep`,
// or no backup directory at all). Safe while the store is open and appends go
// on, but not while a Backup into the same directory runs: the caller
// serializes the two (fieldsyncd runs both on one worker). Errors:
// InvalidArgument for keep == 0 (deleting every backup is not pruning); the
// RocksDB error otherwise (then some of the old backups may be gone, never a
// kept one).
absl::StatusOr<std::vector<uint32_t>> PruneBackups(const std::string& backup_dir, size_t keep);

}  // namespace fieldsync::storage
