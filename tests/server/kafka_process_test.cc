// The Kafka export of the real fieldsyncd process: a SIGKILL in the middle of
// an export and a restart lose no event and repeat only what was in flight
// (offsets above the cursor the store held at the kill); kcat, a Kafka client
// we did not write, reads the topic that mock_kafka (tests/tools) serves and
// finds every event of the log.
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "fieldsync/v1/sync_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/kafka_exporter.h"
#include "storage/event_store.h"
#include "sync/event_codec.h"
#include "tests/server/server_process.h"
#include "tests/server/service_harness.h"
#include "tests/tools/mock_cluster.h"

namespace fieldsync::testing {
namespace {

constexpr char kTopic[] = "fieldsync.events";
constexpr char kAreas[] =
    "code,parent,level,name\n"
    "620000000000,,province,甘肃省\n"
    "620100000000,620000000000,city,兰州市\n"
    "620102000000,620100000000,county,城关区\n"
    "620103000000,620100000000,county,七里河区\n"
    "620102001000,620102000000,township,甲乡\n"
    "620103001000,620103000000,township,丙乡\n"
    "620102001001,620102001000,village,一村\n"
    "620103001001,620103001000,village,四村\n";

double MetricValue(const std::string& page, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(page, '\n')) {
    if (!absl::StartsWith(line, absl::StrCat(name, " "))) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(name.size() + 1), &value)) return value;
  }
  return -1;
}

// Users and devices of two counties on a running fieldsyncd.
class World {
 public:
  absl::Status Build(const ServerProcess& server) {
    admin_ = *server.first_admin_token();
    channel_ = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
    auto admin = v1::AdminService::NewStub(channel_);
    v1::ImportAreasRequest areas;
    areas.set_csv(kAreas);
    v1::ImportAreasResponse imported;
    auto context = ServiceHarness::Context(admin_);
    grpc::Status status = admin->ImportAreas(context.get(), areas, &imported);
    if (!status.ok()) return FromGrpc(status);
    for (auto [id, area, device] : {std::tuple{"town1", "620102001", &a_},
                                    std::tuple{"town2", "620103001", &b_}}) {
      v1::User user;
      user.set_id(id);
      user.set_name(id);
      user.set_role(v1::ROLE_TOWNSHIP_STAFF);
      user.add_scope_area_codes(area);
      auto upserted = UpsertUser(*channel_, admin_, user);
      if (!upserted.ok()) return upserted.status();
      *device = std::make_unique<TestDevice>([] { return absl::Now(); });
      if (absl::Status enrolled = (*device)->Enroll(*channel_, admin_, id); !enrolled.ok()) {
        return enrolled;
      }
    }
    return absl::OkStatus();
  }

  // Reconnects after a restart of the server (same store, same devices).
  void Reconnect(const ServerProcess& server) {
    channel_ = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  }

  // `n` registrations, alternating between the two counties, in pushes of
  // at most 250 events.
  absl::Status Push(int n) {
    auto sync = v1::SyncService::NewStub(channel_);
    for (int start = 0; start < n; start += 250) {
      v1::PushRequest to_a, to_b;
      for (int i = start; i < std::min(n, start + 250); ++i) {
        const std::string number = absl::StrCat("P-", next_++);
        if (i % 2 == 0) {
          *to_a.add_events() = SealForPush(a_->Register(RandomUuid(), "620102001001", number));
        } else {
          *to_b.add_events() = SealForPush(b_->Register(RandomUuid(), "620103001001", number));
        }
      }
      for (auto [request, device] : {std::pair{&to_a, a_.get()}, std::pair{&to_b, b_.get()}}) {
        if (request->events_size() == 0) continue;
        v1::PushResponse response;
        auto context = ServiceHarness::Context(device->token());
        grpc::Status status = sync->Push(context.get(), *request, &response);
        if (!status.ok()) return FromGrpc(status);
        for (const v1::PushResult& result : response.results()) {
          if (!result.has_accepted()) {
            return absl::InternalError(absl::StrCat("not accepted: ", result.ShortDebugString()));
          }
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  std::string admin_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<TestDevice> a_, b_;
  int next_ = 0;
};

// Scrapes /metrics until `done(page)` or 60 s; returns the last page.
std::string WaitForMetrics(int port, const std::function<bool(const std::string&)>& done) {
  httplib::Client client("127.0.0.1", port);
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  std::string page;
  while (absl::Now() < deadline) {
    if (auto response = client.Get("/metrics"); response && response->status == 200) {
      page = response->body;
      if (done(page)) return page;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  ADD_FAILURE() << "metrics condition not met within 60 s; last page:\n" << page;
  return page;
}

std::string WriteConfig(const std::filesystem::path& dir, const std::string& brokers,
                        const std::string& extra) {
  const std::string path = (dir / "fieldsyncd.textproto").string();
  std::ofstream out(path);
  out << "limits { device_requests_per_second: 10000 device_request_burst: 10000 }\n"
      << "kafka {\n  brokers: \"" << brokers << "\"\n  topic: \"" << kTopic << "\"\n"
      << "  cursor_interval_ms: 20\n"
      << extra << "}\n";
  return path;
}

// The events of the store in `dir` (markers left out): offset -> payload;
// and the head.
std::map<uint64_t, std::string> LoggedEvents(const std::filesystem::path& dir, uint64_t* head,
                                             std::optional<uint64_t>* cursor = nullptr) {
  std::map<uint64_t, std::string> out;
  auto store = storage::OpenEventStore(dir.string());
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return out;
  *head = (*store)->Head();
  if (cursor != nullptr) {
    auto read = (*store)->GetCursor(server::KafkaCursorName(kTopic));
    EXPECT_TRUE(read.ok()) << read.status();
    if (read.ok()) *cursor = *read;
  }
  uint64_t after = 0;
  while (true) {
    auto records = (*store)->ReadAfter(after, storage::ReadLimits{});
    if (!records.ok() || records->empty()) break;
    for (const storage::LogRecord& record : *records) {
      after = record.offset;
      auto stored = sync::DecodeRecord(record);
      if (stored.ok() && !stored->is_marker()) out[record.offset] = record.payload;
    }
  }
  return out;
}

TEST(KafkaProcessTest, SigkillMidExportLosesNothingAndRepeatsOnlyWhatWasInFlight) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / absl::StrCat("kafka_sigkill_", getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto cluster = MockKafkaCluster::Start(3, kTopic, 4);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  // Slow brokers and small batches: the export of 2,000 events takes
  // seconds, so the kill lands in the middle of it.
  (*cluster)->SetRoundTrip(absl::Milliseconds(40));
  const std::string config = WriteConfig(dir, (*cluster)->bootstrap_servers(),
                                         "  properties { key: \"batch.num.messages\" value: \"20\" }\n");
  const std::vector<std::string> args = {"--data_dir=" + (dir / "data").string(),
                                         "--config=" + config};
  auto server = ServerProcess::Start(FIELDSYNCD_PATH, args);
  ASSERT_TRUE(server.ok()) << server.status();
  World world;
  ASSERT_TRUE(world.Build(*server).ok());
  ASSERT_TRUE(world.Push(2000).ok());

  // Killed once part of the log is delivered and part is not.
  WaitForMetrics(server->metrics_port(), [](const std::string& page) {
    return MetricValue(page, "fieldsync_kafka_exported_offset") > 0 &&
           MetricValue(page, "fieldsync_kafka_lag_events") > 100;
  });
  server->StopWith(SIGKILL);

  uint64_t head_at_kill = 0;
  std::optional<uint64_t> cursor_at_kill;
  LoggedEvents(dir / "data", &head_at_kill, &cursor_at_kill);
  ASSERT_TRUE(cursor_at_kill.has_value()) << "no exported offset was written before the kill";
  ASSERT_LT(*cursor_at_kill, head_at_kill) << "the kill came after the export had finished";

  (*cluster)->SetRoundTrip(absl::ZeroDuration());
  auto restarted = ServerProcess::Start(FIELDSYNCD_PATH, args);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  world.Reconnect(*restarted);
  ASSERT_TRUE(world.Push(100).ok());
  WaitForMetrics(restarted->metrics_port(), [](const std::string& page) {
    return MetricValue(page, "fieldsync_kafka_exported_offset") >=
           MetricValue(page, "fieldsync_log_head_offset");
  });
  int exit = restarted->StopWith(SIGTERM);
  EXPECT_TRUE(WIFEXITED(exit) && WEXITSTATUS(exit) == 0) << "wait status " << exit;

  uint64_t head = 0;
  const std::map<uint64_t, std::string> logged = LoggedEvents(dir / "data", &head);
  auto messages = ReadTopic((*cluster)->bootstrap_servers(), kTopic);
  ASSERT_TRUE(messages.ok()) << messages.status();
  std::map<uint64_t, int> arrivals;
  std::map<int32_t, std::pair<std::set<uint64_t>, uint64_t>> seen_by_partition;
  for (const KafkaMessage& m : *messages) {
    uint64_t offset = 0;
    ASSERT_TRUE(absl::SimpleAtoi(m.headers.at(server::kOffsetHeader), &offset));
    ++arrivals[offset];
    ASSERT_TRUE(logged.contains(offset)) << offset;
    EXPECT_EQ(m.value, logged.at(offset));
    // In log order per key, once repeats are dropped.
    auto& [seen, last] = seen_by_partition[m.partition];
    if (seen.insert(offset).second) {
      EXPECT_GT(offset, last) << "partition " << m.partition;
      last = offset;
    }
  }
  for (const auto& [offset, payload] : logged) {
    EXPECT_TRUE(arrivals.contains(offset)) << "event " << offset << " lost";
  }
  int repeated = 0;
  for (const auto& [offset, count] : arrivals) {
    if (offset <= *cursor_at_kill) {
      EXPECT_EQ(count, 1) << "offset " << offset << " was exported before the kill and sent again";
    } else {
      EXPECT_LE(count, 2) << "offset " << offset;
      repeated += count - 1;
    }
  }
  std::cerr << "events " << logged.size() << ", cursor at kill " << *cursor_at_kill
            << " of head " << head_at_kill << ", re-sent after the restart " << repeated << "\n";
  std::filesystem::remove_all(dir);
}

// mock_kafka as a process: its first stdout line is the bootstrap list.
struct MockKafkaProcess {
  pid_t pid = -1;
  std::string bootstraps;
  ~MockKafkaProcess() {
    if (pid > 0) {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  }
};

absl::Status StartMockKafka(MockKafkaProcess* process) {
  int out[2];
  if (pipe(out) != 0) return absl::InternalError("pipe");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execl(MOCK_KAFKA_PATH, MOCK_KAFKA_PATH, "--partitions=3", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  process->pid = pid;
  FILE* stream = fdopen(out[0], "r");
  char line[4096];
  const bool read = fgets(line, sizeof(line), stream) != nullptr;
  fclose(stream);
  if (!read) return absl::InternalError("mock_kafka printed nothing");
  process->bootstraps = std::string(absl::StripTrailingAsciiWhitespace(line));
  return absl::OkStatus();
}

TEST(KafkaProcessTest, KcatReadsAsManyEventsFromTheTopicAsTheLogHolds) {
  if (access("/usr/bin/kcat", X_OK) != 0) {
    GTEST_SKIP() << "kcat is not installed (deploy/install-deps.sh installs it)";
  }
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / absl::StrCat("kafka_kcat_", getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  MockKafkaProcess mock;
  ASSERT_TRUE(StartMockKafka(&mock).ok());
  ASSERT_FALSE(mock.bootstraps.empty());
  const std::string config = WriteConfig(dir, mock.bootstraps, "");
  auto server = ServerProcess::Start(FIELDSYNCD_PATH, {"--data_dir=" + (dir / "data").string(),
                                                       "--config=" + config});
  ASSERT_TRUE(server.ok()) << server.status();
  World world;
  ASSERT_TRUE(world.Build(*server).ok());
  ASSERT_TRUE(world.Push(300).ok());
  WaitForMetrics(server->metrics_port(), [](const std::string& page) {
    return MetricValue(page, "fieldsync_kafka_exported_offset") >=
           MetricValue(page, "fieldsync_log_head_offset");
  });
  server->StopWith(SIGTERM);

  uint64_t head = 0;
  const std::map<uint64_t, std::string> logged = LoggedEvents(dir / "data", &head);
  // -e: exit at the end of every partition; -q: no informational lines.
  const std::string command = absl::StrCat("/usr/bin/kcat -C -q -e -b ", mock.bootstraps, " -t ",
                                           kTopic, " -f '%k %h\\n' 2>&1");
  FILE* kcat = popen(command.c_str(), "r");
  ASSERT_NE(kcat, nullptr);
  std::vector<std::string> lines;
  char line[8192];
  while (fgets(line, sizeof(line), kcat) != nullptr) {
    lines.emplace_back(absl::StripTrailingAsciiWhitespace(line));
  }
  EXPECT_EQ(pclose(kcat), 0);
  EXPECT_EQ(lines.size(), logged.size()) << "kcat read " << lines.size() << " messages";
  std::set<uint64_t> offsets;
  const std::string prefix = absl::StrCat(server::kOffsetHeader, "=");
  for (const std::string& l : lines) {
    // "<county> fieldsync-offset=N,fieldsync-hash=...,fieldsync-prev-hash=..."
    const size_t at = l.find(prefix);
    ASSERT_NE(at, std::string::npos) << l;
    uint64_t offset = 0;
    ASSERT_TRUE(absl::SimpleAtoi(l.substr(at + prefix.size(), l.find(',', at) - at - prefix.size()),
                                 &offset))
        << l;
    offsets.insert(offset);
    // The key: a county code, or empty for an event without an area code.
    const std::string key = l.substr(0, l.find(' '));
    EXPECT_TRUE(key.empty() || (key.size() == 6 && absl::ascii_isdigit(key[0]))) << l;
  }
  std::set<uint64_t> expected;
  for (const auto& [offset, payload] : logged) expected.insert(offset);
  EXPECT_EQ(offsets, expected);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fieldsync::testing
