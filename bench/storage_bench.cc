// storage_bench: durable append throughput of fieldsync's EventStore against
// the raw RocksDB ceiling on the same machine, in the same run.
//
// For each batch size (default 1, 50, 500) and each repetition, two phases run
// back to back, raw first, so that machine noise falls on both alike:
//
//   raw RocksDB  a fresh rocksdb::DB with the store's column families; N
//                threads each write rocksdb::WriteBatch with sync=true holding,
//                per event, exactly the keys and value sizes fieldsync writes
//                (storage/key_format.h): log record (65-byte header + payload),
//                event_id -> offset, subject index, one scope key per prefix
//                length (6, 9, 12) and one projection put. Offsets come from an
//                atomic counter. No fieldsync code but the key-format helpers.
//   fieldsync    a fresh EventStore (default StoreOptions); N threads each call
//                Append(batch) in a loop.
//
// Both phases run for --seconds of wall time; events/s = events acknowledged /
// (end of the last call - start). One JSON document goes to stdout, progress
// to stderr. A missed goal is reported, never an error: the exit status is 0
// unless the benchmark itself could not run (bad flag, open or write failure).
//
// Flags: --seconds=3 --threads=8 --batches=1,50,500 --repeat=1
//        --event_bytes=300 --dir=<parent of the temp dirs, default $TMPDIR or /tmp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <latch>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "storage/event_store.h"
#include "storage/key_format.h"

namespace fieldsync::bench {
namespace {

namespace fs = std::filesystem;
namespace keys = storage::keys;
using Clock = std::chrono::steady_clock;

constexpr size_t kProjectionValueBytes = 100;
constexpr size_t kDevicesPerThread = 16;
constexpr double kGoalBatch = 50;
constexpr double kGoalMinRatio = 0.8;

// ---------------------------------------------------------------- flags

struct Flags {
  double seconds = 3;
  int threads = 8;
  std::vector<size_t> batches = {1, 50, 500};
  int repeat = 1;
  size_t event_bytes = 300;
  std::string dir;
};

constexpr char kUsage[] =
    "usage: storage_bench [--seconds=3] [--threads=8] [--batches=1,50,500] [--repeat=1]\n"
    "                     [--event_bytes=300] [--dir=PARENT_OF_TEMP_DIRS]\n";

// Parses all of `text` as a number; false on junk, overflow or a negative
// value for an unsigned type.
template <typename T>
bool ParseNumber(const std::string& text, T* out) {
  if (text.empty()) return false;
  const char* begin = text.data();
  const char* end = begin + text.size();
  if constexpr (std::is_floating_point_v<T>) {
    char* stop = nullptr;
    errno = 0;
    double value = std::strtod(begin, &stop);
    if (stop != end || errno != 0 || !std::isfinite(value)) return false;
    *out = static_cast<T>(value);
    return true;
  } else {
    auto [ptr, ec] = std::from_chars(begin, end, *out);
    return ec == std::errc() && ptr == end;
  }
}

absl::StatusOr<Flags> ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") return absl::CancelledError("help");
    if (arg.rfind("--", 0) != 0) return absl::InvalidArgumentError("bad argument " + arg);
    const size_t eq = arg.find('=');
    if (eq == std::string::npos) return absl::InvalidArgumentError("flag " + arg + " needs =value");
    const std::string name = arg.substr(2, eq - 2);
    const std::string value = arg.substr(eq + 1);
    bool ok = true;
    if (name == "seconds") {
      ok = ParseNumber(value, &flags.seconds) && flags.seconds > 0;
    } else if (name == "threads") {
      ok = ParseNumber(value, &flags.threads) && flags.threads > 0 && flags.threads <= 1024;
    } else if (name == "repeat") {
      ok = ParseNumber(value, &flags.repeat) && flags.repeat > 0;
    } else if (name == "event_bytes") {
      ok = ParseNumber(value, &flags.event_bytes) && flags.event_bytes >= 64;
    } else if (name == "dir") {
      flags.dir = value;
      ok = !flags.dir.empty();
    } else if (name == "batches") {
      flags.batches.clear();
      size_t pos = 0;
      while (ok && pos <= value.size()) {
        size_t comma = value.find(',', pos);
        if (comma == std::string::npos) comma = value.size();
        size_t batch = 0;
        ok = ParseNumber(value.substr(pos, comma - pos), &batch) && batch > 0;
        if (ok) flags.batches.push_back(batch);
        pos = comma + 1;
      }
      ok = ok && !flags.batches.empty();
    } else {
      return absl::InvalidArgumentError("unknown flag --" + name);
    }
    if (!ok) return absl::InvalidArgumentError("bad value for --" + name + ": " + value);
  }
  return flags;
}

// ---------------------------------------------------------------- events

// splitmix64: fast, deterministic, good enough for synthetic data.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return Next() % n; }

 private:
  uint64_t state_;
};

// 9-digit township codes of Gansu (6-digit county + 3-digit township); a
// village adds 3 digits to make the 12-digit area code.
constexpr const char* kTownships[] = {
    "620102001", "620102002", "620102003", "620103001", "620104001", "620105001",
    "620111101", "620121100", "620122100", "620123100", "620421100", "620521100",
    "621121100", "621122100", "622921100", "620602100",
};
constexpr size_t kTownshipCount = sizeof(kTownships) / sizeof(kTownships[0]);

// One synthetic event: what a field device would submit, in the shape
// fieldsync stores it.
struct Event {
  std::string event_id;          // 36-char UUID-like, unique within a run.
  std::string subject;           // "household/<12-digit village>-<4 digits>"
  std::string area_code;         // 12-digit village code.
  std::string payload;           // event_bytes of opaque bytes.
  std::string projection_key;    // "dev/<device>": the device's high-water mark.
  std::string projection_value;  // kProjectionValueBytes bytes.
};

class EventGenerator {
 public:
  EventGenerator(uint64_t seed, int thread, size_t payload_bytes)
      : rng_(seed * 1000003 + static_cast<uint64_t>(thread)),
        thread_(static_cast<uint64_t>(thread)),
        payload_bytes_(payload_bytes) {
    for (size_t i = 0; i < kDevicesPerThread; ++i) {
      char device[32];
      std::snprintf(device, sizeof(device), "tab-%02" PRIu64 "-%08" PRIx64, thread_ % 100,
                    rng_.Next() & uint64_t{0xffffffff});
      devices_.emplace_back(device);
    }
  }

  Event Next() {
    Event e;
    uint64_t seq = seq_++;
    uint64_t r1 = rng_.Next();
    uint64_t r2 = rng_.Next();
    // The last group carries (thread, seq): unique within a run by construction.
    uint64_t tail = ((thread_ & 0xfff) << 36) | (seq & 0xfffffffffULL);
    char id[40];
    std::snprintf(id, sizeof(id), "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-%04" PRIx64 "-%012" PRIx64,
                  r1 >> 32, (r1 >> 16) & 0xffff, (r1 >> 4) & 0xfff, 0x8000 | (r2 & 0x3fff), tail);
    e.event_id = id;

    char area[16];
    std::snprintf(area, sizeof(area), "%s%03" PRIu64, kTownships[rng_.Below(kTownshipCount)],
                  1 + rng_.Below(30));
    e.area_code = area;
    char household[8];
    std::snprintf(household, sizeof(household), "%04" PRIu64, 1 + rng_.Below(400));
    e.subject = absl::StrCat("household/", e.area_code, "-", household);

    const std::string& device = devices_[rng_.Below(devices_.size())];
    uint64_t at_ms = 1700000000000ULL + seq * 37;

    // Payload: a readable head like a serialized StoredEvent's string fields,
    // then pseudo-random alphanumerics (compresses about as real events do).
    e.payload.reserve(payload_bytes_);
    absl::StrAppend(&e.payload, "type=household.visit;id=", e.event_id, ";subject=", e.subject,
                    ";device=", device, ";at=", at_ms, ";body=");
    static constexpr char kAlnum[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    while (e.payload.size() < payload_bytes_) {
      uint64_t r = rng_.Next();
      for (int i = 0; i < 10 && e.payload.size() < payload_bytes_; ++i, r >>= 6) {
        e.payload.push_back(kAlnum[(r & 63) % 62]);
      }
    }
    e.payload.resize(payload_bytes_);

    e.projection_key = absl::StrCat("dev/", device);
    e.projection_value = absl::StrCat("{\"device\":\"", device, "\",\"event_id\":\"", e.event_id,
                                      "\",\"seq\":", seq, ",\"at\":", at_ms, "}");
    e.projection_value.resize(kProjectionValueBytes, ' ');
    return e;
  }

 private:
  Rng rng_;
  uint64_t thread_;
  size_t payload_bytes_;
  uint64_t seq_ = 0;
  std::vector<std::string> devices_;
};

// ---------------------------------------------------------------- harness

struct PhaseResult {
  uint64_t events = 0;
  uint64_t calls = 0;
  double seconds = 0;
  double events_per_s = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

double Percentile(std::vector<double>& values, double q) {
  if (values.empty()) return 0;
  size_t index = static_cast<size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index), values.end());
  return values[index];
}

// Runs `threads` threads for `seconds`. Each thread owns a worker made by
// make_worker(thread); per call it builds a batch with worker.Make(generator,
// batch) (untimed) and then times worker.Write(input), which must return OK
// only when the batch is durable.
template <typename MakeWorker>
absl::StatusOr<PhaseResult> RunPhase(const Flags& flags, size_t batch, uint64_t seed,
                                     MakeWorker make_worker) {
  const int n = flags.threads;
  struct PerThread {
    uint64_t events = 0;
    std::vector<double> latencies_ms;
    Clock::time_point last_end;
    absl::Status status;
  };
  std::vector<PerThread> per_thread(static_cast<size_t>(n));
  std::latch ready(n);
  std::latch start_gate(1);
  std::atomic<bool> failed{false};
  Clock::time_point start;
  Clock::time_point deadline;

  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n));
  for (int t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      PerThread& mine = per_thread[static_cast<size_t>(t)];
      EventGenerator generator(seed, t, flags.event_bytes);
      auto worker = make_worker(t);
      mine.latencies_ms.reserve(1 << 16);
      ready.count_down();
      start_gate.wait();
      mine.last_end = start;
      while (!failed.load(std::memory_order_relaxed) && Clock::now() < deadline) {
        auto input = worker.Make(generator, batch);
        Clock::time_point t0 = Clock::now();
        absl::Status status = worker.Write(input);
        Clock::time_point t1 = Clock::now();
        if (!status.ok()) {
          mine.status = status;
          failed.store(true);
          break;
        }
        mine.events += batch;
        mine.last_end = t1;
        mine.latencies_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      }
    });
  }
  ready.wait();
  start = Clock::now();
  deadline = start + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(flags.seconds));
  start_gate.count_down();
  for (std::thread& thread : threads) thread.join();

  PhaseResult result;
  std::vector<double> latencies;
  Clock::time_point end = start;
  for (PerThread& pt : per_thread) {
    if (!pt.status.ok()) return pt.status;
    result.events += pt.events;
    end = std::max(end, pt.last_end);
    latencies.insert(latencies.end(), pt.latencies_ms.begin(), pt.latencies_ms.end());
  }
  result.calls = latencies.size();
  result.seconds = std::chrono::duration<double>(end - start).count();
  result.events_per_s = result.seconds > 0 ? static_cast<double>(result.events) / result.seconds : 0;
  result.p50_ms = Percentile(latencies, 0.50);
  result.p99_ms = Percentile(latencies, 0.99);
  return result;
}

// A fresh directory under the parent, removed when this goes away.
class TempDir {
 public:
  static absl::StatusOr<TempDir> Make(const std::string& parent, std::string_view tag) {
    std::string templ =
        (fs::path(parent) / ("fieldsync_bench_" + std::string(tag) + ".XXXXXX")).string();
    if (::mkdtemp(templ.data()) == nullptr) {
      return absl::InternalError("mkdtemp " + templ + ": " + std::strerror(errno));
    }
    return TempDir(std::move(templ));
  }
  TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, std::string())) {}
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// ---------------------------------------------------------------- raw RocksDB

// The column families fieldsync writes on append, in the store's names.
enum RawFamily { kLog = 1, kEventIds, kSubjects, kScopes, kProjections, kFamilyCount };

struct RawDb {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  ~RawDb() {
    for (rocksdb::ColumnFamilyHandle* h : handles) {
      if (db != nullptr) db->DestroyColumnFamilyHandle(h);
    }
    if (db != nullptr) db->Close();
  }
};

absl::StatusOr<std::unique_ptr<RawDb>> OpenRawDb(const std::string& path) {
  // Sized like the store's defaults (StoreOptions): a shared 256 MiB LRU block
  // cache and 64 MiB memtables per column family. Everything else is RocksDB's
  // default: this is the ceiling of plain RocksDB, not of a tuned one.
  const storage::StoreOptions defaults;
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.write_buffer_size = defaults.write_buffer_bytes;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(defaults.block_cache_bytes);
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, cf_options},
      {keys::kLogFamily, cf_options},
      {keys::kEventIdFamily, cf_options},
      {keys::kSubjectFamily, cf_options},
      {keys::kScopeFamily, cf_options},
      {keys::kProjectionFamily, cf_options},
  };
  auto raw = std::make_unique<RawDb>();
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, path, families, &raw->handles, &db);
  if (!s.ok()) return absl::InternalError(absl::StrCat("raw rocksdb open: ", s.ToString()));
  raw->db.reset(db);
  return raw;
}

class RawWorker {
 public:
  RawWorker(RawDb* raw, std::atomic<uint64_t>* next_offset, const std::vector<size_t>* prefixes,
            uint64_t seed)
      : raw_(raw), next_offset_(next_offset), prefixes_(prefixes), rng_(seed) {
    write_options_.sync = true;
  }

  std::vector<Event> Make(EventGenerator& generator, size_t batch) {
    std::vector<Event> events;
    events.reserve(batch);
    for (size_t i = 0; i < batch; ++i) events.push_back(generator.Next());
    return events;
  }

  // Encodes the same keys and value sizes as fieldsync's append and writes them
  // in one synced WriteBatch.
  absl::Status Write(const std::vector<Event>& events) {
    uint64_t first = next_offset_->fetch_add(events.size()) + 1;
    rocksdb::WriteBatch wb;
    std::string record;
    for (size_t i = 0; i < events.size(); ++i) {
      const Event& e = events[i];
      uint64_t offset = first + i;
      // u8 record_format | 32 prev_hash | 32 hash | payload. The hashes are
      // random bytes (incompressible, like SHA-256), not computed.
      record.clear();
      record.reserve(keys::kRecordHeaderSize + e.payload.size());
      record.push_back(static_cast<char>(keys::kRecordFormat));
      for (size_t w = 0; w < 2 * keys::kHashSize / 8; ++w) keys::AppendU64(&record, rng_.Next());
      record.append(e.payload);
      Check(wb.Put(raw_->handles[kLog], keys::LogKey(offset), record));
      Check(wb.Put(raw_->handles[kEventIds], e.event_id, keys::OffsetValue(offset)));
      if (!e.subject.empty()) {
        Check(wb.Put(raw_->handles[kSubjects], keys::SubjectKey(e.subject, offset), ""));
      }
      if (!e.area_code.empty()) {
        for (size_t len : *prefixes_) {
          Check(wb.Put(raw_->handles[kScopes],
                       keys::ScopeKey(std::string_view(e.area_code).substr(0, len), offset), ""));
        }
      }
      Check(wb.Put(raw_->handles[kProjections], e.projection_key, e.projection_value));
    }
    if (!batch_status_.ok()) return absl::InternalError(batch_status_.ToString());
    rocksdb::Status s = raw_->db->Write(write_options_, &wb);
    if (!s.ok()) return absl::InternalError(absl::StrCat("raw rocksdb write: ", s.ToString()));
    return absl::OkStatus();
  }

 private:
  void Check(const rocksdb::Status& s) {
    if (!s.ok() && batch_status_.ok()) batch_status_ = s;
  }

  RawDb* raw_;
  std::atomic<uint64_t>* next_offset_;
  const std::vector<size_t>* prefixes_;
  Rng rng_;
  rocksdb::WriteOptions write_options_;
  rocksdb::Status batch_status_;
};

absl::StatusOr<PhaseResult> RunRaw(const Flags& flags, size_t batch, uint64_t seed) {
  absl::StatusOr<TempDir> dir = TempDir::Make(flags.dir, "raw");
  if (!dir.ok()) return dir.status();
  absl::StatusOr<std::unique_ptr<RawDb>> raw = OpenRawDb(dir->path());
  if (!raw.ok()) return raw.status();
  const std::vector<size_t> prefixes = storage::StoreOptions().scope_prefix_lengths;
  std::atomic<uint64_t> next_offset{0};
  RawDb* db = raw->get();
  absl::StatusOr<PhaseResult> result = RunPhase(flags, batch, seed, [&](int t) {
    return RawWorker(db, &next_offset, &prefixes, seed ^ (0xabcdef12345ULL + static_cast<uint64_t>(t)));
  });
  raw->reset();  // Close before the directory goes.
  return result;
}

// ---------------------------------------------------------------- fieldsync

struct GroupStats {
  std::atomic<uint64_t> groups{0};
  std::atomic<uint64_t> records{0};
  std::atomic<int64_t> write_ns{0};
};

class FieldsyncWorker {
 public:
  explicit FieldsyncWorker(storage::EventStore* store) : store_(store) {}

  std::vector<storage::AppendEntry> Make(EventGenerator& generator, size_t batch) {
    std::vector<storage::AppendEntry> entries;
    entries.reserve(batch);
    for (size_t i = 0; i < batch; ++i) {
      Event e = generator.Next();
      storage::AppendEntry entry;
      entry.event_id = std::move(e.event_id);
      entry.subject = std::move(e.subject);
      entry.area_code = std::move(e.area_code);
      entry.payload = std::move(e.payload);
      entry.projections.push_back({std::move(e.projection_key), std::move(e.projection_value)});
      entries.push_back(std::move(entry));
    }
    return entries;
  }

  absl::Status Write(std::vector<storage::AppendEntry>& entries) {
    const size_t n = entries.size();
    absl::StatusOr<std::vector<storage::AppendResult>> results = store_->Append(std::move(entries));
    if (!results.ok()) return results.status();
    if (results->size() != n) {
      return absl::InternalError(absl::StrCat("Append answered ", results->size(), " results for ", n));
    }
    for (const storage::AppendResult& r : *results) {
      if (r.duplicate) return absl::InternalError("Append reported a duplicate of a unique event_id");
    }
    return absl::OkStatus();
  }

 private:
  storage::EventStore* store_;
};

struct FieldsyncResult {
  PhaseResult phase;
  uint64_t groups = 0;
  double avg_group_records = 0;
  double write_time_share = 0;  // Committer time inside the synced RocksDB write / phase time.
  bool head_ok = false;
};

absl::StatusOr<FieldsyncResult> RunFieldsync(const Flags& flags, size_t batch, uint64_t seed) {
  absl::StatusOr<TempDir> dir = TempDir::Make(flags.dir, "fieldsync");
  if (!dir.ok()) return dir.status();
  // Default options; the group-commit hook only counts (it must not block).
  auto stats = std::make_shared<GroupStats>();
  storage::StoreOptions options;
  options.on_group_committed = [stats](const storage::GroupCommitInfo& info) {
    stats->groups.fetch_add(1, std::memory_order_relaxed);
    stats->records.fetch_add(info.records, std::memory_order_relaxed);
    stats->write_ns.fetch_add(absl::ToInt64Nanoseconds(info.write_time), std::memory_order_relaxed);
  };
  absl::StatusOr<std::unique_ptr<storage::EventStore>> store =
      storage::OpenEventStore(dir->path(), std::move(options));
  if (!store.ok()) return store.status();
  storage::EventStore* s = store->get();
  uint64_t groups_before = stats->groups.load();
  uint64_t records_before = stats->records.load();
  int64_t write_ns_before = stats->write_ns.load();
  absl::StatusOr<PhaseResult> phase =
      RunPhase(flags, batch, seed, [s](int) { return FieldsyncWorker(s); });
  if (!phase.ok()) return phase.status();
  FieldsyncResult result;
  result.phase = *phase;
  result.groups = stats->groups.load() - groups_before;
  uint64_t records = stats->records.load() - records_before;
  result.avg_group_records =
      result.groups > 0 ? static_cast<double>(records) / static_cast<double>(result.groups) : 0;
  double write_s = static_cast<double>(stats->write_ns.load() - write_ns_before) / 1e9;
  result.write_time_share = phase->seconds > 0 ? write_s / phase->seconds : 0;
  result.head_ok = s->Head() == phase->events;
  if (!result.head_ok) {
    std::fprintf(stderr, "storage_bench: WARNING fieldsync head %" PRIu64 " != %" PRIu64 " events acknowledged\n",
                 s->Head(), phase->events);
  }
  store->reset();  // Close before the directory goes.
  return result;
}

// ---------------------------------------------------------------- report

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

std::string Num(double value, int decimals) {
  if (!std::isfinite(value)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  return buf;
}

struct Pair {
  PhaseResult raw;
  FieldsyncResult fieldsync;
  double ratio = 0;
};

int Main(int argc, char** argv) {
  absl::StatusOr<Flags> parsed = ParseFlags(argc, argv);
  if (!parsed.ok()) {
    if (!absl::IsCancelled(parsed.status())) {
      std::fprintf(stderr, "storage_bench: %s\n", std::string(parsed.status().message()).c_str());
    }
    std::fputs(kUsage, stderr);
    return absl::IsCancelled(parsed.status()) ? 0 : 2;
  }
  Flags flags = *parsed;
  if (flags.dir.empty()) {
    std::error_code ec;
    fs::path tmp = fs::temp_directory_path(ec);
    flags.dir = ec ? "/tmp" : tmp.string();
  }

  std::string cases_json;
  double goal_ratio = NAN;
  bool goal_measured = false;
  uint64_t seed = 1;
  for (size_t batch : flags.batches) {
    std::vector<Pair> pairs;
    for (int rep = 0; rep < flags.repeat; ++rep, ++seed) {
      Pair pair;
      std::fprintf(stderr, "storage_bench: batch %zu run %d/%d: raw rocksdb...\n", batch, rep + 1,
                   flags.repeat);
      absl::StatusOr<PhaseResult> raw = RunRaw(flags, batch, seed);
      if (!raw.ok()) {
        std::fprintf(stderr, "storage_bench: raw phase failed: %s\n", raw.status().ToString().c_str());
        return 1;
      }
      pair.raw = *raw;
      std::fprintf(stderr, "storage_bench:   raw %.0f events/s (p50 %.2f ms, p99 %.2f ms); fieldsync...\n",
                   raw->events_per_s, raw->p50_ms, raw->p99_ms);
      absl::StatusOr<FieldsyncResult> fieldsync = RunFieldsync(flags, batch, seed);
      if (!fieldsync.ok()) {
        std::fprintf(stderr, "storage_bench: fieldsync phase failed: %s\n",
                     fieldsync.status().ToString().c_str());
        return 1;
      }
      pair.fieldsync = *fieldsync;
      pair.ratio = pair.raw.events_per_s > 0 ? pair.fieldsync.phase.events_per_s / pair.raw.events_per_s : NAN;
      std::fprintf(stderr,
                   "storage_bench:   fieldsync %.0f events/s (p50 %.2f ms, p99 %.2f ms, %" PRIu64
                   " groups of %.1f records, rocksdb write %.0f%% of the time); ratio %.3f\n",
                   fieldsync->phase.events_per_s, fieldsync->phase.p50_ms, fieldsync->phase.p99_ms,
                   fieldsync->groups, fieldsync->avg_group_records, 100 * fieldsync->write_time_share,
                   pair.ratio);
      pairs.push_back(pair);
    }

    auto median_of = [&](auto get) {
      std::vector<double> v;
      for (const Pair& p : pairs) v.push_back(get(p));
      return Median(std::move(v));
    };
    // Figures are medians over the repetitions; the ratio is the median of the
    // per-pair ratios (each fieldsync phase against the raw phase just before it).
    double ratio = median_of([](const Pair& p) { return p.ratio; });
    bool head_ok = std::all_of(pairs.begin(), pairs.end(),
                               [](const Pair& p) { return p.fieldsync.head_ok; });
    std::string c = absl::StrCat(
        "{\"batch\":", batch,
        ",\"fieldsync_events_per_s\":", Num(median_of([](const Pair& p) { return p.fieldsync.phase.events_per_s; }), 1),
        ",\"raw_rocksdb_events_per_s\":", Num(median_of([](const Pair& p) { return p.raw.events_per_s; }), 1),
        ",\"ratio\":", Num(ratio, 3),
        ",\"fieldsync_p50_ms\":", Num(median_of([](const Pair& p) { return p.fieldsync.phase.p50_ms; }), 3),
        ",\"fieldsync_p99_ms\":", Num(median_of([](const Pair& p) { return p.fieldsync.phase.p99_ms; }), 3),
        ",\"raw_rocksdb_p50_ms\":", Num(median_of([](const Pair& p) { return p.raw.p50_ms; }), 3),
        ",\"raw_rocksdb_p99_ms\":", Num(median_of([](const Pair& p) { return p.raw.p99_ms; }), 3),
        ",\"fieldsync_avg_group_records\":",
        Num(median_of([](const Pair& p) { return p.fieldsync.avg_group_records; }), 1),
        ",\"fieldsync_write_time_share\":",
        Num(median_of([](const Pair& p) { return p.fieldsync.write_time_share; }), 3),
        ",\"fieldsync_head_ok\":", head_ok ? "true" : "false");
    if (flags.repeat > 1) {
      absl::StrAppend(&c, ",\"runs\":[");
      for (size_t i = 0; i < pairs.size(); ++i) {
        absl::StrAppend(&c, i ? "," : "", "{\"fieldsync_events_per_s\":",
                        Num(pairs[i].fieldsync.phase.events_per_s, 1), ",\"raw_rocksdb_events_per_s\":",
                        Num(pairs[i].raw.events_per_s, 1), ",\"ratio\":", Num(pairs[i].ratio, 3), "}");
      }
      absl::StrAppend(&c, "]");
    }
    absl::StrAppend(&c, "}");
    absl::StrAppend(&cases_json, cases_json.empty() ? "" : ",", c);
    if (static_cast<double>(batch) == kGoalBatch) {
      goal_ratio = ratio;
      goal_measured = true;
    }
  }

  std::string goal = absl::StrCat("{\"batch\":", Num(kGoalBatch, 0), ",\"min_ratio\":", Num(kGoalMinRatio, 1),
                                  ",\"ratio\":", goal_measured ? Num(goal_ratio, 3) : "null", ",\"met\":",
                                  !goal_measured             ? "null"
                                  : goal_ratio >= kGoalMinRatio ? "true"
                                                                : "false",
                                  "}");
  std::printf(
      "{\"benchmark\":\"storage_append\",\"threads\":%d,\"event_bytes\":%zu,\"seconds\":%s,"
      "\"repeat\":%d,\"cases\":[%s],\"goal\":%s}\n",
      flags.threads, flags.event_bytes, Num(flags.seconds, 1).c_str(), flags.repeat, cases_json.c_str(),
      goal.c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace fieldsync::bench

int main(int argc, char** argv) { return fieldsync::bench::Main(argc, argv); }
