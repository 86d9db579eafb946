// RocksDbEventStore: the EventStore over RocksDB. See event_store.h for the
// contract and key_format.h for the on-disk format.
//
// Commit path: Append validates in the caller's thread and queues the request.
// One committer thread takes every queued request (bounded by
// max_group_records/bytes), assigns offsets, runs the prepare hooks, extends
// the hash chain, and writes the whole group as one WriteBatch with sync=true.
// A request whose prepare hook fails is rolled back with a WriteBatch save
// point; the others in the group are unaffected. Only after the write returns
// is the head published and every caller answered, so a record that is visible
// or acknowledged is on disk.
//
// Failed writes: the first write that fails (a full disk, an I/O error) or a
// RocksDB background error that stops writes makes the store read-only (the
// WriteGate below). No write reaches RocksDB after that: RocksDB 7.8 aborts on
// an assertion when a WAL writer that has seen an error is written again.
// The committer thread retries recovery every recovery_interval: DB::Resume()
// as a probe that space is back, then a close and reopen, which replays the
// synced WAL, drops a torn tail and starts a fresh WAL writer; the head and
// the chain's last hash are re-read from disk, so nothing half-written or
// unacknowledged leaves a gap or forks the chain.
#include <fcntl.h>
#include <pthread.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "base/area_code.h"
#include "base/big_endian.h"
#include "base/status_macros.h"
#include "base/text.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "rocksdb/listener.h"
#include "rocksdb/options.h"
#include "rocksdb/utilities/backup_engine.h"
#include "rocksdb/write_batch.h"
#include "storage/event_store.h"
#include "storage/key_format.h"
#include "storage/rocksdb_options.h"
#include "storage/sha256.h"
#include "storage/write_overlay.h"

namespace fieldsync::storage {
namespace {

// The single border where RocksDB statuses become absl statuses.
absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string message = absl::StrCat(std::string(what), ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(message);
  if (s.IsCorruption()) return absl::DataLossError(message);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(message);
  if (s.IsNotSupported()) return absl::UnimplementedError(message);
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) return absl::UnavailableError(message);
  if (s.IsShutdownInProgress()) return absl::UnavailableError(message);
  return absl::InternalError(message);
}

// The least key greater than every key starting with `prefix`: its last
// byte below 0xff incremented, the bytes after it dropped; empty if there is
// none (every byte 0xff, or no prefix): then there is no upper bound.
std::string PrefixUpperBound(std::string_view prefix) {
  std::string out(prefix);
  while (!out.empty() && static_cast<unsigned char>(out.back()) == 0xff) out.pop_back();
  if (!out.empty()) out.back() = static_cast<char>(static_cast<unsigned char>(out.back()) + 1);
  return out;
}

// The error every write answers while the store is read-only: the cause in
// words a client may see, never RocksDB's message (it names server files).
absl::Status ReadOnlyError(const rocksdb::Status& s) {
  const char* cause = "write failed";
  if (s.IsNoSpace()) {
    cause = "no space left";
  } else if (s.subcode() == rocksdb::Status::kSpaceLimit) {
    cause = "space limit reached";
  } else if (s.IsIOError()) {
    cause = "disk I/O error";
  } else if (s.IsCorruption()) {
    cause = "data corruption detected";
  }
  return absl::UnavailableError(absl::StrCat("store is read-only: ", cause));
}

// Whether the store accepts writes. Shared by the store and the RocksDB
// listener that reports background errors. Thread-safe.
class WriteGate {
 public:
  explicit WriteGate(std::function<void(const absl::Status&)> on_change)
      : on_change_(std::move(on_change)) {}

  bool read_only() const { return read_only_.load(std::memory_order_acquire); }

  // OK, or the Unavailable status every write answers.
  absl::Status state() const {
    if (!read_only()) return absl::OkStatus();
    absl::MutexLock lock(&mu_);
    return error_;
  }

  // Makes the store read-only because of `cause`. Only the first call after
  // being writable counts (and is reported): a full disk fails many writes.
  void Close(const rocksdb::Status& cause) {
    absl::MutexLock lock(&mu_);
    if (read_only()) return;
    error_ = ReadOnlyError(cause);
    read_only_.store(true, std::memory_order_release);
    // Under the lock, so reports arrive in the order of the changes.
    if (on_change_) {
      on_change_(absl::UnavailableError(absl::StrCat(error_.message(), " (", cause.ToString(), ")")));
    }
  }

  // Makes the store writable again; recovery only.
  void Open() {
    absl::MutexLock lock(&mu_);
    if (!read_only()) return;
    error_ = absl::OkStatus();
    read_only_.store(false, std::memory_order_release);
    if (on_change_) on_change_(absl::OkStatus());
  }

 private:
  const std::function<void(const absl::Status&)> on_change_;
  std::atomic<bool> read_only_{false};
  mutable absl::Mutex mu_;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

// Closes the gate on a background error that stops writes (a failed flush,
// WAL or MANIFEST write), so that health and metrics show it before the next
// write fails. Compaction errors do not stop writes and are left to RocksDB.
class BackgroundErrorListener final : public rocksdb::EventListener {
 public:
  explicit BackgroundErrorListener(std::shared_ptr<WriteGate> gate) : gate_(std::move(gate)) {}

  void OnBackgroundError(rocksdb::BackgroundErrorReason reason,
                         rocksdb::Status* bg_error) override {
    if (bg_error == nullptr || bg_error->ok()) return;
    if (reason == rocksdb::BackgroundErrorReason::kCompaction) return;
    gate_->Close(*bg_error);
  }

  // The store recovers by itself (Resume, then a reopen, see TryRecover), so
  // RocksDB's own recovery is turned off: it would clear the error while the
  // WAL writer that saw it may still be in place, and a manual Resume()
  // answers Busy for as long as it runs.
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason /*reason*/,
                            rocksdb::Status /*bg_error*/, bool* auto_recovery) override {
    if (auto_recovery != nullptr) *auto_recovery = false;
  }

 private:
  const std::shared_ptr<WriteGate> gate_;
};

// Written with every group: the head it reached.
constexpr char kHeadKey[] = "head";

const std::string& ZeroHash() {
  static const std::string* zero = new std::string(keys::kHashSize, '\0');
  return *zero;
}

absl::StatusOr<LogRecord> ParseRecord(uint64_t offset, std::string_view value) {
  if (value.size() < keys::kRecordHeaderSize ||
      static_cast<uint8_t>(value[0]) != keys::kRecordFormat) {
    return absl::DataLossError(absl::StrCat("record ", offset, " has a malformed header"));
  }
  LogRecord record;
  record.offset = offset;
  record.prev_hash = std::string(value.substr(1, keys::kHashSize));
  record.hash = std::string(value.substr(1 + keys::kHashSize, keys::kHashSize));
  record.payload = std::string(value.substr(keys::kRecordHeaderSize));
  return record;
}

std::string ChainHash(std::string_view prev_hash, uint64_t offset, std::string_view payload) {
  return DigestBytes(Sha256({prev_hash, keys::LogKey(offset), payload}));
}

struct PendingAppend {
  std::vector<AppendEntry> entries;
  EventStore::AppendCallback done;
  size_t bytes = 0;
};

// Projection values written earlier in the group: nullopt marks a delete.
using Overlay = WriteOverlay;

// One commit group, prepared by the committer and written by the writer.
struct PreparedGroup {
  std::vector<std::unique_ptr<PendingAppend>> group;
  rocksdb::WriteBatch batch;
  std::vector<absl::StatusOr<std::vector<AppendResult>>> answers;  // One per append.
  size_t records = 0;          // Records written (duplicates excluded).
  size_t entries = 0;          // Entries of its appends (duplicates included).
  size_t bytes = 0;            // Payload bytes of its appends.
  uint64_t first_offset = 0;   // The offset the group starts at.
  std::string hash_before;     // The chain's last hash before the group.
  uint64_t next_offset = 0;    // The offset after the group.
  std::string last_hash;       // The chain's last hash after the group.
  Overlay overlay;             // Its projection writes, for the next group's hooks.
  std::unordered_map<std::string, uint64_t> ids;  // Its new event_ids.
};

class RocksDbEventStore;

// A RocksDB database opened for the store, with the head and the chain's last
// hash read from its log.
struct OpenedDb {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // Owned.
  uint64_t head = 0;
  std::string last_hash;
};

absl::StatusOr<OpenedDb> OpenDb(const std::string& path, const StoreOptions& options,
                                const RocksDbTuning& tune, rocksdb::Env* env,
                                const std::shared_ptr<rocksdb::EventListener>& listener);

// The CommitContext of one entry. Writes go to the request's overlay, merged
// into the group's when the request succeeds (dropped if it fails); the
// group's overlay goes into its WriteBatch once, when the group is complete,
// so a key written by many events of a group is written to RocksDB once.
class EntryContext final : public CommitContext {
 public:
  EntryContext(const RocksDbEventStore* store, Overlay* request_overlay,
               const Overlay* group_overlay, const Overlay* in_flight_overlay, uint64_t offset,
               std::string* payload)
      : store_(store),
        request_overlay_(request_overlay),
        group_overlay_(group_overlay),
        in_flight_overlay_(in_flight_overlay),
        offset_(offset),
        payload_(payload) {}

  uint64_t offset() const override { return offset_; }
  std::string& payload() override { return *payload_; }
  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) override;
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Nearest(
      std::string_view prefix, std::string_view key, bool forward) override;
  void Put(std::string_view key, std::string_view value) override {
    auto [it, added] = request_overlay_->try_emplace(std::string(key), std::in_place, value);
    if (!added) it->second.emplace(value);
  }
  void Delete(std::string_view key) override {
    (*request_overlay_)[std::string(key)] = std::nullopt;
  }

 private:
  const RocksDbEventStore* store_;
  Overlay* request_overlay_;
  const Overlay* group_overlay_;
  const Overlay* in_flight_overlay_;  // Null when no group is being written.
  uint64_t offset_;
  std::string* payload_;
};

class RocksDbEventStore final : public EventStore {
 public:
  RocksDbEventStore(std::string path, StoreOptions options, RocksDbTuning tune,
                    std::unique_ptr<rocksdb::Env> env, std::shared_ptr<WriteGate> gate,
                    std::shared_ptr<rocksdb::EventListener> listener, OpenedDb opened)
      : path_(std::move(path)),
        options_(std::move(options)),
        tune_(std::move(tune)),
        env_(std::move(env)),
        gate_(std::move(gate)),
        listener_(std::move(listener)),
        next_offset_(opened.head + 1),
        last_hash_(opened.last_hash),
        published_head_(opened.head) {
    Adopt(std::move(opened));
    writer_ = std::thread([this] { WriterLoop(); });
    committer_ = std::thread([this] { CommitterLoop(); });
  }

  ~RocksDbEventStore() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    committer_.join();  // Drains every queued append first,
    writer_.join();     // then the writer finishes the last group.
    CloseDb();
  }

  absl::Status WriteState() const override { return gate_->state(); }

  absl::StatusOr<std::vector<AppendResult>> Append(std::vector<AppendEntry> entries) override {
    absl::Notification done;
    absl::StatusOr<std::vector<AppendResult>> result;
    AppendAsync(std::move(entries), [&](absl::StatusOr<std::vector<AppendResult>> r) {
      result = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  }

  void AppendAsync(std::vector<AppendEntry> entries, AppendCallback done) override {
    size_t bytes = 0;
    if (absl::Status status = Validate(entries, &bytes); !status.ok()) {
      done(status);
      return;
    }
    if (absl::Status state = gate_->state(); !state.ok()) {
      done(state);
      return;
    }
    auto pending = std::make_unique<PendingAppend>();
    pending->entries = std::move(entries);
    pending->done = std::move(done);
    pending->bytes = bytes;
    {
      absl::MutexLock lock(&mu_);
      if (!stopping_) {
        queue_.push_back(std::move(pending));
        return;
      }
    }
    pending->done(absl::UnavailableError("the event store is closing"));
  }

  uint64_t Head() const override { return published_head_.load(std::memory_order_acquire); }
  const std::vector<size_t>& scope_prefix_lengths() const override {
    return options_.scope_prefix_lengths;
  }

  uint64_t AddHeadListener(HeadListener listener) override {
    absl::MutexLock lock(&listener_mu_);
    uint64_t id = next_listener_id_++;
    listeners_.emplace(id, std::move(listener));
    return id;
  }

  void RemoveHeadListener(uint64_t id) override {
    absl::MutexLock lock(&listener_mu_);
    listeners_.erase(id);
  }

  absl::StatusOr<std::vector<LogRecord>> ReadAfter(uint64_t after,
                                                   ReadLimits limits) const override {
    absl::ReaderMutexLock db_lock(&db_mu_);
    RETURN_IF_ERROR(CheckOpen());
    std::vector<LogRecord> out;
    size_t bytes = 0;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), log_));
    for (it->Seek(keys::LogKey(after + 1)); it->Valid() && out.size() < limits.max_records;
         it->Next()) {
      std::optional<uint64_t> offset = keys::ParseLogKey(it->key().ToStringView());
      if (!offset) return absl::DataLossError("malformed key in the log column family");
      ASSIGN_OR_RETURN(LogRecord record, ParseRecord(*offset, it->value().ToStringView()));
      if (!out.empty() && bytes + record.payload.size() > limits.max_bytes) break;
      bytes += record.payload.size();
      out.push_back(std::move(record));
    }
    RETURN_IF_ERROR(FromRocks(it->status(), "reading the log"));
    return out;
  }

  absl::StatusOr<LogRecord> Read(uint64_t offset) const override {
    absl::ReaderMutexLock db_lock(&db_mu_);
    return ReadLocked(offset);
  }

  absl::StatusOr<LogRecord> ReadLocked(uint64_t offset) const ABSL_SHARED_LOCKS_REQUIRED(db_mu_) {
    RETURN_IF_ERROR(CheckOpen());
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), log_, keys::LogKey(offset), &value);
    if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("no record at offset ", offset));
    RETURN_IF_ERROR(FromRocks(s, "reading a record"));
    return ParseRecord(offset, value);
  }

  absl::StatusOr<std::vector<LogRecord>> ReadSubject(std::string_view subject, uint64_t after,
                                                     ReadLimits limits) const override {
    if (subject.empty()) return absl::InvalidArgumentError("subject is required");
    return ReadIndex(subjects_, keys::SubjectPrefix(subject), keys::SubjectKey(subject, after + 1),
                     limits);
  }

  absl::StatusOr<std::vector<LogRecord>> ReadScope(std::string_view area_prefix, uint64_t after,
                                                   ReadLimits limits) const override {
    const auto& lengths = options_.scope_prefix_lengths;
    if (std::find(lengths.begin(), lengths.end(), area_prefix.size()) == lengths.end() ||
        !base::IsDigits(area_prefix)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "scope prefix '", std::string(area_prefix), "' is not an indexed area-code prefix (digits, of length ",
          absl::StrJoin(lengths, ", "), ")"));
    }
    return ReadIndex(scopes_, keys::ScopePrefix(area_prefix),
                     keys::ScopeKey(area_prefix, after + 1), limits);
  }

  absl::StatusOr<std::optional<uint64_t>> LookupEventId(std::string_view event_id) const override {
    absl::ReaderMutexLock db_lock(&db_mu_);
    RETURN_IF_ERROR(CheckOpen());
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), event_ids_, event_id, &value);
    if (s.IsNotFound()) return std::nullopt;
    RETURN_IF_ERROR(FromRocks(s, "looking up an event_id"));
    if (value.size() != 8) return absl::DataLossError("malformed event_id index entry");
    return base::ReadBe64Prefix(value);
  }

  absl::Status VerifyChain(uint64_t from, uint64_t to) const override {
    if (from == 0) return absl::InvalidArgumentError("VerifyChain: offsets start at 1");
    if (from > to) return absl::InvalidArgumentError("VerifyChain: from is after to");
    to = std::min(to, Head());
    if (from > to) return absl::OkStatus();
    absl::ReaderMutexLock db_lock(&db_mu_);
    RETURN_IF_ERROR(CheckOpen());
    std::string expected_prev = ZeroHash();
    if (from > 1) {
      absl::StatusOr<LogRecord> before = ReadLocked(from - 1);
      if (absl::IsNotFound(before.status())) {
        return absl::DataLossError(absl::StrCat("record ", from - 1, " is missing"));
      }
      RETURN_IF_ERROR(before.status());
      expected_prev = before->hash;
    }
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), log_));
    it->Seek(keys::LogKey(from));
    for (uint64_t expected = from; expected <= to; ++expected, it->Next()) {
      if (!it->Valid() || keys::ParseLogKey(it->key().ToStringView()) != expected) {
        RETURN_IF_ERROR(FromRocks(it->status(), "verifying the chain"));
        return absl::DataLossError(absl::StrCat("record ", expected, " is missing"));
      }
      ASSIGN_OR_RETURN(LogRecord record, ParseRecord(expected, it->value().ToStringView()));
      if (record.prev_hash != expected_prev) {
        return absl::DataLossError(absl::StrCat("record ", expected,
                                                ": prev_hash does not match the hash of record ",
                                                expected - 1));
      }
      if (ChainHash(record.prev_hash, expected, record.payload) != record.hash) {
        return absl::DataLossError(
            absl::StrCat("record ", expected, ": hash does not match its contents"));
      }
      expected_prev = record.hash;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<std::string>> GetProjection(std::string_view key) const override {
    absl::ReaderMutexLock db_lock(&db_mu_);
    RETURN_IF_ERROR(CheckOpen());
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), projections_, key, &value);
    if (s.IsNotFound()) return std::nullopt;
    RETURN_IF_ERROR(FromRocks(s, "reading a projection"));
    return value;
  }

  // CommitContext::Nearest over the stored projections with `overlays` (the
  // writes not stored yet, the first hiding the others) on top.
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> NearestProjection(
      std::string_view prefix, std::string_view key, bool forward,
      std::initializer_list<const Overlay*> overlays) const {
    absl::ReaderMutexLock db_lock(&db_mu_);
    RETURN_IF_ERROR(CheckOpen());
    // The iterator is bounded to the prefix, so a seek neither reads nor
    // steps over the keys of other prefixes (a cadre with no visit after
    // this one costs one bounded seek, not a walk into the next cadre's).
    rocksdb::ReadOptions read;
    const std::string upper = PrefixUpperBound(prefix);
    const rocksdb::Slice lower_bound(prefix.data(), prefix.size()), upper_bound(upper);
    read.iterate_lower_bound = &lower_bound;
    if (!upper.empty()) read.iterate_upper_bound = &upper_bound;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, projections_));
    auto step = [&] { forward ? it->Next() : it->Prev(); };
    if (forward) {
      it->Seek(key);
    } else {
      it->SeekForPrev(key);
    }
    if (it->Valid() && it->key().ToStringView() == key) step();
    std::string cursor(key);
    while (true) {
      RETURN_IF_ERROR(FromRocks(it->status(), "seeking a projection"));
      std::optional<std::string_view> stored;
      if (it->Valid() && it->key().ToStringView().starts_with(prefix)) {
        stored = it->key().ToStringView();
      }
      // The overlay entry nearest the cursor; on a tie the first overlay's,
      // which hides the others (an overlay nearer than another cannot hold
      // the other's key, so the nearest is resolved by its own overlay).
      const Overlay::value_type* written = nullptr;
      for (const Overlay* overlay : overlays) {
        if (overlay == nullptr) continue;
        const Overlay::value_type* entry = OverlayNearest(*overlay, prefix, cursor, forward);
        if (entry == nullptr) continue;
        if (written == nullptr ||
            (forward ? entry->first < written->first : entry->first > written->first)) {
          written = entry;
        }
      }
      if (!stored && written == nullptr) return std::nullopt;
      const bool overlay_first =
          written != nullptr &&
          (!stored || (forward ? written->first <= *stored : written->first >= *stored));
      if (!overlay_first) return std::make_pair(std::string(*stored), it->value().ToString());
      if (written->second) return std::make_pair(written->first, *written->second);
      // Deleted by a write not stored yet: look past it.
      if (stored && *stored == written->first) step();
      cursor = written->first;
    }
  }

  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ScanProjections(
      std::string_view prefix, std::string_view start_after, size_t limit) const override {
    absl::ReaderMutexLock db_lock(&db_mu_);
    RETURN_IF_ERROR(CheckOpen());
    std::vector<std::pair<std::string, std::string>> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), projections_));
    if (start_after.empty() || start_after < prefix) {
      it->Seek(prefix);
    } else {
      it->Seek(start_after);
      if (it->Valid() && it->key().ToStringView() == start_after) it->Next();
    }
    for (; it->Valid() && out.size() < limit; it->Next()) {
      std::string_view key = it->key().ToStringView();
      if (!key.starts_with(prefix)) break;
      out.emplace_back(std::string(key), it->value().ToString());
    }
    RETURN_IF_ERROR(FromRocks(it->status(), "scanning projections"));
    return out;
  }

  absl::Status PutCursor(std::string_view name, uint64_t offset) override {
    if (name.empty()) return absl::InvalidArgumentError("cursor name is empty");
    // Shared: a recovery cannot swap the database under the write.
    absl::ReaderMutexLock db_lock(&db_mu_);
    RETURN_IF_ERROR(CheckOpen());
    rocksdb::WriteBatch batch;
    batch.Put(projections_, keys::CursorKey(name), keys::OffsetValue(offset));
    return WriteToDb(&batch, /*sync=*/false);
  }

  absl::StatusOr<std::optional<uint64_t>> GetCursor(std::string_view name) const override {
    if (name.empty()) return absl::InvalidArgumentError("cursor name is empty");
    ASSIGN_OR_RETURN(std::optional<std::string> value, GetProjection(keys::CursorKey(name)));
    if (!value.has_value()) return std::nullopt;
    if (value->size() != 8) {
      return absl::DataLossError(absl::StrCat("cursor ", std::string(name), " holds ", value->size(),
                                              " bytes, not 8"));
    }
    return base::ReadBe64Prefix(*value);
  }

  using EventStore::PutBlobChunk;
  absl::StatusOr<BlobStatus> PutBlobChunk(std::string_view sha256, uint64_t total_size,
                                          uint64_t offset, std::string_view data,
                                          const BlobWriter& writer) override;
  absl::StatusOr<BlobStatus> GetBlobStatus(std::string_view sha256) const override;
  absl::StatusOr<std::vector<BlobUpload>> ListBlobUploads(std::string_view start_after,
                                                          size_t limit) const override;
  absl::StatusOr<uint64_t> DiscardBlobUpload(std::string_view sha256,
                                             std::string_view owner) override;
  absl::StatusOr<std::string> GetBlob(std::string_view sha256) const override;

  // Sets the directory of partial uploads' bytes (created if missing) and
  // reconciles it with the upload entries: entries without their bytes and
  // files without an entry are discarded. Called once by OpenEventStore.
  absl::Status OpenBlobUploads(std::string upload_dir);

  absl::StatusOr<BackupInfo> Backup(const std::string& backup_dir) override {
    std::error_code ec;
    std::filesystem::create_directories(backup_dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("creating ", backup_dir, ": ", ec.message()));
    rocksdb::BackupEngine* raw_engine = nullptr;
    RETURN_IF_ERROR(FromRocks(rocksdb::BackupEngine::Open(rocksdb::Env::Default(),
                                                          rocksdb::BackupEngineOptions(backup_dir),
                                                          &raw_engine),
                              "opening the backup directory"));
    std::unique_ptr<rocksdb::BackupEngine> engine(raw_engine);
    absl::ReaderMutexLock db_lock(&db_mu_);
    RETURN_IF_ERROR(CheckOpen());
    // Every record up to `head` is in the backup; later ones may be too.
    uint64_t head = Head();
    rocksdb::CreateBackupOptions create;
    create.flush_before_backup = true;
    rocksdb::BackupID id = 0;
    RETURN_IF_ERROR(
        FromRocks(engine->CreateNewBackupWithMetadata(create, db_.get(), "", &id), "backup"));
    rocksdb::BackupInfo info;
    RETURN_IF_ERROR(FromRocks(engine->GetBackupInfo(id, &info), "reading the backup info"));
    return BackupInfo{.backup_id = id, .head = head, .size_bytes = info.size};
  }

  uint64_t ApproximateSizeBytes() const override {
    absl::ReaderMutexLock db_lock(&db_mu_);
    if (db_ == nullptr) return 0;
    uint64_t total = 0;
    for (const char* property : {"rocksdb.total-sst-files-size", "rocksdb.total-blob-file-size",
                                 "rocksdb.cur-size-all-mem-tables"}) {
      uint64_t value = 0;
      if (db_->GetAggregatedIntProperty(property, &value)) total += value;
    }
    return total;
  }

 private:
  friend class EntryContext;

  // Readers hold db_mu_ shared; only a recovery swaps the database, under the
  // exclusive lock. db_ is null after a reopen that failed.
  absl::Status CheckOpen() const ABSL_SHARED_LOCKS_REQUIRED(db_mu_) {
    if (db_ == nullptr) {
      return absl::UnavailableError("store is read-only: reopening after a failed write");
    }
    return absl::OkStatus();
  }

  void Adopt(OpenedDb opened) {
    db_ = std::move(opened.db);
    handles_ = std::move(opened.handles);
    for (auto* handle : handles_) {
      const std::string& name = handle->GetName();
      if (name == keys::kLogFamily) log_ = handle;
      if (name == keys::kEventIdFamily) event_ids_ = handle;
      if (name == keys::kSubjectFamily) subjects_ = handle;
      if (name == keys::kScopeFamily) scopes_ = handle;
      if (name == keys::kProjectionFamily) projections_ = handle;
      if (name == keys::kBlobFamily) blobs_ = handle;
      if (name == rocksdb::kDefaultColumnFamilyName) meta_ = handle;
    }
  }

  void CloseDb() {
    if (db_ == nullptr) return;
    for (auto* handle : handles_) {
      // Ignored on purpose: closing cannot be retried and the data is synced.
      db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    }
    handles_.clear();
    // Ignored on purpose: after a failed write Close reports that error again.
    db_->Close().PermitUncheckedError();
    db_.reset();
  }

  // Every write to RocksDB after the open goes through here: synced (but for
  // cursors, which the next synced write makes durable), one at a time, and
  // only while the gate is open, so that no write is issued after a failed
  // one, not even one that checked the gate just before the failure
  // (RocksDB's own recovery may clear its error while the WAL writer that saw
  // it is still in place). A failure closes the gate.
  absl::Status WriteToDb(rocksdb::WriteBatch* batch, bool sync = true) {
    absl::MutexLock lock(&write_mu_);
    RETURN_IF_ERROR(gate_->state());
    if (!EnoughFreeSpace()) {
      rocksdb::Status low = rocksdb::Status::NoSpace(
          absl::StrCat("free space below min_free_bytes ", options_.min_free_bytes));
      gate_->Close(low);
      return ReadOnlyError(low);
    }
    rocksdb::WriteOptions write;
    write.sync = sync;
    rocksdb::Status s = db_->Write(write, batch);
    if (s.ok()) return absl::OkStatus();
    gate_->Close(s);
    return ReadOnlyError(s);
  }

  // Whether the file system of the store has min_free_bytes free (true when
  // the check is off or statvfs fails: RocksDB then reports a full disk).
  bool EnoughFreeSpace() const {
    if (options_.min_free_bytes == 0) return true;
    struct statvfs fs;
    if (statvfs(path_.c_str(), &fs) != 0) return true;
    return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize >= options_.min_free_bytes;
  }

  // Committer thread, while read-only: once the writer is idle, probes with
  // DB::Resume() and then reopens the database (see the file comment). On
  // success the committer continues from the head and hash re-read from
  // disk and the gate opens; otherwise the next interval tries again.
  void TryRecover() {
    {
      absl::MutexLock lock(&mu_);
      auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return to_write_ == nullptr; };
      mu_.Await(absl::Condition(&idle));
      // The failure is handled here, not by voiding the next group.
      write_status_ = absl::OkStatus();
    }
    in_flight_.reset();
    if (!EnoughFreeSpace()) return;
    // Resume flushes the memtables: it fails while there is no space, and
    // keeps the old database serving reads meanwhile.
    if (db_ != nullptr && !db_->Resume().ok()) return;
    uint64_t old_head = Head();
    uint64_t new_head = 0;
    {
      // Blob writes run under blob_mu_ and use db_ directly.
      absl::MutexLock blob_lock(&blob_mu_);
      absl::WriterMutexLock db_lock(&db_mu_);
      CloseDb();
      absl::StatusOr<OpenedDb> opened = OpenDb(path_, options_, tune_, env_.get(), listener_);
      if (!opened.ok()) return;  // Reads answer Unavailable until a reopen works.
      new_head = opened->head;
      next_offset_ = opened->head + 1;
      last_hash_ = opened->last_hash;
      Adopt(*std::move(opened));
      published_head_.store(new_head, std::memory_order_release);
    }
    gate_->Open();
    // A write reported failed may still have reached the WAL whole; its
    // records are in the log now and subscribers learn of them.
    if (new_head > old_head) {
      absl::MutexLock lock(&listener_mu_);
      for (auto& [id, listener] : listeners_) listener(new_head);
    }
  }

  absl::Status Validate(const std::vector<AppendEntry>& entries, size_t* bytes) const {
    if (entries.empty()) return absl::InvalidArgumentError("append batch is empty");
    if (entries.size() > options_.max_append_records) {
      return absl::InvalidArgumentError(absl::StrCat("append batch of ", entries.size(),
                                                     " records exceeds max_append_records ",
                                                     options_.max_append_records));
    }
    *bytes = 0;
    for (size_t i = 0; i < entries.size(); ++i) {
      const AppendEntry& e = entries[i];
      auto bad = [i](std::string_view what) {
        return absl::InvalidArgumentError(absl::StrCat("entry ", i, ": ", std::string(what)));
      };
      if (e.event_id.empty()) return bad("event_id is required");
      if (e.event_id.size() > options_.max_event_id_bytes) {
        return bad(absl::StrCat("event_id of ", e.event_id.size(), " bytes exceeds ",
                                options_.max_event_id_bytes));
      }
      if (e.payload.empty()) return bad("payload is required");
      if (e.payload.size() > options_.max_record_bytes) {
        return bad(absl::StrCat("payload of ", e.payload.size(), " bytes exceeds max_record_bytes ",
                                options_.max_record_bytes));
      }
      if (e.subject.size() > options_.max_subject_bytes) {
        return bad(absl::StrCat("subject of ", e.subject.size(), " bytes exceeds ",
                                options_.max_subject_bytes));
      }
      if (e.subject.find('\0') != std::string::npos) return bad("subject contains a NUL byte");
      if (!e.area_code.empty() && !base::IsAreaCode(e.area_code)) {
        return bad(absl::StrCat("area_code '", e.area_code, "' is not a 12-digit code"));
      }
      for (const ProjectionWrite& w : e.projections) {
        if (w.key.empty()) return bad("projection key is empty");
      }
      *bytes += e.payload.size();
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<LogRecord>> ReadIndex(rocksdb::ColumnFamilyHandle* family,
                                                   const std::string& prefix,
                                                   const std::string& start,
                                                   ReadLimits limits) const {
    absl::ReaderMutexLock db_lock(&db_mu_);
    RETURN_IF_ERROR(CheckOpen());
    std::vector<LogRecord> out;
    size_t bytes = 0;
    rocksdb::ReadOptions read;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, family));
    std::string value;
    for (it->Seek(start); it->Valid() && out.size() < limits.max_records; it->Next()) {
      std::string_view key = it->key().ToStringView();
      if (!key.starts_with(prefix) || key.size() != prefix.size() + 8) break;
      uint64_t offset = keys::IndexKeyOffset(key);
      rocksdb::Status s = db_->Get(read, log_, keys::LogKey(offset), &value);
      if (s.IsNotFound()) {
        return absl::DataLossError(absl::StrCat("index points at missing record ", offset));
      }
      RETURN_IF_ERROR(FromRocks(s, "reading an indexed record"));
      ASSIGN_OR_RETURN(LogRecord record, ParseRecord(offset, value));
      if (!out.empty() && bytes + record.payload.size() > limits.max_bytes) break;
      bytes += record.payload.size();
      out.push_back(std::move(record));
    }
    RETURN_IF_ERROR(FromRocks(it->status(), "reading an index"));
    return out;
  }

  // Pops queued appends while they fit in `records_room` and `bytes_room`;
  // with `at_least_one` the first is taken even if it alone is larger.
  std::vector<std::unique_ptr<PendingAppend>> TakeLocked(size_t records_room, size_t bytes_room,
                                                         bool at_least_one)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<std::unique_ptr<PendingAppend>> taken;
    size_t records = 0;
    size_t bytes = 0;
    while (!queue_.empty() &&
           ((at_least_one && taken.empty()) ||
            (records + queue_.front()->entries.size() <= records_room &&
             bytes + queue_.front()->bytes <= bytes_room))) {
      records += queue_.front()->entries.size();
      bytes += queue_.front()->bytes;
      taken.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    return taken;
  }

  // Whether the next queued append fits in `prepared` within the group limits.
  bool NextFits(const PreparedGroup& prepared) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() &&
           prepared.entries + queue_.front()->entries.size() <= options_.max_group_records &&
           prepared.bytes + queue_.front()->bytes <= options_.max_group_bytes;
  }

  // The committer: prepares group N+1 while the writer thread syncs group N,
  // so hashing, duplicate lookups and hooks overlap the fsync. Appends that
  // arrive while the writer is busy join the group being prepared, so groups
  // stay as large as without the pipeline. Exactly one group is in the
  // writer's hands at a time, and groups are written in order, so offsets
  // stay gapless on disk.
  void CommitterLoop() {
    // Named for top -H, perf and push_bench's CPU by stage (/proc/<pid>/task).
    pthread_setname_np(pthread_self(), "fs-committer");
    while (true) {
      std::vector<std::unique_ptr<PendingAppend>> taken;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return !queue_.empty() || stopping_;
        };
        // Woken at least every recovery_interval, to recover a read-only store.
        const bool woken = mu_.AwaitWithTimeout(absl::Condition(&ready), options_.recovery_interval);
        if (!woken) {
          if (gate_->read_only()) {
            mu_.Unlock();
            TryRecover();
            mu_.Lock();
          }
          continue;
        }
        if (queue_.empty()) break;  // Stopping and drained.
        taken = TakeLocked(options_.max_group_records, options_.max_group_bytes, /*at_least_one=*/true);
      }
      if (absl::Status state = gate_->state(); !state.ok()) {
        // Queued before the store became read-only: answered without a write.
        for (auto& pending : taken) pending->done(state);
        continue;
      }
      auto prepared = std::make_unique<PreparedGroup>();
      prepared->first_offset = prepared->next_offset = next_offset_;
      prepared->hash_before = prepared->last_hash = last_hash_;
      PrepareMore(*prepared, std::move(taken));
      absl::Status previous;
      while (true) {
        mu_.Lock();
        auto ready = [this, &prepared]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return to_write_ == nullptr || NextFits(*prepared);
        };
        mu_.Await(absl::Condition(&ready));
        if (to_write_ == nullptr) {
          previous = std::exchange(write_status_, absl::OkStatus());
          mu_.Unlock();
          break;
        }
        taken = TakeLocked(options_.max_group_records - prepared->entries,
                           options_.max_group_bytes - prepared->bytes, /*at_least_one=*/false);
        mu_.Unlock();
        PrepareMore(*prepared, std::move(taken));
      }
      if (!previous.ok()) {
        // The group in flight failed, and this one was prepared on top of it:
        // its offsets and chain are void. Fail it and rewind to before both.
        next_offset_ = in_flight_->first_offset;
        last_hash_ = in_flight_->hash_before;
        for (auto& answer : prepared->answers) {
          if (answer.ok()) answer = previous;
        }
        prepared->records = 0;
        prepared->ids.clear();
        prepared->overlay.clear();
      } else {
        next_offset_ = prepared->next_offset;
        last_hash_ = prepared->last_hash;
        if (prepared->records > 0) {
          prepared->batch.Put(meta_, kHeadKey, keys::LogKey(prepared->next_offset - 1));
        }
        // The group's projection writes, each key once, in key order.
        for (const auto& [key, value] : prepared->overlay) {
          if (value) {
            prepared->batch.Put(projections_, key, *value);
          } else {
            prepared->batch.Delete(projections_, key);
          }
        }
      }
      in_flight_ = std::move(prepared);
      absl::MutexLock lock(&mu_);
      to_write_ = in_flight_.get();
    }
    absl::MutexLock lock(&mu_);
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return to_write_ == nullptr; };
    mu_.Await(absl::Condition(&idle));
    writer_stopping_ = true;
  }

  // Adds `more` to the WriteBatch of `prepared`, on top of what it holds, the
  // committer's state and the group still in flight. Committer thread only.
  void PrepareMore(PreparedGroup& group, std::vector<std::unique_ptr<PendingAppend>> more) {
    PreparedGroup* prepared = &group;
    const PreparedGroup* in_flight = in_flight_.get();

    // Look every event_id of the group up in one MultiGet. Only the writer
    // thread changes the store, one whole group at a time, and ids of the
    // group it may be writing are also looked up in `in_flight`.
    std::vector<rocksdb::Slice> ids;
    for (const auto& pending : more) {
      for (const AppendEntry& e : pending->entries) ids.emplace_back(e.event_id);
    }
    std::vector<rocksdb::PinnableSlice> found(ids.size());
    std::vector<rocksdb::Status> found_status(ids.size());
    db_->MultiGet(rocksdb::ReadOptions(), event_ids_, ids.size(), ids.data(), found.data(),
                  found_status.data());

    rocksdb::WriteBatch& batch = prepared->batch;
    Overlay& group_overlay = prepared->overlay;
    auto& group_ids = prepared->ids;
    uint64_t next = prepared->next_offset;
    std::string prev = prepared->last_hash;
    size_t id_index = 0;

    for (auto& pending : more) {
      prepared->entries += pending->entries.size();
      prepared->bytes += pending->bytes;
      batch.SetSavePoint();
      Overlay request_overlay;
      std::unordered_map<std::string_view, uint64_t> request_ids;
      std::vector<AppendResult> results;
      results.reserve(pending->entries.size());
      uint64_t request_next = next;
      std::string request_prev = prev;
      absl::Status failure;
      for (AppendEntry& e : pending->entries) {
        const size_t index = id_index++;
        if (!failure.ok()) continue;
        std::optional<uint64_t> original;
        if (auto it = request_ids.find(e.event_id); it != request_ids.end()) {
          original = it->second;
        } else if (auto git = group_ids.find(e.event_id); git != group_ids.end()) {
          original = git->second;
        } else if (auto fit = in_flight == nullptr ? group_ids.end()
                                                   : in_flight->ids.find(e.event_id);
                   in_flight != nullptr && fit != in_flight->ids.end()) {
          original = fit->second;
        } else if (found_status[index].ok()) {
          if (found[index].size() != 8) {
            failure = absl::DataLossError("malformed event_id index entry");
            continue;
          }
          original = base::ReadBe64Prefix(found[index].ToStringView());
        } else if (!found_status[index].IsNotFound()) {
          failure = FromRocks(found_status[index], "looking up an event_id");
          continue;
        }
        if (original) {
          results.push_back({.offset = *original, .duplicate = true});
          continue;
        }
        const uint64_t offset = request_next;
        for (ProjectionWrite& w : e.projections) request_overlay[w.key] = std::move(w.value);
        if (e.prepare) {
          EntryContext context(this, &request_overlay, &group_overlay,
                               in_flight == nullptr ? nullptr : &in_flight->overlay, offset,
                               &e.payload);
          failure = e.prepare(context);
          if (!failure.ok()) continue;
          if (e.payload.empty() || e.payload.size() > options_.max_record_bytes) {
            failure = absl::InternalError("prepare left a payload of invalid size");
            continue;
          }
        }
        std::string hash = ChainHash(request_prev, offset, e.payload);
        std::string value;
        value.reserve(keys::kRecordHeaderSize + e.payload.size());
        value.push_back(static_cast<char>(keys::kRecordFormat));
        value.append(request_prev);
        value.append(hash);
        value.append(e.payload);
        const std::string key = keys::LogKey(offset);
        batch.Put(log_, key, value);
        batch.Put(event_ids_, e.event_id, key);
        if (!e.subject.empty()) batch.Put(subjects_, keys::SubjectKey(e.subject, offset), "");
        if (!e.area_code.empty()) {
          for (size_t length : options_.scope_prefix_lengths) {
            batch.Put(scopes_,
                      keys::ScopeKey(std::string_view(e.area_code).substr(0, length), offset), "");
          }
        }
        request_ids.emplace(e.event_id, offset);
        request_prev = std::move(hash);
        ++request_next;
        results.push_back({.offset = offset, .duplicate = false});
      }
      if (!failure.ok()) {
        // Ignored on purpose: a save point was set just above, so it exists.
        batch.RollbackToSavePoint().PermitUncheckedError();
        prepared->answers.push_back(failure);
        continue;
      }
      batch.PopSavePoint().PermitUncheckedError();
      for (auto& [key, value] : request_overlay) group_overlay[key] = std::move(value);
      for (auto& [id, offset] : request_ids) group_ids.emplace(std::string(id), offset);
      prepared->records += request_next - next;
      next = request_next;
      prev = std::move(request_prev);
      prepared->answers.push_back(std::move(results));
    }
    prepared->next_offset = next;
    prepared->last_hash = std::move(prev);
    for (auto& pending : more) prepared->group.push_back(std::move(pending));
  }

  // The writer: syncs each prepared group, publishes the head, answers the
  // callers. Answers (duplicates included) go out only after every earlier
  // group is durable, because groups pass through here one at a time, in order.
  void WriterLoop() {
    pthread_setname_np(pthread_self(), "fs-writer");  // As the committer's.
    while (true) {
      PreparedGroup* group = nullptr;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return to_write_ != nullptr || writer_stopping_;
        };
        mu_.Await(absl::Condition(&ready));
        if (to_write_ == nullptr) return;
        group = to_write_;
      }
      absl::Status status = Write(*group);
      absl::MutexLock lock(&mu_);
      if (!status.ok()) write_status_ = status;
      to_write_ = nullptr;
    }
  }

  absl::Status Write(PreparedGroup& prepared) {
    absl::Status status;
    absl::Duration write_time;
    if (prepared.records > 0) {
      const absl::Time start = absl::Now();
      // A group prepared before the store became read-only is not written.
      status = WriteToDb(&prepared.batch);
      write_time = absl::Now() - start;
      if (!status.ok()) {
        // Nothing of this group is acknowledged, and the committer voids the
        // group prepared on top of it, so the chain cannot fork.
        for (auto& answer : prepared.answers) {
          if (answer.ok()) answer = status;
        }
      } else {
        // Published before the appends are answered and the head listeners
        // told: whoever learns of the commit finds Head() there.
        published_head_.store(prepared.next_offset - 1, std::memory_order_release);
      }
    }
    for (size_t i = 0; i < prepared.group.size(); ++i) {
      prepared.group[i]->done(std::move(prepared.answers[i]));
    }
    if (prepared.records > 0 && status.ok()) {
      const uint64_t head = prepared.next_offset - 1;
      if (options_.on_group_committed) {
        options_.on_group_committed(GroupCommitInfo{.appends = prepared.group.size(),
                                                    .records = prepared.records,
                                                    .bytes = prepared.batch.GetDataSize(),
                                                    .write_time = write_time,
                                                    .head = head});
      }
      absl::MutexLock lock(&listener_mu_);
      for (auto& [id, listener] : listeners_) listener(head);
    }
    return status;
  }

  const std::string path_;
  const StoreOptions options_;
  const RocksDbTuning tune_;  // Applied at every open (OpenEventStoreWithTuning).
  std::unique_ptr<rocksdb::Env> env_;  // Null: the default Env. Outlives db_.
  const std::shared_ptr<WriteGate> gate_;
  const std::shared_ptr<rocksdb::EventListener> listener_;
  // Shared by readers, exclusive while a recovery swaps db_ and the handles.
  // The committer and writer threads use db_ unlocked: the recovery runs on
  // the committer thread while the writer is idle.
  mutable absl::Mutex db_mu_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // Owned; destroyed before db_ closes.
  rocksdb::ColumnFamilyHandle* log_ = nullptr;
  rocksdb::ColumnFamilyHandle* event_ids_ = nullptr;
  rocksdb::ColumnFamilyHandle* subjects_ = nullptr;
  rocksdb::ColumnFamilyHandle* scopes_ = nullptr;
  rocksdb::ColumnFamilyHandle* projections_ = nullptr;
  rocksdb::ColumnFamilyHandle* blobs_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;

  // Owned by the committer thread.
  uint64_t next_offset_;
  std::string last_hash_;

  // Guards the queue of appends and the commit pipeline between the
  // committer and the writer thread.
  absl::Mutex mu_;
  std::deque<std::unique_ptr<PendingAppend>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::atomic<uint64_t> published_head_;

  absl::Mutex listener_mu_;
  std::map<uint64_t, HeadListener> listeners_ ABSL_GUARDED_BY(listener_mu_);
  uint64_t next_listener_id_ ABSL_GUARDED_BY(listener_mu_) = 1;

  // Serializes the read-modify-write of uploads; a recovery holds it while it
  // swaps the database.
  absl::Mutex blob_mu_;
  absl::Mutex write_mu_;  // Held by WriteToDb: one RocksDB write at a time.
  std::string upload_dir_;  // Set once by OpenBlobUploads, before any use.
  std::string UploadPath(std::string_view sha256) const;

  PreparedGroup* to_write_ ABSL_GUARDED_BY(mu_) = nullptr;  // Owned by in_flight_.
  absl::Status write_status_ ABSL_GUARDED_BY(mu_);  // Of the last failed write.
  bool writer_stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<PreparedGroup> in_flight_;  // Committer thread only.

  // Last: started after every member above exists.
  std::thread writer_;
  std::thread committer_;
};

absl::StatusOr<std::optional<std::string>> EntryContext::Get(std::string_view key) {
  if (auto it = request_overlay_->find(key); it != request_overlay_->end()) return it->second;
  if (auto it = group_overlay_->find(key); it != group_overlay_->end()) return it->second;
  if (in_flight_overlay_ != nullptr) {
    if (auto it = in_flight_overlay_->find(key); it != in_flight_overlay_->end()) return it->second;
  }
  return store_->GetProjection(key);
}

absl::StatusOr<std::optional<std::pair<std::string, std::string>>> EntryContext::Nearest(
    std::string_view prefix, std::string_view key, bool forward) {
  return store_->NearestProjection(prefix, key, forward,
                                   {request_overlay_, group_overlay_, in_flight_overlay_});
}

// ---- Blobs ----

// 'U' entry: u64 total_size | u64 received_bytes | i64 updated_at (Unix µs) |
// owner. An older build wrote only the first 16 bytes and kept the bytes in
// 'C' chunks; such an entry is discarded when the store opens.
constexpr size_t kLegacyUploadValueSize = 16;
constexpr size_t kUploadHeaderSize = 24;

absl::Status CheckSha(std::string_view sha256) {
  if (sha256.size() != kSha256Size) {
    return absl::InvalidArgumentError(absl::StrCat("sha256 must be 32 bytes, got ", sha256.size()));
  }
  return absl::OkStatus();
}

BlobStatus CompleteStatus(uint64_t size) {
  BlobStatus status;
  status.received_bytes = size;
  status.total_size = size;
  status.complete = true;
  return status;
}

std::string EncodeUpload(uint64_t total_size, uint64_t received, absl::Time at,
                         std::string_view owner) {
  std::string value;
  base::AppendBe64(&value, total_size);
  base::AppendBe64(&value, received);
  base::AppendBe64(&value, static_cast<uint64_t>(absl::ToUnixMicros(at)));
  value.append(owner);
  return value;
}

// The status an upload entry describes; DataLoss for a malformed one. A legacy
// entry decodes with `legacy` set.
absl::StatusOr<BlobStatus> DecodeUpload(std::string_view value, bool* legacy) {
  *legacy = value.size() == kLegacyUploadValueSize;
  if (value.size() < kUploadHeaderSize && !*legacy) {
    return absl::DataLossError("malformed blob upload entry");
  }
  BlobStatus status;
  status.received_bytes = base::ReadBe64Prefix(value.substr(8));
  status.total_size = base::ReadBe64Prefix(value);
  if (!*legacy) {
    status.updated_at =
        absl::FromUnixMicros(static_cast<int64_t>(base::ReadBe64Prefix(value.substr(16))));
    status.owner = std::string(value.substr(kUploadHeaderSize));
  }
  return status;
}

// An errno of a blob upload file as a status; never names a path. A full disk
// is Unavailable: the upload can be retried once space returns.
absl::Status FromErrno(int error, std::string_view what) {
  if (error == ENOSPC || error == EDQUOT) {
    return absl::UnavailableError(
        absl::StrCat(std::string(what), ": no space left on the store's disk; retry later"));
  }
  return absl::InternalError(absl::StrCat(std::string(what), ": ", strerror(error)));
}

// Writes `data` at `offset` of the upload file `path` (created if missing),
// dropping whatever lies past `offset` first (bytes a crash left after the
// last recorded chunk), then syncs it. A new file's directory entry is synced
// too, so the file outlives a power cut once its entry refers to it.
absl::Status WriteUploadBytes(const std::string& path, const std::string& dir, uint64_t offset,
                              std::string_view data) {
  // Only the first chunk creates the file: a later one without it would
  // write after a hole of zeros.
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC | (offset == 0 ? O_CREAT : 0), 0600);
  if (fd < 0 && errno == ENOENT) {
    return absl::DataLossError("the bytes of this blob upload are gone; start again from offset 0");
  }
  if (fd < 0) return FromErrno(errno, "creating a blob upload file");
  auto fail = [fd](std::string_view what) {
    const int error = errno;
    close(fd);
    return FromErrno(error, what);
  };
  if (ftruncate(fd, static_cast<off_t>(offset)) != 0) return fail("truncating a blob upload");
  size_t written = 0;
  while (written < data.size()) {
    ssize_t n = pwrite(fd, data.data() + written, data.size() - written,
                       static_cast<off_t>(offset + written));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("writing a blob upload");
    written += static_cast<size_t>(n);
  }
  if (fdatasync(fd) != 0) return fail("syncing a blob upload");
  if (close(fd) != 0) return FromErrno(errno, "closing a blob upload");
  if (offset == 0) {
    int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return FromErrno(errno, "opening the blob upload directory");
    const bool synced = fsync(dir_fd) == 0;
    const int error = errno;
    close(dir_fd);
    if (!synced) return FromErrno(error, "syncing the blob upload directory");
  }
  return absl::OkStatus();
}

// The first `size` bytes of the upload file `path`; DataLoss if it is shorter.
absl::StatusOr<std::string> ReadUploadBytes(const std::string& path, uint64_t size) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::DataLossError("a blob upload's bytes are missing");
    return FromErrno(errno, "opening a blob upload");
  }
  std::string content(size, '\0');
  size_t read_bytes = 0;
  while (read_bytes < size) {
    ssize_t n =
        pread(fd, content.data() + read_bytes, size - read_bytes, static_cast<off_t>(read_bytes));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      close(fd);
      return FromErrno(error, "reading a blob upload");
    }
    if (n == 0) break;
    read_bytes += static_cast<size_t>(n);
  }
  close(fd);
  if (read_bytes < size) return absl::DataLossError("a blob upload's bytes are truncated");
  return content;
}

std::string RocksDbEventStore::UploadPath(std::string_view sha256) const {
  return upload_dir_ + "/" + ToHex(sha256);
}

absl::StatusOr<BlobStatus> RocksDbEventStore::GetBlobStatus(std::string_view sha256) const {
  RETURN_IF_ERROR(CheckSha(sha256));
  absl::ReaderMutexLock db_lock(&db_mu_);
  RETURN_IF_ERROR(CheckOpen());
  rocksdb::PinnableSlice content;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), blobs_, keys::BlobContentKey(sha256), &content);
  if (s.ok()) return CompleteStatus(content.size());
  if (!s.IsNotFound()) return FromRocks(s, "reading a blob");
  std::string upload;
  s = db_->Get(rocksdb::ReadOptions(), blobs_, keys::BlobUploadKey(sha256), &upload);
  if (s.IsNotFound()) return BlobStatus{};
  RETURN_IF_ERROR(FromRocks(s, "reading a blob upload"));
  bool legacy = false;
  return DecodeUpload(upload, &legacy);
}

absl::StatusOr<std::string> RocksDbEventStore::GetBlob(std::string_view sha256) const {
  RETURN_IF_ERROR(CheckSha(sha256));
  absl::ReaderMutexLock db_lock(&db_mu_);
  RETURN_IF_ERROR(CheckOpen());
  std::string content;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), blobs_, keys::BlobContentKey(sha256), &content);
  if (s.IsNotFound()) {
    return absl::NotFoundError(absl::StrCat("blob ", ToHex(sha256), " is not stored"));
  }
  RETURN_IF_ERROR(FromRocks(s, "reading a blob"));
  return content;
}

absl::StatusOr<BlobStatus> RocksDbEventStore::PutBlobChunk(std::string_view sha256,
                                                           uint64_t total_size, uint64_t offset,
                                                           std::string_view data,
                                                           const BlobWriter& writer) {
  RETURN_IF_ERROR(CheckSha(sha256));
  if (total_size == 0) return absl::InvalidArgumentError("blob total_size must be positive");
  if (total_size > options_.max_blob_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "blob of ", total_size, " bytes exceeds max_blob_bytes ", options_.max_blob_bytes));
  }
  if (data.empty()) return absl::InvalidArgumentError("blob chunk is empty");
  if (offset > total_size || data.size() > total_size - offset) {
    return absl::InvalidArgumentError(absl::StrCat("chunk [", offset, ", ", offset + data.size(),
                                                   ") runs past the blob's size ", total_size));
  }
  absl::MutexLock lock(&blob_mu_);
  RETURN_IF_ERROR(gate_->state());
  ASSIGN_OR_RETURN(BlobStatus status, GetBlobStatus(sha256));
  if (status.complete) return status;
  if (status.total_size != 0 && status.owner != writer.owner) {
    return absl::AlreadyExistsError(
        absl::StrCat("blob ", ToHex(sha256), " is being uploaded by another owner"));
  }
  if (status.total_size != 0 && status.total_size != total_size) {
    return absl::InvalidArgumentError(absl::StrCat("blob ", ToHex(sha256), " was declared with ",
                                                   status.total_size, " bytes, not ", total_size));
  }
  if (offset != status.received_bytes) {
    return absl::FailedPreconditionError(absl::StrCat("blob ", ToHex(sha256), ": expected offset ",
                                                      status.received_bytes, ", got ", offset));
  }
  const std::string path = UploadPath(sha256);
  if (absl::Status written = WriteUploadBytes(path, upload_dir_, offset, data); !written.ok()) {
    if (absl::IsDataLoss(written)) {
      // The entry lost its bytes: drop it so the next upload starts afresh.
      rocksdb::WriteBatch discard;
      discard.Delete(blobs_, keys::BlobUploadKey(sha256));
      RETURN_IF_ERROR(WriteToDb(&discard));
    }
    return written;
  }
  const uint64_t received = offset + data.size();
  rocksdb::WriteBatch batch;
  if (received < total_size) {
    batch.Put(blobs_, keys::BlobUploadKey(sha256),
              EncodeUpload(total_size, received, writer.now, writer.owner));
    RETURN_IF_ERROR(WriteToDb(&batch));
    return BlobStatus{.received_bytes = received,
                      .total_size = total_size,
                      .complete = false,
                      .owner = writer.owner,
                      .updated_at = writer.now};
  }
  // The last chunk: verify the whole file and store the content in one write.
  ASSIGN_OR_RETURN(std::string content, ReadUploadBytes(path, total_size));
  batch.Delete(blobs_, keys::BlobUploadKey(sha256));
  const bool matches = DigestBytes(Sha256({content})) == sha256;
  if (matches) batch.Put(blobs_, keys::BlobContentKey(sha256), content);
  RETURN_IF_ERROR(WriteToDb(&batch));
  // Ignored on purpose: a file left behind belongs to no entry and is removed
  // when the store next opens.
  std::error_code ignored;
  std::filesystem::remove(path, ignored);
  if (!matches) {
    return absl::InvalidArgumentError(absl::StrCat("blob content does not match its sha256 ",
                                                   ToHex(sha256), "; the upload was discarded"));
  }
  return CompleteStatus(total_size);
}

absl::StatusOr<std::vector<BlobUpload>> RocksDbEventStore::ListBlobUploads(
    std::string_view start_after, size_t limit) const {
  absl::ReaderMutexLock db_lock(&db_mu_);
  std::vector<BlobUpload> out;
  const std::string prefix(1, keys::kBlobUploadTag);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), blobs_));
  const std::string start = prefix + std::string(start_after);
  it->Seek(start);
  if (!start_after.empty() && it->Valid() && it->key() == start) it->Next();
  for (; it->Valid() && out.size() < limit; it->Next()) {
    std::string_view key = it->key().ToStringView();
    if (!key.starts_with(prefix)) break;
    bool legacy = false;
    ASSIGN_OR_RETURN(BlobStatus status, DecodeUpload(it->value().ToStringView(), &legacy));
    out.push_back(BlobUpload{.sha256 = std::string(key.substr(1)), .status = std::move(status)});
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "listing blob uploads"));
  return out;
}

absl::StatusOr<uint64_t> RocksDbEventStore::DiscardBlobUpload(std::string_view sha256,
                                                              std::string_view owner) {
  RETURN_IF_ERROR(CheckSha(sha256));
  absl::MutexLock lock(&blob_mu_);
  ASSIGN_OR_RETURN(BlobStatus status, GetBlobStatus(sha256));
  if (status.complete || status.total_size == 0 || status.owner != owner) return 0;
  RETURN_IF_ERROR(gate_->state());
  rocksdb::WriteBatch discard;
  discard.Delete(blobs_, keys::BlobUploadKey(sha256));
  RETURN_IF_ERROR(WriteToDb(&discard));
  const std::string path = UploadPath(sha256);
  std::error_code size_ec;
  const uint64_t size = std::filesystem::file_size(path, size_ec);
  // Ignored on purpose: the entry is gone, so a file that cannot be removed
  // now belongs to nothing and is removed when the store next opens.
  std::error_code remove_ec;
  const bool removed = std::filesystem::remove(path, remove_ec);
  return removed && !size_ec ? size : 0;
}

absl::Status RocksDbEventStore::OpenBlobUploads(std::string upload_dir) {
  upload_dir_ = std::move(upload_dir);
  std::error_code ec;
  std::filesystem::create_directories(upload_dir_, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("creating the blob upload directory: ", ec.message()));
  // Entries whose bytes are not all in their file (an older build's 'C'
  // chunks, a file lost) are discarded: the device uploads them again.
  rocksdb::WriteBatch batch;
  std::set<std::string> live;  // Hex names of the files that entries refer to.
  {
    const std::string prefix(1, keys::kBlobUploadTag);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), blobs_));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      const std::string sha(it->key().ToStringView().substr(1));
      bool legacy = false;
      absl::StatusOr<BlobStatus> status = DecodeUpload(it->value().ToStringView(), &legacy);
      std::error_code size_ec;
      const uint64_t file_size = std::filesystem::file_size(UploadPath(sha), size_ec);
      if (!status.ok() || legacy || size_ec || file_size < status->received_bytes) {
        batch.Delete(blobs_, it->key());
        continue;
      }
      live.insert(ToHex(sha));
    }
    RETURN_IF_ERROR(FromRocks(it->status(), "reading blob uploads"));
  }
  {
    const std::string chunk_prefix(1, keys::kBlobChunkTag);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), blobs_));
    it->Seek(chunk_prefix);
    if (it->Valid() && it->key().starts_with(chunk_prefix)) {
      batch.DeleteRange(blobs_, chunk_prefix, std::string(1, keys::kBlobChunkTag + 1));
    }
    RETURN_IF_ERROR(FromRocks(it->status(), "reading blob chunks"));
  }
  if (batch.Count() > 0) {
    RETURN_IF_ERROR(WriteToDb(&batch));
  }
  // Files of no entry: a crash between a file's first write and its entry,
  // or after an upload completed and before its file was removed.
  for (const auto& file : std::filesystem::directory_iterator(upload_dir_, ec)) {
    if (live.contains(file.path().filename().string())) continue;
    std::error_code remove_ec;
    // Ignored on purpose: tried again at the next open.
    std::filesystem::remove_all(file.path(), remove_ec);
  }
  if (ec)
    return absl::InternalError(absl::StrCat("listing the blob upload directory: ", ec.message()));
  return absl::OkStatus();
}

// ---- Opening ----

absl::StatusOr<OpenedDb> OpenDb(const std::string& path, const StoreOptions& options,
                                const RocksDbTuning& tune, rocksdb::Env* env,
                                const std::shared_ptr<rocksdb::EventListener>& listener) {
  // Every RocksDB option is in StoreRocksDbOptions (storage/rocksdb_options.h),
  // which the benchmarks' raw baseline opens its database with too.
  RocksDbOpenOptions open = StoreRocksDbOptions(options);
  if (tune) tune(open);
  rocksdb::DBOptions& db_options = open.db;
  if (env != nullptr) db_options.env = env;
  db_options.listeners.push_back(listener);
  const std::vector<rocksdb::ColumnFamilyDescriptor>& families = open.families;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw_db = nullptr;
  RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(db_options, path, families, &handles, &raw_db),
                            absl::StrCat("opening the event store at ", path)));
  std::unique_ptr<rocksdb::DB> db(raw_db);
  auto close_on_error = [&](absl::Status status) {
    for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    return status;
  };
  rocksdb::ColumnFamilyHandle* meta = handles[0];
  rocksdb::ColumnFamilyHandle* log = handles[1];

  // Format version: written by the first open, checked by every later one.
  std::string version;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), meta, keys::kFormatVersionKey, &version);
  if (s.IsNotFound()) {
    std::string value;
    base::AppendBe64(&value, keys::kFormatVersion);
    rocksdb::WriteOptions write;
    write.sync = true;
    s = db->Put(write, meta, keys::kFormatVersionKey, value);
    if (!s.ok()) return close_on_error(FromRocks(s, "writing the format version"));
  } else if (!s.ok()) {
    return close_on_error(FromRocks(s, "reading the format version"));
  } else if (version.size() != 8 || base::ReadBe64Prefix(version) != keys::kFormatVersion) {
    return close_on_error(absl::FailedPreconditionError(
        absl::StrCat("the store at ", path, " has another format version; this build reads ",
                     keys::kFormatVersion)));
  }

  // The head and the chain's last hash come from the last log record.
  uint64_t head = 0;
  std::string last_hash = ZeroHash();
  {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), log));
    it->SeekToLast();
    if (it->Valid()) {
      std::optional<uint64_t> offset = keys::ParseLogKey(it->key().ToStringView());
      if (!offset) return close_on_error(absl::DataLossError("malformed key in the log"));
      absl::StatusOr<LogRecord> record = ParseRecord(*offset, it->value().ToStringView());
      if (!record.ok()) return close_on_error(record.status());
      head = *offset;
      last_hash = record->hash;
    }
    if (!it->status().ok()) return close_on_error(FromRocks(it->status(), "reading the log head"));
  }
  // Each group also records the head it reached: a log that ends before it
  // lost its tail, which the chain alone cannot show.
  std::string stored_head;
  s = db->Get(rocksdb::ReadOptions(), meta, kHeadKey, &stored_head);
  if (s.ok() && stored_head.size() == 8 && base::ReadBe64Prefix(stored_head) > head) {
    return close_on_error(absl::DataLossError(absl::StrCat(
        "the log ends at offset ", head, " but offset ", base::ReadBe64Prefix(stored_head),
        " was committed: records are missing from the tail")));
  }
  return OpenedDb{.db = std::move(db), .handles = std::move(handles), .head = head,
                  .last_hash = std::move(last_hash)};
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventStore>> OpenEventStore(const std::string& path,
                                                           StoreOptions options) {
  return OpenEventStoreWithTuning(path, std::move(options), nullptr);
}

absl::StatusOr<std::unique_ptr<EventStore>> OpenEventStoreWithTuning(const std::string& path,
                                                                     StoreOptions options,
                                                                     RocksDbTuning tune) {
  for (size_t length : options.scope_prefix_lengths) {
    if (length == 0 || length > base::kAreaCodeDigits) {
      return absl::InvalidArgumentError(
          absl::StrCat("scope_prefix_lengths: ", length, " is not between 1 and 12"));
    }
  }
  if (options.max_background_jobs < 1) {
    return absl::InvalidArgumentError("max_background_jobs must be at least 1");
  }
  if (options.max_group_records == 0 || options.max_append_records == 0) {
    return absl::InvalidArgumentError("max_group_records and max_append_records must be positive");
  }
  if (options.recovery_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("recovery_interval must be positive");
  }
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return absl::InternalError(absl::StrCat("creating ", path, ": ", ec.message()));

  std::unique_ptr<rocksdb::Env> env;
  if (options.file_system != nullptr) env = rocksdb::NewCompositeEnv(options.file_system);
  auto gate = std::make_shared<WriteGate>(options.on_write_state_changed);
  auto listener = std::make_shared<BackgroundErrorListener>(gate);
  ASSIGN_OR_RETURN(OpenedDb opened, OpenDb(path, options, tune, env.get(), listener));
  auto store = std::make_unique<RocksDbEventStore>(path, std::move(options), std::move(tune),
                                                   std::move(env),
                                                   std::move(gate), std::move(listener),
                                                   std::move(opened));
  RETURN_IF_ERROR(
      store->OpenBlobUploads((std::filesystem::path(path) / keys::kBlobUploadDir).string()));
  return store;
}

absl::Status RestoreEventStore(const std::string& backup_dir, const std::string& data_dir) {
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::path(data_dir) / "CURRENT", ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat(data_dir, " already holds a store; restore into an empty directory"));
  }
  rocksdb::BackupEngineReadOnly* raw_engine = nullptr;
  RETURN_IF_ERROR(FromRocks(
      rocksdb::BackupEngineReadOnly::Open(rocksdb::Env::Default(),
                                          rocksdb::BackupEngineOptions(backup_dir), &raw_engine),
      absl::StrCat("opening backups in ", backup_dir)));
  std::unique_ptr<rocksdb::BackupEngineReadOnly> engine(raw_engine);
  std::vector<rocksdb::BackupInfo> backups;
  engine->GetBackupInfo(&backups);
  if (backups.empty()) {
    return absl::NotFoundError(absl::StrCat("no backup in ", backup_dir));
  }
  return FromRocks(engine->RestoreDBFromLatestBackup(data_dir, data_dir),
                   absl::StrCat("restoring into ", data_dir));
}

absl::StatusOr<std::vector<uint32_t>> PruneBackups(const std::string& backup_dir, size_t keep) {
  if (keep == 0) {
    return absl::InvalidArgumentError("keep must be at least 1: pruning keeps the newest backups");
  }
  std::vector<uint32_t> deleted;
  std::error_code ec;
  if (!std::filesystem::exists(backup_dir, ec)) return deleted;
  rocksdb::BackupEngine* raw_engine = nullptr;
  RETURN_IF_ERROR(FromRocks(rocksdb::BackupEngine::Open(rocksdb::Env::Default(),
                                                        rocksdb::BackupEngineOptions(backup_dir),
                                                        &raw_engine),
                            absl::StrCat("opening backups in ", backup_dir)));
  std::unique_ptr<rocksdb::BackupEngine> engine(raw_engine);
  std::vector<rocksdb::BackupInfo> before;
  engine->GetBackupInfo(&before);
  if (before.size() <= keep) return deleted;
  // Ids grow with each backup: the oldest are the smallest.
  std::sort(before.begin(), before.end(),
            [](const rocksdb::BackupInfo& a, const rocksdb::BackupInfo& b) {
              return a.backup_id < b.backup_id;
            });
  RETURN_IF_ERROR(FromRocks(engine->PurgeOldBackups(static_cast<uint32_t>(keep)),
                            absl::StrCat("pruning backups in ", backup_dir)));
  for (size_t i = 0; i + keep < before.size(); ++i) deleted.push_back(before[i].backup_id);
  return deleted;
}

}  // namespace fieldsync::storage
