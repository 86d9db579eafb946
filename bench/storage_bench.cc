// storage_bench: durable append throughput of fieldsync's EventStore against
// the raw RocksDB ceiling on the same machine, in the same run.
//
// For each batch size (default 1, 50, 500) and each repetition, two phases run
// back to back, raw first, so that machine noise falls on both alike:
//
//   raw RocksDB  a fresh rocksdb::DB opened with the store's own RocksDB
//                options (storage::StoreRocksDbOptions: the same column
//                families, compression, filters, memtables, WAL); N
//                threads each write rocksdb::WriteBatch with sync=true holding,
//                per event, exactly the keys and value sizes fieldsync writes
//                (storage/key_format.h): log record (65-byte header + payload),
//                event_id -> offset, subject index, one scope key per prefix
//                length (6, 9, 12) and one projection put. Offsets come from an
//                atomic counter. No fieldsync code but the key-format helpers.
//                This phase, the event generator and the timed loop live in
//                bench/raw_rocksdb_baseline.h, shared with push_bench, so both
//                benchmarks measure the same ceiling with the same code.
//   fieldsync    a fresh EventStore (default StoreOptions); N threads each call
//                Append(batch) in a loop.
//
// Both phases run for --seconds of wall time; events/s = events acknowledged /
// (end of the last call - start). One JSON document goes to stdout, progress
// to stderr. A missed goal is reported, never an error: the exit status is 0
// unless the benchmark itself could not run (bad flag, open or write failure).
//
// The ratio of a batch size is the median of the per-pair ratios (--repeat
// pairs, default 3); the goals are 0.8x at 50 and 0.75x at 500 (issue 13).
// --levers=a,b (or all) then measures RocksDB option changes one at a time:
// fieldsync with the store's options against fieldsync with the one change,
// --repeat alternating pairs per batch size (see Levers()).
//
// Flags: --seconds=3 --threads=8 --batches=50,500 --repeat=3 --levers=
//        --event_bytes=300 --dir=<parent of the temp dirs, default $TMPDIR or /tmp>
#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "bench/raw_rocksdb_baseline.h"
#include "rocksdb/options.h"
#include "rocksdb/slice_transform.h"
#include "storage/event_store.h"
#include "storage/key_format.h"
#include "storage/rocksdb_options.h"

namespace fieldsync::bench {
namespace {

// Issue 13's goals: at least 0.8x the raw ceiling at batches of 50, 0.75x at
// batches of 500.
struct Goal {
  size_t batch;
  double min_ratio;
};
constexpr Goal kGoals[] = {{50, 0.8}, {500, 0.75}};

// ---------------------------------------------------------------- levers

// One RocksDB option change measured alone against the store's own options
// (--levers): applied through storage::OpenEventStoreWithTuning to the
// fieldsync phase only, in pairs alternating with an unchanged store.
struct Lever {
  const char* name;
  const char* what;
  void (*apply)(storage::RocksDbOpenOptions&);
};

rocksdb::ColumnFamilyOptions* Family(storage::RocksDbOpenOptions& o, std::string_view name) {
  for (rocksdb::ColumnFamilyDescriptor& d : o.families) {
    if (d.name == name) return &d.options;
  }
  return nullptr;  // Not reached: every family the levers name exists.
}

// Index keys end in an 8-byte big-endian offset after a per-subject or
// per-area prefix: all of the key but those 8 bytes names the run of keys
// that only ever grows at its end.
class AllButOffset final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "fieldsync.AllButOffset"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), key.size() - 8);
  }
  bool InDomain(const rocksdb::Slice& key) const override { return key.size() >= 8; }
};

const std::vector<Lever>& Levers() {
  static const std::vector<Lever> levers = {
      {"memtable_bloom",
       "a whole-key bloom filter in the memtables of event_ids and projections "
       "(memtable_prefix_bloom_size_ratio 0.1, memtable_whole_key_filtering)",
       [](storage::RocksDbOpenOptions& o) {
         for (const char* f : {storage::keys::kEventIdFamily, storage::keys::kProjectionFamily}) {
           Family(o, f)->memtable_prefix_bloom_size_ratio = 0.1;
           Family(o, f)->memtable_whole_key_filtering = true;
         }
       }},
      {"insert_hints",
       "memtable insert hints for the append-only families (log: a constant 4-byte prefix; "
       "subjects, scopes: the key without its offset)",
       [](storage::RocksDbOpenOptions& o) {
         Family(o, storage::keys::kLogFamily)->memtable_insert_with_hint_prefix_extractor.reset(
             rocksdb::NewFixedPrefixTransform(4));
         for (const char* f : {storage::keys::kSubjectFamily, storage::keys::kScopeFamily}) {
           Family(o, f)->memtable_insert_with_hint_prefix_extractor =
               std::make_shared<AllButOffset>();
         }
       }},
      {"write_buffers",
       "max_write_buffer_number 4 (default 2): a flush never stalls the writer",
       [](storage::RocksDbOpenOptions& o) {
         for (rocksdb::ColumnFamilyDescriptor& d : o.families) d.options.max_write_buffer_number = 4;
       }},
      {"l0_uncompressed",
       "no compression on L0 (flushes), LZ4 below, ZSTD bottommost",
       [](storage::RocksDbOpenOptions& o) {
         for (rocksdb::ColumnFamilyDescriptor& d : o.families) {
           d.options.compression_per_level = {rocksdb::kNoCompression, d.options.compression,
                                              d.options.compression, d.options.compression,
                                              d.options.compression, d.options.compression,
                                              d.options.compression};
         }
       }},
      {"pipelined_write",
       "enable_pipelined_write (WAL and memtable writes of successive groups overlap)",
       [](storage::RocksDbOpenOptions& o) { o.db.enable_pipelined_write = true; }},
  };
  return levers;
}

const Lever* FindLever(std::string_view name) {
  for (const Lever& l : Levers()) {
    if (name == l.name) return &l;
  }
  return nullptr;
}

// ---------------------------------------------------------------- flags

struct Flags {
  double seconds = 3;
  int threads = 8;
  std::vector<size_t> batches = {50, 500};
  int repeat = 3;
  std::vector<std::string> levers;
  size_t event_bytes = 300;
  std::string dir;
};

constexpr char kUsage[] =
    "usage: storage_bench [--seconds=3] [--threads=8] [--batches=50,500] [--repeat=3]\n"
    "                     [--event_bytes=300] [--dir=PARENT_OF_TEMP_DIRS]\n"
    "                     [--levers=NAME,...|all]\n";

absl::StatusOr<Flags> ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    absl::StatusOr<std::pair<std::string, std::string>> flag = SplitFlag(argv[i]);
    if (!flag.ok()) return flag.status();
    const auto& [name, value] = *flag;
    const std::string arg = argv[i];
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
    } else if (name == "levers") {
      flags.levers.clear();
      size_t pos = 0;
      while (ok && pos <= value.size()) {
        size_t comma = value.find(',', pos);
        if (comma == std::string::npos) comma = value.size();
        std::string lever = value.substr(pos, comma - pos);
        if (lever == "all") {
          for (const Lever& l : Levers()) flags.levers.push_back(l.name);
        } else {
          ok = FindLever(lever) != nullptr;
          if (ok) flags.levers.push_back(lever);
        }
        pos = comma + 1;
      }
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

// ---------------------------------------------------------------- phases

PhaseOptions OptionsFor(const Flags& flags, size_t batch, uint64_t seed) {
  PhaseOptions options;
  options.seconds = flags.seconds;
  options.threads = flags.threads;
  options.batch = batch;
  options.event_bytes = flags.event_bytes;
  options.seed = seed;
  return options;
}

absl::StatusOr<PhaseResult> RunRaw(const Flags& flags, size_t batch, uint64_t seed) {
  return RunRawRocksDbBaseline(OptionsFor(flags, batch, seed), flags.dir);
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
      SyntheticEvent e = generator.Next();
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
      return absl::InternalError(
          absl::StrCat("Append answered ", results->size(), " results for ", n));
    }
    for (const storage::AppendResult& r : *results) {
      if (r.duplicate)
        return absl::InternalError("Append reported a duplicate of a unique event_id");
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

absl::StatusOr<FieldsyncResult> RunFieldsync(const Flags& flags, size_t batch, uint64_t seed,
                                             const Lever* lever = nullptr) {
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
  storage::RocksDbTuning tune;
  if (lever != nullptr) tune = lever->apply;
  absl::StatusOr<std::unique_ptr<storage::EventStore>> store =
      storage::OpenEventStoreWithTuning(dir->path(), std::move(options), std::move(tune));
  if (!store.ok()) return store.status();
  storage::EventStore* s = store->get();
  uint64_t groups_before = stats->groups.load();
  uint64_t records_before = stats->records.load();
  int64_t write_ns_before = stats->write_ns.load();
  absl::StatusOr<PhaseResult> phase =
      RunPhase(OptionsFor(flags, batch, seed), [s](int) { return FieldsyncWorker(s); });
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
    std::fprintf(stderr,
                 "storage_bench: WARNING fieldsync head %" PRIu64 " != %" PRIu64
                 " events acknowledged\n",
                 s->Head(), phase->events);
  }
  store->reset();  // Close before the directory goes.
  return result;
}

// ---------------------------------------------------------------- report

// The report's number format (shared with push_bench).
std::string Num(double value, int decimals) { return JsonNumber(value, decimals); }

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
    flags.dir = DefaultTempParent();
  }

  std::string cases_json;
  std::map<size_t, double> ratio_by_batch;
  uint64_t seed = 1;
  for (size_t batch : flags.batches) {
    std::vector<Pair> pairs;
    for (int rep = 0; rep < flags.repeat; ++rep, ++seed) {
      Pair pair;
      std::fprintf(stderr, "storage_bench: batch %zu run %d/%d: raw rocksdb...\n", batch, rep + 1,
                   flags.repeat);
      absl::StatusOr<PhaseResult> raw = RunRaw(flags, batch, seed);
      if (!raw.ok()) {
        std::fprintf(stderr, "storage_bench: raw phase failed: %s\n",
                     raw.status().ToString().c_str());
        return 1;
      }
      pair.raw = *raw;
      std::fprintf(stderr,
                   "storage_bench:   raw %.0f events/s (p50 %.2f ms, p99 %.2f ms); fieldsync...\n",
                   raw->events_per_s, raw->p50_ms, raw->p99_ms);
      absl::StatusOr<FieldsyncResult> fieldsync = RunFieldsync(flags, batch, seed);
      if (!fieldsync.ok()) {
        std::fprintf(stderr, "storage_bench: fieldsync phase failed: %s\n",
                     fieldsync.status().ToString().c_str());
        return 1;
      }
      pair.fieldsync = *fieldsync;
      pair.ratio = pair.raw.events_per_s > 0
                       ? pair.fieldsync.phase.events_per_s / pair.raw.events_per_s
                       : NAN;
      std::fprintf(stderr,
                   "storage_bench:   fieldsync %.0f events/s (p50 %.2f ms, p99 %.2f ms, %" PRIu64
                   " groups of %.1f records, rocksdb write %.0f%% of the time); ratio %.3f\n",
                   fieldsync->phase.events_per_s, fieldsync->phase.p50_ms, fieldsync->phase.p99_ms,
                   fieldsync->groups, fieldsync->avg_group_records,
                   100 * fieldsync->write_time_share, pair.ratio);
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
    bool head_ok =
        std::all_of(pairs.begin(), pairs.end(), [](const Pair& p) { return p.fieldsync.head_ok; });
    std::string c = absl::StrCat(
        "{\"batch\":", batch, ",\"fieldsync_events_per_s\":",
        Num(median_of([](const Pair& p) { return p.fieldsync.phase.events_per_s; }), 1),
        ",\"raw_rocksdb_events_per_s\":",
        Num(median_of([](const Pair& p) { return p.raw.events_per_s; }), 1),
        ",\"ratio\":", Num(ratio, 3), ",\"fieldsync_p50_ms\":",
        Num(median_of([](const Pair& p) { return p.fieldsync.phase.p50_ms; }), 3),
        ",\"fieldsync_p99_ms\":",
        Num(median_of([](const Pair& p) { return p.fieldsync.phase.p99_ms; }), 3),
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
                        Num(pairs[i].fieldsync.phase.events_per_s, 1),
                        ",\"raw_rocksdb_events_per_s\":", Num(pairs[i].raw.events_per_s, 1),
                        ",\"ratio\":", Num(pairs[i].ratio, 3), "}");
      }
      absl::StrAppend(&c, "]");
    }
    absl::StrAppend(&c, "}");
    absl::StrAppend(&cases_json, cases_json.empty() ? "" : ",", c);
    ratio_by_batch[batch] = ratio;
  }

  // Levers: each option change alone, in pairs alternating with the store's
  // own options (unchanged first), fieldsync phases only.
  std::string levers_json;
  for (const std::string& name : flags.levers) {
    const Lever* lever = FindLever(name);
    for (size_t batch : flags.batches) {
      std::vector<double> base_rates, lever_rates, gains;
      for (int rep = 0; rep < flags.repeat; ++rep, ++seed) {
        std::fprintf(stderr, "storage_bench: lever %s, batch %zu run %d/%d...\n", lever->name,
                     batch, rep + 1, flags.repeat);
        absl::StatusOr<FieldsyncResult> base = RunFieldsync(flags, batch, seed);
        if (!base.ok()) {
          std::fprintf(stderr, "storage_bench: fieldsync phase failed: %s\n",
                       base.status().ToString().c_str());
          return 1;
        }
        absl::StatusOr<FieldsyncResult> tuned = RunFieldsync(flags, batch, seed, lever);
        if (!tuned.ok()) {
          std::fprintf(stderr, "storage_bench: fieldsync phase with %s failed: %s\n", lever->name,
                       tuned.status().ToString().c_str());
          return 1;
        }
        base_rates.push_back(base->phase.events_per_s);
        lever_rates.push_back(tuned->phase.events_per_s);
        gains.push_back(base->phase.events_per_s > 0
                            ? tuned->phase.events_per_s / base->phase.events_per_s
                            : NAN);
        std::fprintf(stderr, "storage_bench:   store's options %.0f, with %s %.0f events/s: %.3f\n",
                     base->phase.events_per_s, lever->name, tuned->phase.events_per_s,
                     gains.back());
      }
      absl::StrAppend(&levers_json, levers_json.empty() ? "" : ",", "{\"lever\":\"", lever->name,
                      "\",\"what\":\"", lever->what, "\",\"batch\":", batch,
                      ",\"fieldsync_events_per_s\":", Num(Median(base_rates), 1),
                      ",\"with_lever_events_per_s\":", Num(Median(lever_rates), 1),
                      ",\"ratio\":", Num(Median(gains), 3), "}");
    }
  }

  std::string goals;
  for (const Goal& g : kGoals) {
    auto it = ratio_by_batch.find(g.batch);
    const bool measured = it != ratio_by_batch.end();
    absl::StrAppend(&goals, goals.empty() ? "" : ",", "{\"batch\":", g.batch,
                    ",\"min_ratio\":", Num(g.min_ratio, 2),
                    ",\"ratio\":", measured ? Num(it->second, 3) : "null", ",\"met\":",
                    !measured                      ? "null"
                    : it->second >= g.min_ratio ? "true"
                                                   : "false",
                    "}");
  }
  std::printf(
      "{\"benchmark\":\"storage_append\",\"threads\":%d,\"event_bytes\":%zu,\"seconds\":%s,"
      "\"repeat\":%d,\"load_average\":%s,\"cases\":[%s],\"goals\":[%s],\"levers\":[%s]}\n",
      flags.threads, flags.event_bytes, Num(flags.seconds, 1).c_str(), flags.repeat,
      LoadAverage().c_str(), cases_json.c_str(), goals.c_str(), levers_json.c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace fieldsync::bench

int main(int argc, char** argv) { return fieldsync::bench::Main(argc, argv); }
