// push_bench: end-to-end push throughput of fieldsyncd through gRPC, set
// against the raw RocksDB ceiling measured in the same run, plus the latency
// of a township's first pull and of an incremental pull.
//
// It runs the real server binary (fieldsyncd, port 0, a fresh data dir, the
// default configuration but for the per-device rate limit, raised so that it
// never throttles the benchmark), and drives it only through its public gRPC
// API, as phones would:
//
//   setup        areas (a real Gansu township from the areas CSV and generated
//   (untimed)    villages), a unit, 8 cadres and one township staff user, one
//                enrolled device each (Ed25519 keys, libsodium); the township
//                device registers the households (HouseholdRegistered through
//                Push); the admin links each cadre to its villages
//                (VILLAGE_CADRE) and to a few households of the next cadre's
//                village (HOUSEHOLD_HELPER: those households are edited by two
//                devices, which makes concurrent edits); each cadre makes exit
//                plans for some of its households (PlanRevised), so that
//                MeasureDelivered has items to refer to.
//   outboxes     each cadre device makes and signs its outbox: batches of
//   (untimed)    --batch events, 70% VisitRecorded, 20% HouseholdFieldsSet,
//                10% other (IncomeObserved, MeasureDelivered, FeedbackFiled,
//                MemberAdded). Field devices sign events when they record them
//                (offline), not when they push, so signing is not part of the
//                push.
//   raw          the shared raw RocksDB ceiling (bench/raw_rocksdb_baseline.h:
//                --devices threads, batches of --batch, --event_bytes
//                payloads, synced WriteBatches), right before the push phase.
//   push         --devices threads, one per device, each over its own gRPC
//                channel (its own TCP connection), push their outboxes for
//                --seconds: one Push call per batch, timed from the call to
//                its answer (durable). Every answer is checked: one result per
//                event, accepted or conflict recorded; rejections and
//                duplicates are counted and reported.
//   pulls        the township device pulls from an empty cursor until the
//                snapshot is complete (first sync: every household of the
//                township), --pull_repeats times; then, --pull_repeats times,
//                a cadre device pushes --incremental_events events and the
//                township device pulls them from its last checkpoint.
//
// One JSON document goes to stdout, progress to stderr. A missed goal is
// reported, never an error: the exit status is 0 unless the benchmark could
// not run (1: the server did not start, a call failed, Push is not served; 2:
// a bad flag). See bench/README.md.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/text.h"
#include "base/time.h"
#include "bench/raw_rocksdb_baseline.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "fieldsync/v1/event.pb.h"
#include "fieldsync/v1/sync_service.grpc.pb.h"
#include "storage/event_store.h"
#include "sync/event_codec.h"

extern char** environ;

namespace fieldsync::bench {
namespace {

namespace fs = std::filesystem;

constexpr double kGoalMinRatio = 0.5;
// Issue 13's other goals: a first township pull of at most 400 gzip bytes per
// household; with --preload, at least 0.8x the empty store's throughput with
// the server's RSS under 512 MiB.
constexpr double kGoalGzipBytesPerHousehold = 400;
constexpr double kGoalPreloadVsEmpty = 0.8;
constexpr double kGoalMaxRssMiB = 512;
constexpr char kUnitId[] = "bench-unit";
constexpr char kTownshipUserId[] = "bench-township";
constexpr int kPlannedHouseholdsPerCadre = 20;
constexpr char kPlanItems[][8] = {"item-1", "item-2", "item-3"};
constexpr size_t kRejectionSamples = 5;
// The per-call deadline; generous: a call that takes longer is a failure.
constexpr auto kCallDeadline = std::chrono::seconds(120);

// ---------------------------------------------------------------- flags

struct Flags {
  double seconds = 5;
  int devices = 8;
  size_t batch = 50;
  int households = 2000;
  int villages = 16;
  int shared_households = 5;
  std::string township = "621121101";  // 马营镇, 通渭县, 定西市.
  int pull_repeats = 5;
  int incremental_events = 100;
  size_t event_bytes = 300;
  double outbox_events_per_s = 30000;
  int pairs = 3;
  uint64_t preload = 0;
  // 1 (the default): after the preload, the bench opens the store with raw
  // RocksDB until no flush or compaction is pending or running
  // (SettleCompactions), then starts fieldsyncd, so the measured phase does
  // not pay for the preload's own compaction backlog; 0: fieldsyncd opens the
  // store the preload closed, and whatever compaction was pending then may
  // land in the 5-second measured phase (bench/README.md "Preload").
  int preload_settle = 1;
  std::string dir;
  std::string fieldsyncd = FIELDSYNC_FIELDSYNCD_PATH;
  std::string areas_csv = FIELDSYNC_AREAS_CSV;
};

constexpr char kUsage[] =
    "usage: push_bench [--seconds=5] [--devices=8] [--batch=50] [--households=2000]\n"
    "                  [--villages=16] [--shared_households=5] [--township=621121101]\n"
    "                  [--pull_repeats=5] [--incremental_events=100] [--event_bytes=300]\n"
    "                  [--outbox_events_per_s=30000] [--pairs=3] [--preload=0]\n"
    "                  [--preload_settle=1]\n"
    "                  [--dir=PARENT_OF_TEMP_DIRS]\n"
    "                  [--fieldsyncd=PATH] [--areas_csv=PATH]\n";

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
    } else if (name == "devices") {
      ok = ParseNumber(value, &flags.devices) && flags.devices > 0 && flags.devices <= 256;
    } else if (name == "batch") {
      ok = ParseNumber(value, &flags.batch) && flags.batch > 0 && flags.batch <= 500;
    } else if (name == "households") {
      ok = ParseNumber(value, &flags.households) && flags.households > 0 &&
           flags.households <= 1000000;
    } else if (name == "villages") {
      ok = ParseNumber(value, &flags.villages) && flags.villages > 0 && flags.villages <= 999;
    } else if (name == "shared_households") {
      ok = ParseNumber(value, &flags.shared_households) && flags.shared_households >= 0;
    } else if (name == "township") {
      flags.township = value;
      ok = value.size() == 9 && base::IsDigits(value);
    } else if (name == "pull_repeats") {
      ok = ParseNumber(value, &flags.pull_repeats) && flags.pull_repeats > 0;
    } else if (name == "incremental_events") {
      ok = ParseNumber(value, &flags.incremental_events) && flags.incremental_events > 0;
    } else if (name == "event_bytes") {
      ok = ParseNumber(value, &flags.event_bytes) && flags.event_bytes >= 64;
    } else if (name == "outbox_events_per_s") {
      ok = ParseNumber(value, &flags.outbox_events_per_s) && flags.outbox_events_per_s > 0;
    } else if (name == "pairs") {
      ok = ParseNumber(value, &flags.pairs) && flags.pairs > 0 && flags.pairs <= 100;
    } else if (name == "preload") {
      ok = ParseNumber(value, &flags.preload);
    } else if (name == "preload_settle") {
      ok = ParseNumber(value, &flags.preload_settle) &&
           (flags.preload_settle == 0 || flags.preload_settle == 1);
    } else if (name == "dir") {
      flags.dir = value;
      ok = !value.empty();
    } else if (name == "fieldsyncd") {
      flags.fieldsyncd = value;
      ok = !value.empty();
    } else if (name == "areas_csv") {
      flags.areas_csv = value;
      ok = !value.empty();
    } else {
      return absl::InvalidArgumentError("unknown flag --" + name);
    }
    if (!ok) return absl::InvalidArgumentError("bad value for --" + name + ": " + value);
  }
  if (flags.villages < flags.devices) {
    return absl::InvalidArgumentError(
        "--villages must be at least --devices (each cadre links "
        "at least one village)");
  }
  if (flags.households < flags.villages) {
    return absl::InvalidArgumentError("--households must be at least --villages");
  }
  return flags;
}

void Progress(const std::string& message) {
  std::fprintf(stderr, "push_bench: %s\n", message.c_str());
}

// ---------------------------------------------------------------- the server

// fieldsyncd as a child process: started on port 0 with its stdout on a pipe
// (read for the admin token and the port, then drained) and its stderr (the
// logs, one line per call) in a file. Not thread-safe.
class ServerProcess {
 public:
  // `first_start`: the data dir is new, so the server prints the first admin
  // token (a restart on the same data dir prints none).
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(const std::string& binary,
                                                              const std::vector<std::string>& args,
                                                              const std::string& log_path,
                                                              bool first_start = true) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      return absl::InternalError("pipe: " + std::string(strerror(errno)));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    std::vector<std::string> argv_strings = {binary};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_strings) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      return absl::InternalError(absl::StrCat("cannot start ", binary, ": ", strerror(rc)));
    }
    auto server = std::unique_ptr<ServerProcess>(new ServerProcess(pid, fds[0], log_path));
    absl::Status status = server->ReadBanner(absl::Seconds(600), first_start);
    if (!status.ok()) return status;
    server->drain_ = std::thread([fd = server->stdout_fd_] {
      char buf[4096];
      while (::read(fd, buf, sizeof buf) > 0) {
      }
    });
    return server;
  }

  ~ServerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (drain_.joinable()) drain_.join();
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
  }

  // SIGTERM (graceful shutdown), then waits. Error if it does not exit
  // cleanly within `grace` (then it is killed).
  absl::Status Stop(absl::Duration grace) {
    if (pid_ <= 0) return absl::OkStatus();
    // A pidfd becomes readable when the child exits: wait for that, bounded.
    // (glibc 2.36's <sys/pidfd.h> lacks extern "C", hence the raw syscall.)
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    ::kill(pid_, SIGTERM);
    bool exited = true;
    if (pidfd >= 0) {
      pollfd pfd{pidfd, POLLIN, 0};
      const absl::Time until = absl::Now() + grace;
      int ready = 0;
      do {
        const int64_t left_ms = absl::ToInt64Milliseconds(until - absl::Now());
        ready = ::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(left_ms, 0)));
      } while (ready < 0 && errno == EINTR);
      exited = ready > 0;
      ::close(pidfd);
    }
    int status = 0;
    if (!exited) ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    if (!exited)
      return absl::DeadlineExceededError("fieldsyncd did not stop within the grace period");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return absl::InternalError(absl::StrCat("fieldsyncd exited with wait status ", status));
    }
    return absl::OkStatus();
  }

  pid_t pid() const { return pid_; }
  const std::string& address() const { return address_; }
  const std::string& admin_token() const { return admin_token_; }
  const std::string& log_path() const { return log_path_; }

  // The last `bytes` of the server's log, for error messages.
  std::string LogTail(size_t bytes = 4000) const {
    std::ifstream in(log_path_, std::ios::binary);
    std::stringstream all;
    all << in.rdbuf();
    std::string text = all.str();
    return text.size() > bytes ? text.substr(text.size() - bytes) : text;
  }

 private:
  ServerProcess(pid_t pid, int stdout_fd, std::string log_path)
      : pid_(pid), stdout_fd_(stdout_fd), log_path_(std::move(log_path)) {}

  // Reads stdout until "fieldsyncd listening on HOST:PORT".
  absl::Status ReadBanner(absl::Duration timeout, bool expect_token) {
    const absl::Time until = absl::Now() + timeout;
    std::string pending;
    constexpr std::string_view kToken = "first admin token: ";
    constexpr std::string_view kListening = "fieldsyncd listening on ";
    while (true) {
      size_t newline;
      while ((newline = pending.find('\n')) != std::string::npos) {
        std::string line = pending.substr(0, newline);
        pending.erase(0, newline + 1);
        if (line.rfind(kToken, 0) == 0) admin_token_ = line.substr(kToken.size());
        if (line.rfind(kListening, 0) == 0) {
          address_ = line.substr(kListening.size());
          if (expect_token && admin_token_.empty()) {
            return absl::InternalError("fieldsyncd printed no first admin token");
          }
          return absl::OkStatus();
        }
      }
      const absl::Duration left = until - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::DeadlineExceededError("fieldsyncd did not print its listening line");
      }
      pollfd pfd{stdout_fd_, POLLIN, 0};
      int ready = ::poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (ready < 0 && errno != EINTR) return absl::InternalError("poll on fieldsyncd's stdout");
      if (ready <= 0) continue;
      char buf[1024];
      ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
      if (n <= 0) {
        return absl::InternalError(
            absl::StrCat("fieldsyncd exited before listening; its log:\n", LogTail()));
      }
      pending.append(buf, static_cast<size_t>(n));
    }
  }

  pid_t pid_;
  int stdout_fd_;
  std::string log_path_;
  std::string address_;
  std::string admin_token_;
  std::thread drain_;
};

// ---------------------------------------------------------------- the server's CPU and memory

// CPU time of the server process and of each of its threads, from /proc.
// The process total is utime + stime of /proc/<pid>/stat (clock ticks; it
// includes threads that have exited); the threads' times come from
// /proc/<pid>/task/<tid>/schedstat (nanoseconds on the CPU), named by
// /proc/<pid>/task/<tid>/comm.
struct CpuSnapshot {
  double process_s = 0;
  std::map<long, std::pair<std::string, double>> threads;  // tid -> (comm, seconds)
};

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream all;
  all << in.rdbuf();
  return all.str();
}

CpuSnapshot ReadCpu(pid_t pid) {
  CpuSnapshot snap;
  const std::string stat = ReadSmallFile(absl::StrCat("/proc/", pid, "/stat"));
  // Fields after the ")" that closes comm: state is field 3, utime 14, stime 15.
  const size_t close = stat.rfind(')');
  if (close != std::string::npos) {
    std::istringstream fields(stat.substr(close + 1));
    std::vector<std::string> f;
    std::string field;
    while (fields >> field) f.push_back(field);
    if (f.size() > 12) {
      const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
      snap.process_s = (std::strtod(f[11].c_str(), nullptr) + std::strtod(f[12].c_str(), nullptr)) /
                       ticks;
    }
  }
  std::error_code ec;
  for (const auto& task : fs::directory_iterator(absl::StrCat("/proc/", pid, "/task"), ec)) {
    const std::string dir = task.path().string();
    std::string comm = ReadSmallFile(dir + "/comm");
    while (!comm.empty() && (comm.back() == '\n' || comm.back() == ' ')) comm.pop_back();
    const std::string schedstat = ReadSmallFile(dir + "/schedstat");
    if (schedstat.empty()) continue;  // The thread exited meanwhile.
    const long tid = std::strtol(task.path().filename().c_str(), nullptr, 10);
    snap.threads[tid] = {comm, std::strtod(schedstat.c_str(), nullptr) / 1e9};
  }
  return snap;
}

// The stage a server thread's CPU is counted in, by the thread's name. The
// store names its two commit threads (storage/rocksdb_event_store.cc);
// RocksDB names its pools "rocksdb:low"/"rocksdb:high"; every other thread of
// fieldsyncd is a gRPC thread (or an idle helper: stream hub, metrics).
std::string StageOf(const std::string& comm) {
  if (comm == "fs-committer") return "store_committer";
  if (comm == "fs-writer") return "store_writer";
  if (comm.rfind("rocksdb:", 0) == 0) return "rocksdb_background";
  return "grpc_threads";
}

// A thread name without its trailing digits ("rocksdb:low3" -> "rocksdb:low"),
// to add up a pool's threads.
std::string PoolOf(std::string comm) {
  while (!comm.empty() && comm.back() >= '0' && comm.back() <= '9') comm.pop_back();
  return comm;
}

// Server CPU over one phase: seconds by stage and by thread pool.
struct CpuUse {
  double process_s = 0;
  std::map<std::string, double> by_stage;
  std::map<std::string, double> by_pool;
};

CpuUse CpuBetween(const CpuSnapshot& before, const CpuSnapshot& after) {
  CpuUse use;
  use.process_s = after.process_s - before.process_s;
  for (const auto& [tid, thread] : after.threads) {
    double from = 0;
    if (auto it = before.threads.find(tid); it != before.threads.end()) from = it->second.second;
    const double used = thread.second - from;
    use.by_stage[StageOf(thread.first)] += used;
    use.by_pool[PoolOf(thread.first)] += used;
  }
  return use;
}

// VmRSS and VmHWM (peak) of /proc/<pid>/status, in MiB; -1 if unreadable.
std::pair<double, double> RssMiB(pid_t pid) {
  std::istringstream status(ReadSmallFile(absl::StrCat("/proc/", pid, "/status")));
  double rss = -1;
  double hwm = -1;
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::strtod(line.c_str() + 6, nullptr) / 1024;
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::strtod(line.c_str() + 6, nullptr) / 1024;
  }
  return {rss, hwm};
}

// Microseconds of one crypto_sign_verify_detached over `message` in this
// process (median of 5 runs of 200): the share of the server's CPU per event
// that Ed25519 verification alone explains, measured on the same machine at
// the same time.
double VerifyMicros(const std::string& message) {
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  unsigned char sig[crypto_sign_BYTES];
  const auto* m = reinterpret_cast<const unsigned char*>(message.data());
  crypto_sign_detached(sig, nullptr, m, message.size(), sk);
  std::vector<double> runs;
  for (int r = 0; r < 5; ++r) {
    const Clock::time_point t0 = Clock::now();
    int bad = 0;
    for (int i = 0; i < 200; ++i) bad += crypto_sign_verify_detached(sig, m, message.size(), pk);
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    if (bad == 0) runs.push_back(us / 200);
  }
  return Median(runs);
}

// gzip (zlib level 6, as gRPC's gzip message compression) size of `bytes`.
size_t GzipSize(const std::string& bytes) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return 0;
  std::string out(deflateBound(&z, bytes.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  const size_t size = z.total_out;
  deflateEnd(&z);
  return rc == Z_STREAM_END ? size : 0;
}

// ---------------------------------------------------------------- gRPC helpers

absl::Status FromGrpc(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

std::unique_ptr<grpc::ClientContext> CallContext(const std::string& token) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + kCallDeadline);
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return context;
}

// A channel of its own (its own TCP connection): gRPC shares subchannels of
// equal channels process-wide unless told not to.
std::shared_ptr<grpc::Channel> OwnChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

// ---------------------------------------------------------------- the population

// One registered household as the devices know it.
struct Household {
  std::string id;  // UUID.
  std::string number;
  std::string village;  // 12 digits.
  double lat = 0;
  double lng = 0;
};

// A lowercase RFC 4122 version-4 UUID from a process-wide random salt and a
// counter: unique in the run and across runs.
std::string NewUuid() {
  static std::atomic<uint64_t> counter{1};
  static const uint64_t salt = [] {
    std::random_device device;
    return (static_cast<uint64_t>(device()) << 32) ^ device();
  }();
  const uint64_t n = counter.fetch_add(1);
  return absl::StrFormat(
      "%08x-%04x-4%03x-%04x-%012x", static_cast<uint32_t>(salt >> 32),
      static_cast<uint32_t>((salt >> 16) & 0xffff), static_cast<uint32_t>(salt & 0xfff),
      static_cast<uint32_t>(0x8000 | ((n >> 48) & 0x3fff)), n & 0xffffffffffffULL);
}

// A resident ID number (GB 11643) of someone born in the county.
std::string IdNumber(const std::string& county6, Rng& rng) {
  const int year = 1940 + static_cast<int>(rng.Below(60));
  const int month = 1 + static_cast<int>(rng.Below(12));
  const int day = 1 + static_cast<int>(rng.Below(28));
  std::string first17 = absl::StrFormat("%s%04d%02d%02d%03d", county6, year, month, day,
                                        static_cast<int>(rng.Below(1000)));
  static constexpr int kWeights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  static constexpr char kCheck[] = "10X98765432";
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (first17[static_cast<size_t>(i)] - '0') * kWeights[i];
  return first17 + kCheck[sum % 11];
}

constexpr const char* kSurnames[] = {"王", "李", "張", "劉", "陳", "楊", "趙", "黃",
                                     "周", "吳", "徐", "孫", "馬", "朱", "胡", "郭"};
constexpr const char* kGiven[] = {"建國", "秀英", "志強", "桂蘭", "永祥", "玉梅", "海軍",
                                  "春花", "文斌", "麗娟", "明德", "小紅", "振華", "彩霞"};

std::string PersonName(Rng& rng) {
  return absl::StrCat(kSurnames[rng.Below(std::size(kSurnames))],
                      kGiven[rng.Below(std::size(kGiven))]);
}

v1::Date CivilDate(absl::Time t) {
  const absl::CivilDay day = absl::ToCivilDay(t, absl::FixedTimeZone(8 * 3600));
  v1::Date date;
  date.set_year(static_cast<int32_t>(day.year()));
  date.set_month(day.month());
  date.set_day(day.day());
  return date;
}

// A GNSS fix about `metres` from (lat, lng).
v1::Location FixNear(double lat, double lng, double metres, Rng& rng, absl::Time at) {
  const double angle = rng.Unit() * 2 * M_PI;
  const double r = metres * std::sqrt(rng.Unit());
  v1::Location fix;
  fix.set_lat(lat + r * std::cos(angle) / 111320.0);
  fix.set_lng(lng + r * std::sin(angle) / (111320.0 * std::cos(lat * M_PI / 180)));
  fix.set_accuracy_m(static_cast<float>(5 + rng.Below(25)));
  *fix.mutable_fix_time() = base::ToTimestamp(at);
  return fix;
}

// A field device: its Ed25519 key pair, enrollment, device_seq and HLC.
// Not thread-safe: one thread uses it at a time.
class Device {
 public:
  Device(std::string user_id, v1::Role role, uint64_t seed)
      : user_id_(std::move(user_id)), role_(role), rng_(seed) {
    crypto_sign_keypair(public_key_, secret_key_);
  }

  const std::string& user_id() const { return user_id_; }
  v1::Role role() const { return role_; }
  const std::string& device_id() const { return device_id_; }
  const std::string& token() const { return token_; }
  uint64_t next_seq() const { return next_seq_; }
  void set_next_seq(uint64_t seq) { next_seq_ = seq; }
  Rng& rng() { return rng_; }
  std::string public_key() const {
    return std::string(reinterpret_cast<const char*>(public_key_), sizeof public_key_);
  }
  void Enrolled(std::string device_id, std::string token) {
    device_id_ = std::move(device_id);
    token_ = std::move(token);
  }
  void Connect(const std::string& address) {
    channel_ = OwnChannel(address);
    stub_ = v1::SyncService::NewStub(channel_);
  }
  v1::SyncService::Stub& stub() { return *stub_; }

  // An event with the envelope filled (fresh event_id, next device_seq, a
  // ticked HLC, device time, subject, area); the caller sets the body and
  // calls Sign.
  v1::Event NewEvent(v1::SubjectKind kind, const std::string& subject_id,
                     const std::string& area_code, absl::Time now) {
    hlc_ = std::max(hlc_ + 1, static_cast<uint64_t>(absl::ToUnixMillis(now)) << 16);
    v1::Event event;
    event.set_event_id(NewUuid());
    event.set_device_id(device_id_);
    event.set_device_seq(next_seq_++);
    event.set_hlc(hlc_);
    *event.mutable_device_time() = base::ToTimestamp(now);
    event.mutable_subject()->set_kind(kind);
    event.mutable_subject()->set_id(subject_id);
    event.set_area_code(area_code);
    return event;
  }

  // Encodes the event once and signs those bytes, as a device does.
  v1::SignedEvent Seal(const v1::Event& event) const {
    v1::SignedEvent out;
    out.set_event(event.SerializeAsString());
    unsigned char signature[crypto_sign_BYTES];
    crypto_sign_detached(signature, nullptr,
                         reinterpret_cast<const unsigned char*>(out.event().data()),
                         out.event().size(), secret_key_);
    out.set_signature(std::string(reinterpret_cast<char*>(signature), sizeof signature));
    return out;
  }

 private:
  std::string user_id_;
  v1::Role role_;
  Rng rng_;
  unsigned char public_key_[crypto_sign_PUBLICKEYBYTES];
  unsigned char secret_key_[crypto_sign_SECRETKEYBYTES];
  std::string device_id_;
  std::string token_;
  uint64_t next_seq_ = 1;
  uint64_t hlc_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::SyncService::Stub> stub_;
};

// What a cadre device works on.
struct CadreWork {
  std::vector<int> own;      // Households of its linked villages.
  std::vector<int> shared;   // Households another device edits too.
  std::vector<int> planned;  // Households with an exit plan (for MeasureDelivered).
  std::vector<std::string> villages;
};

// Tallies of push answers.
struct PushTally {
  uint64_t accepted = 0;
  uint64_t conflicts = 0;
  uint64_t duplicates = 0;
  uint64_t rejected = 0;
  std::vector<std::string> rejection_samples;

  void Add(const PushTally& other) {
    accepted += other.accepted;
    conflicts += other.conflicts;
    duplicates += other.duplicates;
    rejected += other.rejected;
    for (const std::string& s : other.rejection_samples) {
      if (rejection_samples.size() < kRejectionSamples) rejection_samples.push_back(s);
    }
  }
};

// Counts the answers of a push; Internal if the answer does not have one
// result per event.
absl::Status Tally(const v1::PushRequest& request, const v1::PushResponse& response,
                   PushTally* tally) {
  if (response.results_size() != request.events_size()) {
    return absl::InternalError(absl::StrCat("Push answered ", response.results_size(),
                                            " results for ", request.events_size(), " events"));
  }
  for (int i = 0; i < response.results_size(); ++i) {
    const v1::PushResult& result = response.results(i);
    switch (result.outcome_case()) {
      case v1::PushResult::kAccepted:
        ++tally->accepted;
        break;
      case v1::PushResult::kConflictRecorded:
        ++tally->conflicts;
        break;
      case v1::PushResult::kDuplicate:
        ++tally->duplicates;
        break;
      case v1::PushResult::kRejected: {
        ++tally->rejected;
        if (tally->rejection_samples.size() < kRejectionSamples) {
          v1::Event event;
          (void)event.ParseFromString(request.events(i).event());
          tally->rejection_samples.push_back(
              absl::StrCat("body ", static_cast<int>(event.body_case()), " ",
                           v1::RejectionCode_Name(result.rejected().code()), " field '",
                           result.rejected().field(), "': ", result.rejected().message()));
        }
        break;
      }
      case v1::PushResult::kHeld:
        return absl::InternalError(absl::StrCat("a push event was held: ", result.held().reason()));
      default:
        return absl::InternalError("a Push result without an outcome");
    }
  }
  return absl::OkStatus();
}

// One Push call; the whole-call status is the error.
absl::Status PushOnce(Device& device, const v1::PushRequest& request, PushTally* tally) {
  v1::PushResponse response;
  auto context = CallContext(device.token());
  grpc::Status status = device.stub().Push(context.get(), request, &response);
  if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    return absl::UnimplementedError(
        "SyncService.Push answers UNIMPLEMENTED: the server does not serve pushes yet");
  }
  if (!status.ok()) return FromGrpc(status, "Push");
  return Tally(request, response, tally);
}

// ---------------------------------------------------------------- event mix

// Household fields the bench patches: none is set at registration, so a
// device's base version is 0 (the state it pulled at setup).
enum class PatchKind { kInt, kBool, kString, kEnumList };
struct PatchField {
  const char* name;
  PatchKind kind;
  int64_t min;
  int64_t max;
};
constexpr PatchField kPatchFields[] = {
    {"income_per_head_fen", PatchKind::kInt, 250000, 1500000},
    {"housing_area", PatchKind::kInt, 4000, 20000},
    {"planned_exit_year", PatchKind::kInt, 2024, 2027},
    {"safe_drinking_water", PatchKind::kBool, 0, 1},
    {"electricity", PatchKind::kBool, 0, 1},
    {"phone", PatchKind::kString, 0, 0},
    {"housing_structure", PatchKind::kString, 0, 0},
    {"secondary_poverty_causes", PatchKind::kEnumList, 1, 12},
};

constexpr const char* kVisitNotes[] = {
    "走訪了解家庭生產生活情況，宣講惠民政策，幫助制定增收計劃。",
    "核實家庭人口和收入情況，檢查危房改造進度，了解子女上學情況。",
    "協調落實養殖補助，指導春耕備耕，登記勞動力轉移就業意向。",
    "了解家庭成員健康狀況和醫療報銷情況，講解新農合政策。",
};
constexpr const char* kStructures[] = {"磚混", "磚木", "土木", "鋼混"};

class MixMaker {
 public:
  MixMaker(Device* device, const CadreWork* work, const std::vector<Household>* households,
           std::string unit_id)
      : device_(device), work_(work), households_(households), unit_id_(std::move(unit_id)) {}

  // The next event of the 70/20/10 mix, signed; `kind` counts what it was
  // (0 visit, 1 patch, 2 other).
  v1::SignedEvent Next(absl::Time now, int* kind) {
    Rng& rng = device_->rng();
    const double r = rng.Unit();
    v1::Event event;
    if (r < 0.70) {
      *kind = 0;
      event = Visit(PickHousehold(rng, 0.02), now);
    } else if (r < 0.90) {
      *kind = 1;
      event = Patch(PickHousehold(rng, 0.10), now);
    } else {
      *kind = 2;
      const double o = rng.Unit();
      if (o < 0.4) {
        event = Income(PickHousehold(rng, 0.0), now);
      } else if (o < 0.7 && !work_->planned.empty()) {
        event = Measure(
            (*households_)[static_cast<size_t>(work_->planned[rng.Below(work_->planned.size())])],
            now);
      } else if (o < 0.9) {
        event = Feedback(work_->villages[rng.Below(work_->villages.size())], now);
      } else {
        event = Member(PickHousehold(rng, 0.0), now);
      }
    }
    return device_->Seal(event);
  }

  // An exit plan for `household` (setup), signed.
  v1::SignedEvent Plan(const Household& household, absl::Time now) {
    v1::Event event = Envelope(household, now);
    v1::PlanRevised* plan = event.mutable_plan_revised();
    const int year = CivilDate(now).year();
    plan->set_plan_id(absl::StrCat(household.id, "/", year));
    plan->set_kind(v1::PLAN_KIND_HOUSEHOLD_EXIT);
    plan->set_year(year);
    plan->set_base_version(0);
    static constexpr v1::MeasureCategory kCategories[] = {v1::MEASURE_CATEGORY_INDUSTRY,
                                                          v1::MEASURE_CATEGORY_EDUCATION,
                                                          v1::MEASURE_CATEGORY_LABOUR_TRANSFER};
    static constexpr const char* kContents[] = {"發展肉牛養殖 5 頭", "子女就學補助",
                                                "勞動力轉移就業培訓"};
    for (size_t i = 0; i < std::size(kPlanItems); ++i) {
      v1::PlanItem* item = plan->add_items();
      item->set_item_id(kPlanItems[i]);
      item->set_category(kCategories[i]);
      item->set_content(kContents[i]);
      item->set_cost_fen(500000 * static_cast<int64_t>(i + 1));
      item->set_year(year);
    }
    plan->set_note("年度脫貧計劃");
    return device_->Seal(event);
  }

 private:
  // Mostly the device's own households; `shared_share` of the time one that
  // another device edits too.
  const Household& PickHousehold(Rng& rng, double shared_share) {
    const std::vector<int>& from =
        (!work_->shared.empty() && rng.Unit() < shared_share) ? work_->shared : work_->own;
    return (*households_)[static_cast<size_t>(from[rng.Below(from.size())])];
  }

  v1::Event Envelope(const Household& h, absl::Time now) {
    v1::Event event = device_->NewEvent(v1::SUBJECT_KIND_HOUSEHOLD, h.id, h.village, now);
    *event.mutable_location() = FixNear(h.lat, h.lng, 60, device_->rng(), now);
    return event;
  }

  v1::Event Visit(const Household& h, absl::Time now) {
    Rng& rng = device_->rng();
    const absl::Time end = now - absl::Minutes(static_cast<int64_t>(rng.Below(180)));
    const absl::Time start = end - absl::Minutes(20 + static_cast<int64_t>(rng.Below(160)));
    v1::Event event = Envelope(h, now);
    v1::VisitRecorded* visit = event.mutable_visit_recorded();
    *visit->mutable_start_time() = base::ToTimestamp(start);
    *visit->mutable_end_time() = base::ToTimestamp(end);
    visit->set_purpose(
        static_cast<v1::VisitPurpose>(1 + rng.Below(7)));  // ROUTINE..STATUS_VERIFICATION
    visit->set_notes(kVisitNotes[rng.Below(std::size(kVisitNotes))]);
    if (rng.Unit() < 0.5) {
      // A photo hash: uploaded later (on Wi-Fi), so the server marks it pending.
      std::string sha(32, '\0');
      for (size_t i = 0; i < sha.size(); i += 8) {
        const uint64_t word = rng.Next();
        std::memcpy(sha.data() + i, &word, 8);
      }
      visit->add_photo_sha256(sha);
    }
    if (rng.Unit() < 0.6) {
      visit->set_household_confirmed(true);
      visit->set_confirmer_name(PersonName(rng));
    }
    return event;
  }

  v1::Event Patch(const Household& h, absl::Time now) {
    Rng& rng = device_->rng();
    v1::Event event = Envelope(h, now);
    v1::HouseholdFieldsSet* set = event.mutable_household_fields_set();
    const size_t patches = 1 + rng.Below(2);
    std::set<size_t> chosen;
    while (chosen.size() < patches) chosen.insert(rng.Below(std::size(kPatchFields)));
    for (size_t index : chosen) {
      const PatchField& field = kPatchFields[index];
      v1::FieldPatch* patch = set->add_patches();
      patch->set_field(field.name);
      patch->set_base_version(0);  // The version the device pulled at setup.
      v1::FieldValue* value = patch->mutable_value();
      switch (field.kind) {
        case PatchKind::kInt:
          value->set_int_value(field.min + static_cast<int64_t>(rng.Below(
                                               static_cast<uint64_t>(field.max - field.min + 1))));
          break;
        case PatchKind::kBool:
          value->set_bool_value(rng.Below(2) == 1);
          break;
        case PatchKind::kString:
          if (std::string_view(field.name) == "phone") {
            value->set_string_value(
                absl::StrFormat("139%08d", static_cast<int>(rng.Below(100000000))));
          } else {
            value->set_string_value(kStructures[rng.Below(std::size(kStructures))]);
          }
          break;
        case PatchKind::kEnumList: {
          v1::IntList* list = value->mutable_int_list();
          list->add_values(field.min + static_cast<int64_t>(rng.Below(6)));
          list->add_values(field.min + 6 + static_cast<int64_t>(rng.Below(6)));
          break;
        }
      }
    }
    return event;
  }

  v1::Event Income(const Household& h, absl::Time now) {
    Rng& rng = device_->rng();
    v1::Event event = Envelope(h, now);
    v1::IncomeObserved* income = event.mutable_income_observed();
    income->set_year(CivilDate(now).year());
    income->set_period(v1::INCOME_PERIOD_MONTH);
    income->set_period_index(1 + static_cast<int32_t>(rng.Below(12)));
    income->set_category(static_cast<v1::IncomeCategory>(1 + rng.Below(5)));
    income->set_amount_fen(10000 + static_cast<int64_t>(rng.Below(500000)));
    income->set_note("入戶核算");
    return event;
  }

  v1::Event Measure(const Household& h, absl::Time now) {
    Rng& rng = device_->rng();
    v1::Event event = Envelope(h, now);
    v1::MeasureDelivered* measure = event.mutable_measure_delivered();
    measure->set_plan_id(absl::StrCat(h.id, "/", CivilDate(now).year()));
    measure->set_item_id(kPlanItems[rng.Below(std::size(kPlanItems))]);
    measure->set_amount_fen(100000 + static_cast<int64_t>(rng.Below(400000)));
    *measure->mutable_delivered_on() = CivilDate(now);
    measure->set_note("按計劃落實到戶");
    return event;
  }

  v1::Event Feedback(const std::string& village, absl::Time now) {
    Rng& rng = device_->rng();
    v1::Event event = device_->NewEvent(v1::SUBJECT_KIND_VILLAGE, village, village, now);
    v1::FeedbackFiled* feedback = event.mutable_feedback_filed();
    feedback->set_from_unit_id(unit_id_);
    feedback->set_kind(static_cast<v1::FeedbackKind>(1 + rng.Below(4)));
    feedback->set_title("村道硬化項目需求");
    feedback->set_content(
        "村內主幹道約三公里未硬化，雨季群眾出行和農產品外運困難，建議列入明年項目計劃。");
    return event;
  }

  v1::Event Member(const Household& h, absl::Time now) {
    Rng& rng = device_->rng();
    v1::Event event = Envelope(h, now);
    v1::MemberAdded* member = event.mutable_member_added();
    member->set_member_id(NewUuid());
    member->set_name(PersonName(rng));
    member->set_id_number(IdNumber(h.village.substr(0, 6), rng));
    member->set_relation(rng.Below(2) == 0 ? v1::MEMBER_RELATION_CHILD
                                           : v1::MEMBER_RELATION_GRANDCHILD);
    return event;
  }

  Device* device_;
  const CadreWork* work_;
  const std::vector<Household>* households_;
  std::string unit_id_;
};

// ---------------------------------------------------------------- setup

struct AreaRow {
  std::string code;
  std::string parent;
  std::string level;
  std::string name;
};

// The township's row and its ancestors' rows from the areas CSV
// (code,parent,level,name), root first.
absl::StatusOr<std::vector<AreaRow>> AreaChain(const std::string& csv_path,
                                               const std::string& township12) {
  std::ifstream in(csv_path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read the areas CSV ", csv_path));
  std::map<std::string, AreaRow> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::vector<std::string> cells;
    size_t start = 0;
    while (true) {
      size_t comma = line.find(',', start);
      cells.push_back(
          line.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    if (cells.size() < 4 || cells[0] == "code") continue;
    rows[cells[0]] = AreaRow{cells[0], cells[1], cells[2], cells[3]};
  }
  std::vector<AreaRow> chain;
  std::string code = township12;
  while (!code.empty()) {
    auto it = rows.find(code);
    if (it == rows.end()) {
      return absl::NotFoundError(absl::StrCat("area ", code, " is not in ", csv_path));
    }
    chain.push_back(it->second);
    code = it->second.parent;
  }
  if (chain.front().level != "township") {
    return absl::InvalidArgumentError(
        absl::StrCat(township12, " is a ", chain.front().level, ", not a township"));
  }
  std::reverse(chain.begin(), chain.end());
  return chain;
}

struct World {
  std::string township9;
  std::string township_name;
  std::string county6;
  std::vector<std::string> villages;
  std::vector<Household> households;
  std::vector<std::unique_ptr<Device>> cadres;
  std::vector<CadreWork> work;
  std::unique_ptr<Device> township_device;
  uint64_t setup_events = 0;
};

class Setup {
 public:
  Setup(const Flags& flags, const ServerProcess& server)
      : flags_(flags),
        server_(server),
        channel_(OwnChannel(server.address())),
        admin_(v1::AdminService::NewStub(channel_)),
        sync_(v1::SyncService::NewStub(channel_)) {}

  absl::StatusOr<World> Run() {
    World world;
    world.township9 = flags_.township;
    absl::StatusOr<std::vector<AreaRow>> chain =
        AreaChain(flags_.areas_csv, flags_.township + "000");
    if (!chain.ok()) return chain.status();
    world.township_name = chain->back().name;
    world.county6 = flags_.township.substr(0, 6);
    absl::Status s = ImportAreas(*chain, &world);
    if (!s.ok()) return s;
    if (s = Unit(chain->at(chain->size() - 2).code); !s.ok()) return s;
    if (s = Users(&world); !s.ok()) return s;
    if (s = Enroll(&world); !s.ok()) return s;
    if (s = RegisterHouseholds(&world); !s.ok()) return s;
    if (s = Link(&world); !s.ok()) return s;
    if (s = Plans(&world); !s.ok()) return s;
    return world;
  }

 private:
  template <typename Request, typename Response>
  absl::Status Admin(grpc::Status (v1::AdminService::Stub::*rpc)(grpc::ClientContext*,
                                                                 const Request&, Response*),
                     const Request& request, Response* response, const std::string& what) {
    auto context = CallContext(server_.admin_token());
    return FromGrpc((admin_.get()->*rpc)(context.get(), request, response), what);
  }

  absl::Status ImportAreas(const std::vector<AreaRow>& chain, World* world) {
    std::string csv;
    for (const AreaRow& row : chain) {
      absl::StrAppend(&csv, row.code, ",", row.parent, ",", row.level, ",", row.name, "\n");
    }
    const std::string township12 = flags_.township + "000";
    for (int v = 1; v <= flags_.villages; ++v) {
      std::string code = absl::StrFormat("%s%03d", flags_.township, v);
      absl::StrAppend(&csv, code, ",", township12, ",village,", world->township_name, "第", v,
                      "村,1\n");
      world->villages.push_back(std::move(code));
    }
    v1::ImportAreasRequest request;
    request.set_csv(csv);
    v1::ImportAreasResponse response;
    absl::Status s = Admin(&v1::AdminService::Stub::ImportAreas, request, &response, "ImportAreas");
    if (!s.ok()) return s;
    if (response.errors_size() > 0) {
      return absl::InternalError(absl::StrCat("ImportAreas: line ", response.errors(0).line(), ": ",
                                              response.errors(0).message()));
    }
    Progress(absl::StrCat("imported ", chain.size(), " areas (", chain.back().name, " ", township12,
                          ") and ", flags_.villages, " villages"));
    return absl::OkStatus();
  }

  absl::Status Unit(const std::string& county12) {
    v1::UpsertUnitRequest request;
    v1::Unit* unit = request.mutable_unit();
    unit->set_id(kUnitId);
    unit->set_name("縣幫扶工作隊");
    unit->set_level(v1::UNIT_LEVEL_COUNTY);
    unit->set_kind(v1::UNIT_KIND_DEPARTMENT);
    unit->set_area_code(county12);
    v1::UpsertUnitResponse response;
    return Admin(&v1::AdminService::Stub::UpsertUnit, request, &response, "UpsertUnit");
  }

  absl::Status UpsertUser(const v1::User& user) {
    v1::UpsertUserRequest request;
    *request.mutable_user() = user;
    v1::UpsertUserResponse response;
    return Admin(&v1::AdminService::Stub::UpsertUser, request, &response, "UpsertUser");
  }

  absl::Status Users(World* world) {
    v1::User staff;
    staff.set_id(kTownshipUserId);
    staff.set_name("鄉鎮幫扶辦");
    staff.set_role(v1::ROLE_TOWNSHIP_STAFF);
    staff.add_scope_area_codes(flags_.township);
    if (absl::Status s = UpsertUser(staff); !s.ok()) return s;
    world->township_device =
        std::make_unique<Device>(kTownshipUserId, v1::ROLE_TOWNSHIP_STAFF, 0x7057);
    Rng names(42);
    for (int d = 0; d < flags_.devices; ++d) {
      v1::User cadre;
      cadre.set_id(absl::StrFormat("bench-cadre-%02d", d + 1));
      cadre.set_name(PersonName(names));
      cadre.set_role(v1::ROLE_CADRE);
      cadre.set_rank(v1::CADRE_RANK_OTHER);
      cadre.set_unit_id(kUnitId);
      if (absl::Status s = UpsertUser(cadre); !s.ok()) return s;
      world->cadres.push_back(std::make_unique<Device>(cadre.id(), v1::ROLE_CADRE,
                                                       0x5eed0000ULL + static_cast<uint64_t>(d)));
    }
    return absl::OkStatus();
  }

  absl::Status EnrollOne(Device& device) {
    v1::IssueEnrollmentCodeRequest issue;
    issue.set_user_id(device.user_id());
    v1::IssueEnrollmentCodeResponse code;
    absl::Status s =
        Admin(&v1::AdminService::Stub::IssueEnrollmentCode, issue, &code, "IssueEnrollmentCode");
    if (!s.ok()) return s;
    v1::EnrollRequest enroll;
    enroll.set_code(code.code());
    enroll.set_ed25519_public_key(device.public_key());
    enroll.set_device_model("push_bench phone");
    enroll.set_app_version("bench");
    v1::EnrollResponse enrolled;
    auto context = CallContext("");
    s = FromGrpc(sync_->Enroll(context.get(), enroll, &enrolled), "Enroll");
    if (!s.ok()) return s;
    device.Enrolled(enrolled.device_id(), enrolled.token());
    device.Connect(server_.address());
    return absl::OkStatus();
  }

  absl::Status Enroll(World* world) {
    if (absl::Status s = EnrollOne(*world->township_device); !s.ok()) return s;
    for (auto& cadre : world->cadres) {
      if (absl::Status s = EnrollOne(*cadre); !s.ok()) return s;
    }
    Progress(
        absl::StrCat("enrolled ", world->cadres.size(), " cadre devices and 1 township device"));
    return absl::OkStatus();
  }

  // The township device registers every household through Push.
  absl::Status RegisterHouseholds(World* world) {
    Rng rng(2024);
    Device& device = *world->township_device;
    // Village centres spread over the township (around 35.1N 105.1E).
    std::vector<std::pair<double, double>> centres;
    for (int v = 0; v < flags_.villages; ++v) {
      centres.emplace_back(35.05 + 0.1 * rng.Unit(), 105.05 + 0.1 * rng.Unit());
    }
    for (int h = 0; h < flags_.households; ++h) {
      const int v = h % flags_.villages;
      Household household;
      household.id = NewUuid();
      household.village = world->villages[static_cast<size_t>(v)];
      household.number = absl::StrFormat("%s-%04d", household.village, h / flags_.villages + 1);
      const v1::Location home =
          FixNear(centres[static_cast<size_t>(v)].first, centres[static_cast<size_t>(v)].second,
                  800, rng, absl::Now());
      household.lat = home.lat();
      household.lng = home.lng();
      world->households.push_back(std::move(household));
    }
    PushTally tally;
    v1::PushRequest request;
    for (const Household& h : world->households) {
      const absl::Time now = absl::Now();
      v1::Event event = device.NewEvent(v1::SUBJECT_KIND_HOUSEHOLD, h.id, h.village, now);
      v1::HouseholdRegistered* reg = event.mutable_household_registered();
      reg->set_household_number(h.number);
      reg->set_head_name(PersonName(rng));
      reg->set_head_id_number(IdNumber(world->county6, rng));
      v1::Location* home = reg->mutable_location();
      home->set_lat(h.lat);
      home->set_lng(h.lng);
      home->set_accuracy_m(10);
      reg->set_initial_status(v1::HOUSEHOLD_STATUS_IDENTIFIED);
      auto& fields = *reg->mutable_fields();
      fields["attribute"].set_int_value(1 + static_cast<int64_t>(rng.Below(3)));
      fields["main_poverty_cause"].set_int_value(1 + static_cast<int64_t>(rng.Below(12)));
      fields["standard"].set_int_value(v1::POVERTY_STANDARD_NATIONAL);
      fields["identification_year"].set_int_value(2014 + static_cast<int64_t>(rng.Below(10)));
      fields["cultivated_land_area"].set_int_value(100 + static_cast<int64_t>(rng.Below(1500)));
      *request.add_events() = device.Seal(event);
      if (request.events_size() == static_cast<int>(flags_.batch)) {
        if (absl::Status s = PushOnce(device, request, &tally); !s.ok()) return s;
        request.clear_events();
      }
    }
    if (request.events_size() > 0) {
      if (absl::Status s = PushOnce(device, request, &tally); !s.ok()) return s;
    }
    if (tally.accepted != world->households.size()) {
      return absl::InternalError(absl::StrCat(
          "registering ", world->households.size(), " households: ", tally.accepted, " accepted, ",
          tally.rejected, " rejected",
          tally.rejection_samples.empty() ? "" : " (" + tally.rejection_samples[0] + ")"));
    }
    world->setup_events += tally.accepted;
    Progress(absl::StrCat("registered ", world->households.size(), " households in ",
                          flags_.villages, " villages through Push"));
    return absl::OkStatus();
  }

  absl::Status StartLink(const std::string& cadre, v1::SubjectKind kind, const std::string& target,
                         v1::LinkRole role) {
    v1::StartLinkRequest request;
    request.set_cadre_id(cadre);
    request.mutable_target()->set_kind(kind);
    request.mutable_target()->set_id(target);
    request.set_role(role);
    request.set_reason("雙聯幫扶");
    v1::StartLinkResponse response;
    return Admin(&v1::AdminService::Stub::StartLink, request, &response, "StartLink");
  }

  // Cadre d links villages d, d + devices, ...; and helps the first
  // shared_households households of village (d + 1) % devices.
  absl::Status Link(World* world) {
    const int devices = flags_.devices;
    world->work.resize(static_cast<size_t>(devices));
    auto first_of_village = [&](int v) {
      std::vector<int> out;
      for (int h = v;
           h < flags_.households && static_cast<int>(out.size()) < flags_.shared_households;
           h += flags_.villages) {
        out.push_back(h);
      }
      return out;
    };
    int links = 0;
    for (int d = 0; d < devices; ++d) {
      CadreWork& work = world->work[static_cast<size_t>(d)];
      const std::string& cadre = world->cadres[static_cast<size_t>(d)]->user_id();
      for (int v = d; v < flags_.villages; v += devices) {
        const std::string& village = world->villages[static_cast<size_t>(v)];
        work.villages.push_back(village);
        if (absl::Status s =
                StartLink(cadre, v1::SUBJECT_KIND_VILLAGE, village, v1::LINK_ROLE_VILLAGE_CADRE);
            !s.ok()) {
          return s;
        }
        ++links;
        for (int h = v; h < flags_.households; h += flags_.villages) work.own.push_back(h);
      }
      if (devices > 1) {
        for (int h : first_of_village((d + 1) % devices)) {
          if (absl::Status s = StartLink(cadre, v1::SUBJECT_KIND_HOUSEHOLD,
                                         world->households[static_cast<size_t>(h)].id,
                                         v1::LINK_ROLE_HOUSEHOLD_HELPER);
              !s.ok()) {
            return s;
          }
          ++links;
          work.shared.push_back(h);
        }
        // Its own households that the previous cadre helps with.
        for (int h : first_of_village(d)) work.shared.push_back(h);
      }
    }
    Progress(absl::StrCat("started ", links, " links (villages to cadres, shared households)"));
    return absl::OkStatus();
  }

  // Each cadre makes exit plans for some of its households.
  absl::Status Plans(World* world) {
    PushTally tally;
    for (size_t d = 0; d < world->cadres.size(); ++d) {
      Device& device = *world->cadres[d];
      CadreWork& work = world->work[d];
      MixMaker maker(&device, &work, &world->households, kUnitId);
      v1::PushRequest request;
      const size_t plans = std::min<size_t>(work.own.size(), kPlannedHouseholdsPerCadre);
      const size_t step = work.own.size() / plans;
      for (size_t i = 0; i < plans; ++i) {
        const int h = work.own[i * step];
        work.planned.push_back(h);
        *request.add_events() = maker.Plan(world->households[static_cast<size_t>(h)], absl::Now());
      }
      if (absl::Status s = PushOnce(device, request, &tally); !s.ok()) return s;
    }
    if (tally.rejected > 0 || tally.duplicates > 0) {
      return absl::InternalError(absl::StrCat(
          "making plans: ", tally.rejected, " rejected",
          tally.rejection_samples.empty() ? "" : " (" + tally.rejection_samples[0] + ")"));
    }
    world->setup_events += tally.accepted + tally.conflicts;
    Progress(absl::StrCat("made ", tally.accepted + tally.conflicts, " household exit plans"));
    return absl::OkStatus();
  }

  const Flags& flags_;
  const ServerProcess& server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  std::unique_ptr<v1::SyncService::Stub> sync_;
};

// ---------------------------------------------------------------- outboxes and the push phase

// A device's outbox: serialized PushRequests of `batch` events each, with
// consecutive device_seq from first_seq.
struct Outbox {
  std::vector<std::string> batches;
  // Per batch: its visits, field patches and other events.
  std::vector<std::array<uint32_t, 3>> mix;
  uint64_t first_seq = 1;
};

Outbox MakeOutbox(Device& device, const CadreWork& work, const std::vector<Household>& households,
                  size_t batches, size_t batch) {
  Outbox outbox;
  outbox.first_seq = device.next_seq();
  MixMaker maker(&device, &work, &households, kUnitId);
  outbox.batches.reserve(batches);
  for (size_t b = 0; b < batches; ++b) {
    v1::PushRequest request;
    std::array<uint32_t, 3> mix = {0, 0, 0};
    const absl::Time now = absl::Now();
    for (size_t i = 0; i < batch; ++i) {
      int kind = 0;
      *request.add_events() = maker.Next(now, &kind);
      ++mix[static_cast<size_t>(kind)];
    }
    outbox.mix.push_back(mix);
    *request.mutable_device_time() = base::ToTimestamp(now);
    outbox.batches.push_back(request.SerializeAsString());
  }
  return outbox;
}

struct PushPhase {
  uint64_t events = 0;
  uint64_t calls = 0;
  double seconds = 0;
  double events_per_s = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  bool outbox_exhausted = false;
  uint64_t mix[3] = {0, 0, 0};  // Pushed visits, field patches, other events.
  PushTally tally;
};

// Each device pushes its outbox from batch next_batch[d], one call at a time,
// until the deadline. Leaves each device's next_seq after its last pushed
// event and next_batch[d] at the first batch not pushed, for the next phase.
absl::StatusOr<PushPhase> RunPushPhase(World& world, std::vector<Outbox>& outboxes,
                                       std::vector<size_t>& next_batch, double seconds,
                                       size_t batch) {
  const size_t n = world.cadres.size();
  struct PerThread {
    uint64_t events = 0;
    size_t pushed = 0;
    std::vector<double> latencies_ms;
    Clock::time_point last_end;
    PushTally tally;
    absl::Status status;
    bool exhausted = false;
  };
  std::vector<PerThread> per_thread(n);
  std::latch ready(static_cast<std::ptrdiff_t>(n));
  std::latch start_gate(1);
  std::atomic<bool> failed{false};
  Clock::time_point start;
  Clock::time_point deadline;
  std::vector<std::thread> threads;
  for (size_t t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      PerThread& mine = per_thread[t];
      Device& device = *world.cadres[t];
      const Outbox& outbox = outboxes[t];
      mine.latencies_ms.reserve(outbox.batches.size());
      v1::PushRequest request;
      ready.count_down();
      start_gate.wait();
      mine.last_end = start;
      size_t b = next_batch[t];
      for (; b < outbox.batches.size(); ++b) {
        if (failed.load(std::memory_order_relaxed) || Clock::now() >= deadline) break;
        if (!request.ParseFromString(outbox.batches[b])) {
          mine.status = absl::InternalError("cannot parse an outbox batch");
          failed.store(true);
          break;
        }
        const Clock::time_point t0 = Clock::now();
        absl::Status status = PushOnce(device, request, &mine.tally);
        const Clock::time_point t1 = Clock::now();
        if (!status.ok()) {
          mine.status = status;
          failed.store(true);
          break;
        }
        mine.events += batch;
        ++mine.pushed;
        mine.last_end = t1;
        mine.latencies_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      }
      mine.exhausted = b == outbox.batches.size();
    });
  }
  ready.wait();
  start = Clock::now();
  deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  start_gate.count_down();
  for (std::thread& thread : threads) thread.join();

  PushPhase phase;
  std::vector<double> latencies;
  Clock::time_point end = start;
  for (size_t t = 0; t < n; ++t) {
    PerThread& pt = per_thread[t];
    if (!pt.status.ok()) return pt.status;
    phase.events += pt.events;
    phase.tally.Add(pt.tally);
    phase.outbox_exhausted = phase.outbox_exhausted || pt.exhausted;
    end = std::max(end, pt.last_end);
    latencies.insert(latencies.end(), pt.latencies_ms.begin(), pt.latencies_ms.end());
    const size_t from = next_batch[t];
    next_batch[t] += pt.pushed;
    world.cadres[t]->set_next_seq(outboxes[t].first_seq + next_batch[t] * batch);
    for (size_t b = from; b < next_batch[t]; ++b) {
      for (size_t k = 0; k < 3; ++k) phase.mix[k] += outboxes[t].mix[b][k];
    }
  }
  phase.calls = latencies.size();
  phase.seconds = std::chrono::duration<double>(end - start).count();
  phase.events_per_s = phase.seconds > 0 ? static_cast<double>(phase.events) / phase.seconds : 0;
  phase.p50_ms = Percentile(latencies, 0.50);
  phase.p99_ms = Percentile(latencies, 0.99);
  return phase;
}

// ---------------------------------------------------------------- pulls

struct PullRun {
  double ms = 0;
  uint64_t bytes = 0;  // Serialized PullResponse bytes (the gRPC message bodies).
  uint64_t gzip_bytes = 0;  // The same, each page gzipped (as gRPC's gzip would).
  int pages = 0;
  int households = 0;
  int events = 0;
  v1::Checkpoint checkpoint;
};

// Pulls from `cursor` (nullptr: first sync) until the server has nothing
// more, timing the whole exchange.
absl::StatusOr<PullRun> PullAll(Device& device, const v1::Checkpoint* cursor) {
  PullRun run;
  v1::PullRequest request;
  if (cursor != nullptr) *request.mutable_cursor() = *cursor;
  std::vector<v1::PullResponse> pages;  // Compressed after the timed exchange.
  const Clock::time_point t0 = Clock::now();
  while (true) {
    v1::PullResponse response;
    auto context = CallContext(device.token());
    grpc::Status status = device.stub().Pull(context.get(), request, &response);
    if (!status.ok()) return FromGrpc(status, "Pull");
    ++run.pages;
    run.bytes += response.ByteSizeLong();
    v1::PullResponse& page = pages.emplace_back(std::move(response));
    run.households += page.snapshot().households_size();
    run.events += page.events_size();
    run.checkpoint = page.checkpoint();
    if (!page.more()) break;
    if (run.pages > 100000) return absl::InternalError("Pull never reports more=false");
    *request.mutable_cursor() = page.checkpoint();
  }
  run.ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  for (const v1::PullResponse& page : pages) run.gzip_bytes += GzipSize(page.SerializeAsString());
  return run;
}

struct PullFigures {
  int first_pull_households = 0;
  double first_pull_cold_ms = 0;  // The first repetition, on a just-restarted server.
  double first_pull_ms = 0;       // Median of the other repetitions (warm).
  uint64_t first_pull_bytes = 0;
  uint64_t first_pull_gzip_bytes = 0;
  int first_pull_pages = 0;
  int incremental_events = 0;
  double incremental_ms = 0;
};

absl::StatusOr<PullFigures> RunPulls(const Flags& flags, World& world) {
  PullFigures figures;
  Device& township = *world.township_device;
  std::vector<double> first_ms;
  v1::Checkpoint checkpoint;
  for (int r = 0; r < flags.pull_repeats; ++r) {
    absl::StatusOr<PullRun> run = PullAll(township, nullptr);
    if (!run.ok()) return run.status();
    first_ms.push_back(run->ms);
    figures.first_pull_households = run->households;
    figures.first_pull_bytes = run->bytes;
    figures.first_pull_gzip_bytes = run->gzip_bytes;
    figures.first_pull_pages = run->pages;
    checkpoint = run->checkpoint;
  }
  // The caller restarted the server just before: the first repetition runs
  // with a cold block cache (the OS page cache may still hold the files).
  figures.first_pull_cold_ms = first_ms.front();
  figures.first_pull_ms =
      first_ms.size() > 1 ? Median(std::vector<double>(first_ms.begin() + 1, first_ms.end()))
                          : first_ms.front();
  Progress(absl::StrCat("first pull: ", figures.first_pull_households, " households in ",
                        figures.first_pull_pages, " pages, ", figures.first_pull_bytes,
                        " bytes (gzip ", figures.first_pull_gzip_bytes, "), cold ",
                        JsonNumber(figures.first_pull_cold_ms, 1), " ms, warm median ",
                        JsonNumber(figures.first_pull_ms, 1), " ms"));
  if (figures.first_pull_households != flags.households) {
    Progress(absl::StrCat("WARNING: the first pull held ", figures.first_pull_households,
                          " households, expected ", flags.households));
  }

  // Incremental: a cadre pushes new events, the township pulls exactly them.
  Device& cadre = *world.cadres[0];
  MixMaker maker(&cadre, &world.work[0], &world.households, kUnitId);
  std::vector<double> incremental_ms;
  for (int r = 0; r < flags.pull_repeats; ++r) {
    PushTally tally;
    int left = flags.incremental_events;
    while (left > 0) {
      v1::PushRequest request;
      const int n = std::min(left, static_cast<int>(flags.batch));
      for (int i = 0; i < n; ++i) {
        int kind = 0;
        *request.add_events() = maker.Next(absl::Now(), &kind);
      }
      if (absl::Status s = PushOnce(cadre, request, &tally); !s.ok()) return s;
      left -= n;
    }
    if (tally.rejected > 0) {
      Progress(absl::StrCat("WARNING: ", tally.rejected, " rejections in the incremental push"));
    }
    absl::StatusOr<PullRun> run = PullAll(township, &checkpoint);
    if (!run.ok()) return run.status();
    incremental_ms.push_back(run->ms);
    figures.incremental_events = run->events;
    checkpoint = run->checkpoint;
    if (run->events != static_cast<int>(tally.accepted + tally.conflicts)) {
      Progress(absl::StrCat("WARNING: the incremental pull returned ", run->events,
                            " events, expected ", tally.accepted + tally.conflicts));
    }
  }
  figures.incremental_ms = Median(incremental_ms);
  Progress(absl::StrCat("incremental pull of ", figures.incremental_events, " events: median ",
                        JsonNumber(figures.incremental_ms, 2), " ms"));
  return figures;
}

// ---------------------------------------------------------------- main

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::InternalError("cannot write " + path);
  return absl::OkStatus();
}


// ---------------------------------------------------------------- preload

// One preloaded event as the server stores it: a VisitRecorded by one of 1,000
// synthetic devices in a village of Lanzhou's 城关区 (620102: never the
// benchmark's township, so the township's pulls return the same households at
// both sizes while the store, its indexes and the event_id filter are N events
// larger). The signature is random bytes: the store does not check it, and
// nothing reads these records back but a scan.
storage::AppendEntry PreloadEntry(uint64_t i, Rng& rng) {
  v1::StoredEvent stored;
  v1::Event event;
  char id[48];
  const uint64_t r = rng.Next();
  std::snprintf(id, sizeof id, "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-8%03" PRIx64
                "-%012" PRIx64, r >> 32, (r >> 16) & 0xffff, (r >> 4) & 0xfff, r & 0xfff, i);
  event.set_event_id(id);
  const uint64_t device = i % 1000;
  event.set_device_id(absl::StrFormat("preload-%04d", device));
  event.set_device_seq(i / 1000 + 1);
  const int64_t at_ms = 1700000000000LL + static_cast<int64_t>(i) * 7;
  event.set_hlc(static_cast<uint64_t>(at_ms) << 16);
  *event.mutable_device_time() = base::ToTimestamp(absl::FromUnixMillis(at_ms));
  const std::string village =
      absl::StrFormat("620102%03d%03d", 1 + device % 30, 1 + (device / 30) % 30);
  event.mutable_subject()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
  event.mutable_subject()->set_id(absl::StrFormat("%s-%04d", village, 1 + rng.Below(400)));
  event.set_area_code(village);
  v1::VisitRecorded* visit = event.mutable_visit_recorded();
  *visit->mutable_start_time() = base::ToTimestamp(absl::FromUnixMillis(at_ms - 3600000));
  *visit->mutable_end_time() = base::ToTimestamp(absl::FromUnixMillis(at_ms - 600000));
  visit->set_purpose(static_cast<v1::VisitPurpose>(1 + rng.Below(7)));
  visit->set_notes(kVisitNotes[rng.Below(std::size(kVisitNotes))]);
  std::string signature(64, '\0');
  for (size_t w = 0; w < signature.size(); w += 8) {
    const uint64_t word = rng.Next();
    std::memcpy(signature.data() + w, &word, 8);
  }
  // Stored as a device's bytes would be: the event encoded once, verbatim.
  stored.set_event(sync::DeterministicBytes(event));
  stored.set_signature(signature);
  *stored.mutable_received_at() = base::ToTimestamp(absl::FromUnixMillis(at_ms + 1000));
  stored.set_actor(absl::StrFormat("preload-user-%04d", device));
  stored.set_adopted_hlc(event.hlc());
  return sync::ToAppendEntry(stored, event);
}

// Appends `n` preload events to the store at `data_dir` (before fieldsyncd
// opens it): the store's own Append, default StoreOptions (fieldsyncd's
// defaults), 10,000 events a call from 2 threads, so groups are large and no
// gRPC, signature or merge runs.
absl::Status Preload(const std::string& data_dir, uint64_t n) {
  absl::StatusOr<std::unique_ptr<storage::EventStore>> store =
      storage::OpenEventStore(data_dir, storage::StoreOptions());
  if (!store.ok()) return store.status();
  constexpr uint64_t kChunk = 10000;
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  absl::Status failure;
  absl::Mutex failure_mu;
  const Clock::time_point t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      Rng rng(0x9e1f00d + static_cast<uint64_t>(t));
      while (!failed.load()) {
        const uint64_t from = next.fetch_add(kChunk);
        if (from >= n) break;
        const uint64_t to = std::min(n, from + kChunk);
        std::vector<storage::AppendEntry> entries;
        entries.reserve(to - from);
        for (uint64_t i = from; i < to; ++i) entries.push_back(PreloadEntry(i, rng));
        absl::StatusOr<std::vector<storage::AppendResult>> r = (*store)->Append(std::move(entries));
        if (!r.ok()) {
          absl::MutexLock lock(&failure_mu);
          failure = r.status();
          failed.store(true);
          break;
        }
        if (from / kChunk % 100 == 0 && from > 0) {
          const double s = std::chrono::duration<double>(Clock::now() - t0).count();
          Progress(absl::StrCat("  preloaded ", from, " events in ", JsonNumber(s, 0), " s"));
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  if (!failure.ok()) return failure;
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  Progress(absl::StrCat("preload: ", n, " events in ", JsonNumber(s, 1), " s (",
                        JsonNumber(static_cast<double>(n) / std::max(s, 1e-9), 0),
                        " events/s), head ", (*store)->Head()));
  store->reset();
  return absl::OkStatus();
}

// ---------------------------------------------------------------- one world

// What one world (a fresh server, optionally preloaded) measured.
struct WorldFigures {
  uint64_t preload = 0;
  double preload_seconds = 0;
  double preload_settle_seconds = 0;  // -1: not settled (--preload_settle=0).
  // Per pair (raw ceiling, then push).
  std::vector<PhaseResult> raw;
  std::vector<PushPhase> push;
  std::vector<double> ratios;
  std::vector<CpuUse> cpu;
  std::vector<double> load_averages;
  // Medians over the pairs.
  double push_events_per_s = 0;
  double raw_events_per_s = 0;
  double ratio = 0;
  double cpu_us_per_event = 0;
  std::map<std::string, double> stage_us_per_event;
  std::map<std::string, double> pool_us_per_event;
  double rss_mib = 0;
  double rss_peak_mib = 0;
  double rss_after_restart_mib = 0;
  PullFigures pulls;
  PushTally tally;
  uint64_t mix[3] = {0, 0, 0};
  uint64_t events = 0;
  uint64_t calls = 0;
  bool outbox_exhausted = false;
  double verify_us = 0;
};

// The server's config: defaults, but the per-device rate limit is raised so
// that it never throttles a device pushing as fast as it can (the limiter
// still runs on every call), and the Enroll rate limit so that every bench
// device enrolls from 127.0.0.1 in the setup phase.
constexpr char kServerConfig[] =
    "# push_bench: fieldsyncd defaults, except the per-device and Enroll rate limits.\n"
    "limits {\n"
    "  device_requests_per_second: 1000000\n"
    "  device_request_burst: 1000000\n"
    "}\n"
    "auth {\n"
    "  enroll_per_peer_per_minute: 1000000\n"
    "  enroll_per_minute: 1000000\n"
    "}\n";

absl::StatusOr<WorldFigures> RunWorld(const Flags& flags, uint64_t preload) {
  WorldFigures fig;
  fig.preload = preload;
  absl::StatusOr<TempDir> dir = TempDir::Make(flags.dir, "push");
  if (!dir.ok()) return dir.status();
  const std::string config_path = dir->path() + "/fieldsyncd.textproto";
  const std::string data_dir = dir->path() + "/data";
  const std::string log_path = dir->path() + "/fieldsyncd.log";
  if (absl::Status s = WriteFile(config_path, kServerConfig); !s.ok()) return s;
  if (preload > 0) {
    Progress(absl::StrCat("preloading ", preload, " events into ", data_dir, "..."));
    const Clock::time_point t0 = Clock::now();
    if (absl::Status s = Preload(data_dir, preload); !s.ok()) return s;
    fig.preload_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    fig.preload_settle_seconds = -1;
    if (flags.preload_settle == 1) {
      Progress("settling the preload's compactions...");
      absl::StatusOr<double> settled =
          SettleCompactions(data_dir, storage::StoreOptions(), std::chrono::seconds(3600));
      if (!settled.ok()) return settled.status();
      fig.preload_settle_seconds = *settled;
      Progress(absl::StrCat("settled in ", JsonNumber(*settled, 1), " s"));
    }
  }
  const std::vector<std::string> args = {"--config=" + config_path, "--data_dir=" + data_dir,
                                         "--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0"};
  Progress(absl::StrCat("starting ", flags.fieldsyncd, " in ", dir->path()));
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(flags.fieldsyncd, args, log_path);
  if (!server.ok()) return server.status();
  Progress(absl::StrCat("fieldsyncd pid ", (*server)->pid(), " listening on ", (*server)->address(),
                        ", log ", (*server)->log_path()));
  // From here on a failure also shows the end of the server's log.
  auto with_log = [&](const absl::Status& status) {
    return absl::Status(status.code(),
                        absl::StrCat(status.message(), "\npush_bench: the end of fieldsyncd's log:\n",
                                     (*server)->LogTail()));
  };
  Setup setup(flags, **server);
  absl::StatusOr<World> built = setup.Run();
  if (!built.ok()) return with_log(built.status());
  World& world = *built;

  // Outboxes, sized for up to --outbox_events_per_s over --seconds for each
  // of the --pairs push phases: each device signs its own in parallel.
  const double total_events = flags.outbox_events_per_s * flags.seconds * flags.pairs;
  const size_t batches_per_device = std::max<size_t>(
      4, static_cast<size_t>(std::ceil(total_events / static_cast<double>(flags.devices) /
                                       static_cast<double>(flags.batch))));
  Progress(absl::StrCat("signing outboxes: ", flags.devices, " devices x ", batches_per_device,
                        " batches of ", flags.batch, " events"));
  std::vector<Outbox> outboxes(world.cadres.size());
  {
    std::vector<std::thread> makers;
    for (size_t d = 0; d < world.cadres.size(); ++d) {
      makers.emplace_back([&, d] {
        outboxes[d] = MakeOutbox(*world.cadres[d], world.work[d], world.households,
                                 batches_per_device, flags.batch);
      });
    }
    for (std::thread& t : makers) t.join();
  }
  {
    // Ed25519 verification of one outbox event, as the server does it.
    v1::PushRequest first;
    if (first.ParseFromString(outboxes[0].batches[0]) && first.events_size() > 0) {
      // The server verifies the event bytes as received.
      fig.verify_us = VerifyMicros(first.events(0).event());
    }
  }

  // Pairs: the raw ceiling, then the push phase, --pairs times, alternating,
  // so that what else the machine does weighs on both alike.
  std::vector<size_t> next_batch(world.cadres.size(), 0);
  PhaseOptions raw_options;
  raw_options.seconds = flags.seconds;
  raw_options.threads = flags.devices;
  raw_options.batch = flags.batch;
  raw_options.event_bytes = flags.event_bytes;
  for (int pair = 0; pair < flags.pairs; ++pair) {
    raw_options.seed = 1 + static_cast<uint64_t>(pair);
    Progress(absl::StrCat("pair ", pair + 1, "/", flags.pairs, ": raw rocksdb ceiling, ",
                          flags.devices, " threads, batches of ", flags.batch, ", ",
                          JsonNumber(flags.seconds, 1), " s (load average ", LoadAverage(), ")..."));
    absl::StatusOr<PhaseResult> raw = RunRawRocksDbBaseline(raw_options, flags.dir);
    if (!raw.ok()) return raw.status();
    Progress(absl::StrCat("  raw ", JsonNumber(raw->events_per_s, 0), " events/s (p50 ",
                          JsonNumber(raw->p50_ms, 2), " ms, p99 ", JsonNumber(raw->p99_ms, 2),
                          " ms); push..."));
    const CpuSnapshot before = ReadCpu((*server)->pid());
    absl::StatusOr<PushPhase> push =
        RunPushPhase(world, outboxes, next_batch, flags.seconds, flags.batch);
    const CpuSnapshot after = ReadCpu((*server)->pid());
    if (!push.ok()) return with_log(push.status());
    fig.load_averages.push_back(std::strtod(LoadAverage().c_str(), nullptr));
    const double ratio = raw->events_per_s > 0 ? push->events_per_s / raw->events_per_s : NAN;
    const CpuUse cpu = CpuBetween(before, after);
    const double us_per_event =
        push->events > 0 ? cpu.process_s * 1e6 / static_cast<double>(push->events) : NAN;
    Progress(absl::StrCat("  fieldsync ", JsonNumber(push->events_per_s, 0), " events/s (p50 ",
                          JsonNumber(push->p50_ms, 2), " ms, p99 ", JsonNumber(push->p99_ms, 2),
                          " ms); ", push->tally.accepted, " accepted, ", push->tally.conflicts,
                          " conflicts, ", push->tally.rejected, " rejected, ",
                          push->tally.duplicates, " duplicates; ratio ", JsonNumber(ratio, 3),
                          "; server CPU ", JsonNumber(us_per_event, 1), " us/event"));
    for (const std::string& sample : push->tally.rejection_samples) {
      Progress("REJECTED (the bench built a bad event): " + sample);
    }
    if (push->outbox_exhausted) {
      Progress(absl::StrCat("note: a device emptied its outbox after ",
                            JsonNumber(push->seconds, 2),
                            " s, before --seconds; the figures cover that window (raise "
                            "--outbox_events_per_s for a longer one)"));
    }
    fig.raw.push_back(*raw);
    fig.ratios.push_back(ratio);
    fig.cpu.push_back(cpu);
    fig.tally.Add(push->tally);
    for (size_t k = 0; k < 3; ++k) fig.mix[k] += push->mix[k];
    fig.events += push->events;
    fig.calls += push->calls;
    fig.outbox_exhausted = fig.outbox_exhausted || push->outbox_exhausted;
    fig.push.push_back(std::move(*push));
  }
  outboxes.clear();
  std::tie(fig.rss_mib, fig.rss_peak_mib) = RssMiB((*server)->pid());

  auto median_of = [](const auto& values, auto get) {
    std::vector<double> v;
    for (const auto& x : values) v.push_back(get(x));
    return Median(std::move(v));
  };
  fig.push_events_per_s = median_of(fig.push, [](const PushPhase& p) { return p.events_per_s; });
  fig.raw_events_per_s = median_of(fig.raw, [](const PhaseResult& p) { return p.events_per_s; });
  fig.ratio = Median(fig.ratios);
  std::vector<double> per_event;
  std::map<std::string, std::vector<double>> stages;
  std::map<std::string, std::vector<double>> pools;
  for (size_t i = 0; i < fig.cpu.size(); ++i) {
    const double events = static_cast<double>(fig.push[i].events);
    if (events <= 0) continue;
    per_event.push_back(fig.cpu[i].process_s * 1e6 / events);
    for (const auto& [stage, sec] : fig.cpu[i].by_stage) stages[stage].push_back(sec * 1e6 / events);
    for (const auto& [pool, sec] : fig.cpu[i].by_pool) pools[pool].push_back(sec * 1e6 / events);
  }
  fig.cpu_us_per_event = Median(per_event);
  for (auto& [stage, v] : stages) fig.stage_us_per_event[stage] = Median(v);
  for (auto& [pool, v] : pools) fig.pool_us_per_event[pool] = Median(v);

  // Pulls with a cold block cache: restart the server on the same data dir.
  Progress("restarting fieldsyncd for the pulls (cold block cache)...");
  if (absl::Status s = (*server)->Stop(absl::Seconds(60)); !s.ok()) {
    Progress("WARNING: " + s.ToString());
  }
  server->reset();
  server = ServerProcess::Start(flags.fieldsyncd, args, log_path, /*first_start=*/false);
  if (!server.ok()) return server.status();
  world.township_device->Connect((*server)->address());
  for (auto& cadre : world.cadres) cadre->Connect((*server)->address());
  fig.rss_after_restart_mib = RssMiB((*server)->pid()).first;
  absl::StatusOr<PullFigures> pulls = RunPulls(flags, world);
  if (!pulls.ok()) return with_log(pulls.status());
  fig.pulls = *pulls;
  if (absl::Status s = (*server)->Stop(absl::Seconds(60)); !s.ok()) {
    Progress("WARNING: " + s.ToString());
  }
  return fig;
}

std::string MapJson(const std::map<std::string, double>& m, int decimals) {
  std::string out = "{";
  for (const auto& [k, v] : m) {
    absl::StrAppend(&out, out.size() > 1 ? "," : "", "\"", k, "\":", JsonNumber(v, decimals));
  }
  return out + "}";
}

template <typename Get>
double median_of_push(const WorldFigures& f, Get get) {
  std::vector<double> v;
  for (const PushPhase& p : f.push) v.push_back(get(p));
  return Median(std::move(v));
}

// The figures of one world as JSON members (no braces).
std::string WorldJson(const Flags& flags, const WorldFigures& f) {
  const double households = std::max(1, f.pulls.first_pull_households);
  std::string pairs = "[";
  for (size_t i = 0; i < f.push.size(); ++i) {
    const double events = static_cast<double>(f.push[i].events);
    absl::StrAppend(&pairs, i ? "," : "", "{\"raw_rocksdb_events_per_s\":",
                    JsonNumber(f.raw[i].events_per_s, 1),
                    ",\"fieldsync_events_per_s\":", JsonNumber(f.push[i].events_per_s, 1),
                    ",\"ratio\":", JsonNumber(f.ratios[i], 3), ",\"cpu_us_per_event\":",
                    JsonNumber(events > 0 ? f.cpu[i].process_s * 1e6 / events : NAN, 1),
                    ",\"load_average\":", JsonNumber(f.load_averages[i], 2), "}");
  }
  pairs += "]";
  double p50 = median_of_push(f, [](const PushPhase& p) { return p.p50_ms; });
  double p99 = median_of_push(f, [](const PushPhase& p) { return p.p99_ms; });
  return absl::StrCat(
      "\"preload\":", f.preload, ",\"preload_seconds\":", JsonNumber(f.preload_seconds, 1),
      ",\"preload_settle_seconds\":", JsonNumber(f.preload_settle_seconds, 1),
      ",\"fieldsync_events_per_s\":", JsonNumber(f.push_events_per_s, 1),
      ",\"raw_rocksdb_events_per_s\":", JsonNumber(f.raw_events_per_s, 1),
      ",\"ratio\":", JsonNumber(f.ratio, 3), ",\"p50_batch_ms\":", JsonNumber(p50, 3),
      ",\"p99_batch_ms\":", JsonNumber(p99, 3), ",\"pairs\":", pairs,
      ",\"cpu_us_per_event\":", JsonNumber(f.cpu_us_per_event, 1),
      ",\"cpu_us_per_event_by_stage\":", MapJson(f.stage_us_per_event, 1),
      ",\"cpu_us_per_event_by_thread\":", MapJson(f.pool_us_per_event, 1),
      ",\"ed25519_verify_us_in_bench\":", JsonNumber(f.verify_us, 1),
      ",\"server_rss_mib\":", JsonNumber(f.rss_mib, 1),
      ",\"server_rss_peak_mib\":", JsonNumber(f.rss_peak_mib, 1),
      ",\"server_rss_after_restart_mib\":", JsonNumber(f.rss_after_restart_mib, 1),
      ",\"events_pushed\":", f.events, ",\"push_calls\":", f.calls,
      ",\"accepted\":", f.tally.accepted, ",\"rejections\":", f.tally.rejected,
      ",\"conflicts\":", f.tally.conflicts, ",\"duplicates\":", f.tally.duplicates,
      ",\"mix\":{\"visits\":", f.mix[0], ",\"field_patches\":", f.mix[1], ",\"other\":", f.mix[2],
      "}", ",\"outbox_exhausted\":", f.outbox_exhausted ? "true" : "false",
      ",\"first_pull_township_households\":", f.pulls.first_pull_households,
      ",\"first_pull_cold_ms\":", JsonNumber(f.pulls.first_pull_cold_ms, 2),
      ",\"first_pull_ms\":", JsonNumber(f.pulls.first_pull_ms, 2),
      ",\"first_pull_bytes\":", f.pulls.first_pull_bytes,
      ",\"first_pull_gzip_bytes\":", f.pulls.first_pull_gzip_bytes,
      ",\"first_pull_bytes_per_household\":",
      JsonNumber(static_cast<double>(f.pulls.first_pull_bytes) / households, 1),
      ",\"first_pull_gzip_bytes_per_household\":",
      JsonNumber(static_cast<double>(f.pulls.first_pull_gzip_bytes) / households, 1),
      ",\"first_pull_pages\":", f.pulls.first_pull_pages,
      ",\"incremental_pull_events\":", f.pulls.incremental_events,
      ",\"incremental_pull_ms\":", JsonNumber(f.pulls.incremental_ms, 3),
      ",\"pull_repeats\":", flags.pull_repeats);
}

int Main(int argc, char** argv) {
  absl::StatusOr<Flags> parsed = ParseFlags(argc, argv);
  if (!parsed.ok()) {
    if (!absl::IsCancelled(parsed.status())) {
      std::fprintf(stderr, "push_bench: %s\n", std::string(parsed.status().message()).c_str());
    }
    std::fputs(kUsage, stderr);
    return absl::IsCancelled(parsed.status()) ? 0 : 2;
  }
  Flags flags = *parsed;
  if (flags.dir.empty()) flags.dir = DefaultTempParent();
  if (sodium_init() < 0) {
    Progress("sodium_init failed");
    return 1;
  }
  auto fail = [](const absl::Status& status) {
    std::fprintf(stderr, "push_bench: %s\n", status.ToString().c_str());
    return 1;
  };
  absl::StatusOr<WorldFigures> empty = RunWorld(flags, 0);
  if (!empty.ok()) return fail(empty.status());
  std::optional<WorldFigures> loaded;
  if (flags.preload > 0) {
    absl::StatusOr<WorldFigures> run = RunWorld(flags, flags.preload);
    if (!run.ok()) return fail(run.status());
    loaded = std::move(*run);
  }

  const bool met = std::isfinite(empty->ratio) && empty->ratio >= kGoalMinRatio;
  const double households = std::max(1, empty->pulls.first_pull_households);
  const double gzip_per_household =
      static_cast<double>(empty->pulls.first_pull_gzip_bytes) / households;
  std::string goals = absl::StrCat(
      "{\"min_ratio\":", JsonNumber(kGoalMinRatio, 1), ",\"met\":", met ? "true" : "false",
      ",\"max_gzip_bytes_per_household\":", JsonNumber(kGoalGzipBytesPerHousehold, 0),
      ",\"gzip_bytes_per_household_met\":",
      gzip_per_household <= kGoalGzipBytesPerHousehold ? "true" : "false");
  std::string preload_json;
  if (loaded) {
    const double vs_empty = empty->push_events_per_s > 0
                                ? loaded->push_events_per_s / empty->push_events_per_s
                                : NAN;
    absl::StrAppend(&goals, ",\"preload_min_vs_empty\":", JsonNumber(kGoalPreloadVsEmpty, 1),
                    ",\"preload_vs_empty\":", JsonNumber(vs_empty, 3),
                    ",\"preload_met\":", vs_empty >= kGoalPreloadVsEmpty ? "true" : "false",
                    ",\"max_rss_mib\":", JsonNumber(kGoalMaxRssMiB, 0),
                    ",\"rss_met\":", loaded->rss_peak_mib < kGoalMaxRssMiB ? "true" : "false");
    preload_json = absl::StrCat(",\"preloaded\":{", WorldJson(flags, *loaded),
                                ",\"throughput_vs_empty\":", JsonNumber(vs_empty, 3), "}");
  }
  absl::StrAppend(&goals, "}");
  std::string json = absl::StrCat(
      "{\"benchmark\":\"push_e2e\",\"devices\":", flags.devices, ",\"batch\":", flags.batch,
      ",\"seconds\":", JsonNumber(flags.seconds, 2), ",\"load_average\":", LoadAverage(), ",",
      WorldJson(flags, *empty), ",\"goal\":", goals, preload_json, "}");
  std::printf("%s\n", json.c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace fieldsync::bench

int main(int argc, char** argv) { return fieldsync::bench::Main(argc, argv); }
