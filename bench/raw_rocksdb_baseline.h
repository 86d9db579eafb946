// The raw RocksDB ceiling that fieldsync's benchmarks measure themselves
// against, and the pieces of harness the benchmarks share.
//
// RunRawRocksDbBaseline is what storage_bench calls "raw RocksDB" and what
// push_bench reports as `raw_rocksdb_events_per_s`: `threads` writers, each
// writing one rocksdb::WriteBatch with sync=true per batch of synthetic
// events, holding per event exactly the keys and value sizes fieldsync's
// EventStore writes on append (storage/key_format.h): the log record (65-byte
// header + payload), event_id -> offset, the subject index, one scope key per
// indexed prefix length (6, 9, 12) and one projection put. Offsets come from
// an atomic counter. No fieldsync code runs but the key-format helpers: no
// hashing, no duplicate lookup, no committer thread, no queue. The database is
// opened with the store's own RocksDB options (storage::StoreRocksDbOptions,
// the function RocksDbEventStore opens with: compression, bloom filters,
// memtables, WAL and background settings, the same column families), so the
// ratio measures fieldsync's code, not a configuration. Both benchmarks call
// this one function, so their ceilings are the same measurement.
//
// The rest is harness: the synthetic event generator (Gansu area codes,
// UUID-like ids, ~300-byte payloads), the timed loop RunPhase, percentiles,
// temporary directories and flag parsing.
//
// Thread-safety: Rng and EventGenerator are not thread-safe (one per
// thread); the free functions are safe to call from any thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <latch>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/event_store.h"

namespace fieldsync::bench {

using Clock = std::chrono::steady_clock;

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
  // Uniform in [0, n); n > 0.
  uint64_t Below(uint64_t n) { return Next() % n; }
  // Uniform in [0, 1).
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

// One synthetic event: what a field device would submit, in the shape
// fieldsync stores it.
struct SyntheticEvent {
  std::string event_id;          // 36-char UUID-like, unique within a run.
  std::string subject;           // "household/<12-digit village>-<4 digits>"
  std::string area_code;         // 12-digit village code.
  std::string payload;           // payload_bytes of opaque bytes.
  std::string projection_key;    // "dev/<device>": the device's high-water mark.
  std::string projection_value;  // kProjectionValueBytes bytes.
};

// Bytes of the projection value written with each synthetic event.
inline constexpr size_t kProjectionValueBytes = 100;

// Deterministic synthetic events: the same (seed, thread) gives the same
// sequence in every phase, so the phases of a benchmark write the same data.
class EventGenerator {
 public:
  EventGenerator(uint64_t seed, int thread, size_t payload_bytes);
  SyntheticEvent Next();

 private:
  Rng rng_;
  uint64_t thread_;
  size_t payload_bytes_;
  uint64_t seq_ = 0;
  std::vector<std::string> devices_;
};

// What one timed phase measured.
struct PhaseResult {
  uint64_t events = 0;
  uint64_t calls = 0;
  double seconds = 0;  // From the start to the end of the last call.
  double events_per_s = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

// The shape of a timed phase.
struct PhaseOptions {
  double seconds = 3;        // Wall time; calls stop starting after it.
  int threads = 8;           // Writer threads.
  size_t batch = 50;         // Events per call.
  size_t event_bytes = 300;  // Payload bytes per synthetic event.
  uint64_t seed = 1;         // EventGenerator seed.
};

// The q-quantile (0..1) of `values` by nearest rank; 0 if empty. Reorders
// `values`.
double Percentile(std::vector<double>& values, double q);

// The median; 0 if empty.
double Median(std::vector<double> values);

// Runs options.threads threads for options.seconds. Each thread owns a worker
// made by make_worker(thread) and an EventGenerator(options.seed, thread,
// options.event_bytes); per call it builds a batch with worker.Make(generator,
// options.batch) (untimed) and then times worker.Write(input), which must
// return OK only when the batch is durable. The first failed Write stops the
// phase and is returned.
template <typename MakeWorker>
absl::StatusOr<PhaseResult> RunPhase(const PhaseOptions& options, MakeWorker make_worker) {
  const int n = options.threads;
  const size_t batch = options.batch;
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
      EventGenerator generator(options.seed, t, options.event_bytes);
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
                         std::chrono::duration<double>(options.seconds));
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
  result.events_per_s =
      result.seconds > 0 ? static_cast<double>(result.events) / result.seconds : 0;
  result.p50_ms = Percentile(latencies, 0.50);
  result.p99_ms = Percentile(latencies, 0.99);
  return result;
}

// The raw RocksDB ceiling (see the top of this file): a fresh database in a
// new temporary directory under `parent_dir`, removed afterwards, opened with
// the RocksDB options a store opened with `store_options` uses
// (storage::StoreRocksDbOptions; its scope_prefix_lengths decide the scope
// keys).
// Errors: Internal if the directory cannot be made or RocksDB fails to open
// or write.
absl::StatusOr<PhaseResult> RunRawRocksDbBaseline(
    const PhaseOptions& options, const std::string& parent_dir,
    const storage::StoreOptions& store_options = storage::StoreOptions());

// Opens the closed store at `path` with its own RocksDB options and waits
// until RocksDB has no flush or compaction pending or running in any column
// family (polled every 200 ms), then closes it. For a benchmark that loaded a
// store faster than any field traffic would, so that its measured phase pays
// for compacting its own writes, not the load's backlog. Returns the seconds
// waited. Internal if RocksDB fails; DeadlineExceeded after `timeout`.
absl::StatusOr<double> SettleCompactions(const std::string& path,
                                         const storage::StoreOptions& store_options,
                                         std::chrono::seconds timeout);

// A fresh directory under a parent, removed (recursively) when this goes
// away. Movable, not copyable.
class TempDir {
 public:
  // Makes "<parent>/fieldsync_bench_<tag>.XXXXXX". Internal on failure.
  static absl::StatusOr<TempDir> Make(const std::string& parent, std::string_view tag);
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// $TMPDIR (or the system's temporary directory), else "/tmp".
std::string DefaultTempParent();

// The 1-minute load average from /proc/loadavg as a JSON number ("null" if
// unreadable): the machine is shared, so every report says how busy it was.
std::string LoadAverage();

// "%.<decimals>f" of `value`; "null" if not finite (for JSON).
std::string JsonNumber(double value, int decimals);

// Splits one command-line argument "--name=value" into (name, value).
// Cancelled for --help/-h; InvalidArgument for anything else not of that form.
absl::StatusOr<std::pair<std::string, std::string>> SplitFlag(const std::string& arg);

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

}  // namespace fieldsync::bench
