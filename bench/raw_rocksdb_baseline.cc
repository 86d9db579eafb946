#include "bench/raw_rocksdb_baseline.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/big_endian.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"
#include "storage/event_store.h"
#include "storage/key_format.h"
#include "storage/rocksdb_options.h"

namespace fieldsync::bench {
namespace {

namespace fs = std::filesystem;
namespace keys = storage::keys;

constexpr size_t kDevicesPerThread = 16;

// 9-digit township codes of Gansu (6-digit county + 3-digit township); a
// village adds 3 digits to make the 12-digit area code.
constexpr const char* kTownships[] = {
    "620102001", "620102002", "620102003", "620103001", "620104001", "620105001",
    "620111101", "620121100", "620122100", "620123100", "620421100", "620521100",
    "621121100", "621122100", "622921100", "620602100",
};
constexpr size_t kTownshipCount = sizeof(kTownships) / sizeof(kTownships[0]);

// The column families fieldsync writes on append, in the store's names.
enum RawFamily { kLog = 1, kEventIds, kSubjects, kScopes, kProjections, kFamilyCount };

struct RawDb {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  ~RawDb() {
    for (rocksdb::ColumnFamilyHandle* h : handles) {
      if (db != nullptr) db->DestroyColumnFamilyHandle(h);
    }
    // Close's status is ignored on purpose: the directory is deleted next.
    if (db != nullptr) db->Close().PermitUncheckedError();
  }
};

absl::StatusOr<std::unique_ptr<RawDb>> OpenRawDb(const std::string& path,
                                                 const storage::StoreOptions& store_options) {
  // The store's own RocksDB options (compression, block cache, bloom filters,
  // memtables, WAL and background settings, every column family), from the
  // one function the store opens with: the ratio measures fieldsync's code,
  // not a different configuration.
  storage::RocksDbOpenOptions open = storage::StoreRocksDbOptions(store_options);
  const rocksdb::DBOptions& db_options = open.db;
  const std::vector<rocksdb::ColumnFamilyDescriptor>& families = open.families;
  auto raw = std::make_unique<RawDb>();
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, path, families, &raw->handles, &db);
  if (!s.ok()) return absl::InternalError(absl::StrCat("raw rocksdb open: ", s.ToString()));
  raw->db.reset(db);
  return raw;
}

}  // namespace

absl::StatusOr<double> SettleCompactions(const std::string& path,
                                         const storage::StoreOptions& store_options,
                                         std::chrono::seconds timeout) {
  absl::StatusOr<std::unique_ptr<RawDb>> raw = OpenRawDb(path, store_options);
  if (!raw.ok()) return raw.status();
  const Clock::time_point start = Clock::now();
  // Two quiet polls in a row: a finished flush can schedule a compaction.
  for (int quiet = 0; quiet < 2;) {
    uint64_t busy = 0;
    for (rocksdb::ColumnFamilyHandle* family : (*raw)->handles) {
      for (const char* property : {"rocksdb.compaction-pending", "rocksdb.mem-table-flush-pending"}) {
        uint64_t value = 0;
        if (!(*raw)->db->GetIntProperty(family, property, &value)) {
          return absl::InternalError(absl::StrCat("rocksdb property ", property, " unavailable"));
        }
        busy += value;
      }
    }
    for (const char* property : {"rocksdb.num-running-compactions", "rocksdb.num-running-flushes"}) {
      uint64_t value = 0;
      if (!(*raw)->db->GetIntProperty(property, &value)) {
        return absl::InternalError(absl::StrCat("rocksdb property ", property, " unavailable"));
      }
      busy += value;
    }
    quiet = busy == 0 ? quiet + 1 : 0;
    if (Clock::now() - start > timeout) {
      return absl::DeadlineExceededError(
          absl::StrCat("RocksDB still compacting after ", timeout.count(), " s"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

namespace {

class RawWorker {
 public:
  RawWorker(RawDb* raw, std::atomic<uint64_t>* next_offset, const std::vector<size_t>* prefixes,
            uint64_t seed)
      : raw_(raw), next_offset_(next_offset), prefixes_(prefixes), rng_(seed) {
    write_options_.sync = true;
  }

  std::vector<SyntheticEvent> Make(EventGenerator& generator, size_t batch) {
    std::vector<SyntheticEvent> events;
    events.reserve(batch);
    for (size_t i = 0; i < batch; ++i) events.push_back(generator.Next());
    return events;
  }

  // Encodes the same keys and value sizes as fieldsync's append and writes them
  // in one synced WriteBatch.
  absl::Status Write(const std::vector<SyntheticEvent>& events) {
    uint64_t first = next_offset_->fetch_add(events.size()) + 1;
    rocksdb::WriteBatch wb;
    std::string record;
    for (size_t i = 0; i < events.size(); ++i) {
      const SyntheticEvent& e = events[i];
      uint64_t offset = first + i;
      // u8 record_format | 32 prev_hash | 32 hash | payload. The hashes are
      // random bytes (incompressible, like SHA-256), not computed.
      record.clear();
      record.reserve(keys::kRecordHeaderSize + e.payload.size());
      record.push_back(static_cast<char>(keys::kRecordFormat));
      for (size_t w = 0; w < 2 * keys::kHashSize / 8; ++w) base::AppendBe64(&record, rng_.Next());
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

}  // namespace

EventGenerator::EventGenerator(uint64_t seed, int thread, size_t payload_bytes)
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

SyntheticEvent EventGenerator::Next() {
  SyntheticEvent e;
  uint64_t seq = seq_++;
  uint64_t r1 = rng_.Next();
  uint64_t r2 = rng_.Next();
  // The last group carries (thread, seq): unique within a run by construction.
  uint64_t tail = ((thread_ & 0xfff) << 36) | (seq & 0xfffffffffULL);
  char id[40];
  std::snprintf(id, sizeof(id),
                "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-%04" PRIx64 "-%012" PRIx64, r1 >> 32,
                (r1 >> 16) & 0xffff, (r1 >> 4) & 0xfff, 0x8000 | (r2 & 0x3fff), tail);
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

double Percentile(std::vector<double>& values, double q) {
  if (values.empty()) return 0;
  size_t index = static_cast<size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index),
                   values.end());
  return values[index];
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

absl::StatusOr<PhaseResult> RunRawRocksDbBaseline(const PhaseOptions& options,
                                                  const std::string& parent_dir,
                                                  const storage::StoreOptions& store_options) {
  absl::StatusOr<TempDir> dir = TempDir::Make(parent_dir, "raw");
  if (!dir.ok()) return dir.status();
  absl::StatusOr<std::unique_ptr<RawDb>> raw = OpenRawDb(dir->path(), store_options);
  if (!raw.ok()) return raw.status();
  const std::vector<size_t> prefixes = store_options.scope_prefix_lengths;
  std::atomic<uint64_t> next_offset{0};
  RawDb* db = raw->get();
  const uint64_t seed = options.seed;
  absl::StatusOr<PhaseResult> result = RunPhase(options, [&](int t) {
    return RawWorker(db, &next_offset, &prefixes,
                     seed ^ (0xabcdef12345ULL + static_cast<uint64_t>(t)));
  });
  raw->reset();  // Close before the directory goes.
  return result;
}

absl::StatusOr<TempDir> TempDir::Make(const std::string& parent, std::string_view tag) {
  std::string templ =
      (fs::path(parent) / ("fieldsync_bench_" + std::string(tag) + ".XXXXXX")).string();
  if (::mkdtemp(templ.data()) == nullptr) {
    return absl::InternalError("mkdtemp " + templ + ": " + std::strerror(errno));
  }
  return TempDir(std::move(templ));
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, std::string())) {}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove_all(path_, ec);  // Best effort: a leftover temp dir is harmless.
}

std::string DefaultTempParent() {
  std::error_code ec;
  fs::path tmp = fs::temp_directory_path(ec);
  return ec ? "/tmp" : tmp.string();
}

absl::StatusOr<std::pair<std::string, std::string>> SplitFlag(const std::string& arg) {
  if (arg == "--help" || arg == "-h") return absl::CancelledError("help");
  if (arg.rfind("--", 0) != 0) return absl::InvalidArgumentError("bad argument " + arg);
  const size_t eq = arg.find('=');
  if (eq == std::string::npos) return absl::InvalidArgumentError("flag " + arg + " needs =value");
  return std::make_pair(arg.substr(2, eq - 2), arg.substr(eq + 1));
}

std::string LoadAverage() {
  std::FILE* f = std::fopen("/proc/loadavg", "r");
  if (f == nullptr) return "null";
  double one = NAN;
  const int n = std::fscanf(f, "%lf", &one);
  std::fclose(f);
  return n == 1 ? JsonNumber(one, 2) : "null";
}

std::string JsonNumber(double value, int decimals) {
  if (!std::isfinite(value)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  return buf;
}

}  // namespace fieldsync::bench
