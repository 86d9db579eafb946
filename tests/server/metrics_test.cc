// The /metrics page of a real fieldsyncd process (valid for `promtool check
// metrics`, counting calls), its call log on stderr (text and JSON lines),
// request ids, and the message size limit.
#include "server/metrics.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/server/server_process.h"

namespace fieldsync {
namespace {

namespace health = ::grpc::health::v1;
namespace fs = std::filesystem;
using ::fieldsync::testing::ServerProcess;

constexpr char kCheck[] = "/grpc.health.v1.Health/Check";

std::string ReadText(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// The value of the sample `series` (name and labels, exactly as rendered) in
// a Prometheus text page; 0 when absent.
double Sample(const std::string& page, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(page, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      double value = 0;
      EXPECT_TRUE(absl::SimpleAtod(line.substr(series.size() + 1), &value)) << line;
      return value;
    }
  }
  return 0;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("metrics_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }

  void StartServer(std::vector<std::string> args = {}) {
    args.push_back("--data_dir=" + (dir_ / "data").string());
    auto server = ServerProcess::Start(FIELDSYNCD_PATH, args, (dir_ / "stderr.log").string());
    ASSERT_TRUE(server.ok()) << server.status();
    server_.emplace(std::move(*server));
    ASSERT_NE(server_->metrics_port(), 0);
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
  }

  std::string Scrape() {
    httplib::Client client("127.0.0.1", server_->metrics_port());
    auto result = client.Get("/metrics");
    EXPECT_TRUE(result) << "scrape failed";
    if (!result) return "";
    EXPECT_EQ(result->status, 200);
    EXPECT_TRUE(absl::StartsWith(result->get_header_value("Content-Type"), "text/plain"));
    return result->body;
  }

  // Health.Check with optional `request_id`; returns the status and the
  // x-request-id the server sent back in its initial metadata.
  grpc::Status Check(const std::string& request_id, std::string* echoed = nullptr) {
    auto stub = health::Health::NewStub(channel_);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!request_id.empty()) context.AddMetadata("x-request-id", request_id);
    health::HealthCheckResponse response;
    grpc::Status status = stub->Check(&context, health::HealthCheckRequest(), &response);
    if (echoed != nullptr) {
      auto found = context.GetServerInitialMetadata().find("x-request-id");
      if (found != context.GetServerInitialMetadata().end()) {
        echoed->assign(found->second.data(), found->second.size());
      }
    }
    return status;
  }

  std::string Logs() { return ReadText(dir_ / "stderr.log"); }

  fs::path dir_;
  std::optional<ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(MetricsTest, PagePassesPromtool) {
  StartServer();
  ASSERT_TRUE(Check("").ok());
  std::string page = Scrape();
  for (const char* name :
       {"fieldsync_rpc_calls_total", "fieldsync_rpc_duration_seconds_bucket",
        "fieldsync_commit_groups_total", "fieldsync_commit_group_records_bucket",
        "fieldsync_commit_group_bytes_bucket", "fieldsync_commit_write_seconds_bucket",
        "fieldsync_log_head_offset", "fieldsync_store_size_bytes", "fieldsync_rpcs_in_flight",
        "fieldsync_draining"}) {
    EXPECT_TRUE(absl::StrContains(page, std::string("\n") + name)) << name << " missing";
  }
  fs::path file = dir_ / "metrics.txt";
  std::ofstream(file) << page;
  std::string command = "promtool check metrics < " + file.string() + " 2>&1";
  FILE* promtool = popen(command.c_str(), "r");
  ASSERT_NE(promtool, nullptr);
  std::string output;
  char buffer[512];
  while (fgets(buffer, sizeof(buffer), promtool) != nullptr) output += buffer;
  int status = pclose(promtool);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "promtool: " << output << "\npage:\n"
      << page;
  // Lint findings (naming, units, missing HELP) count as failures too.
  EXPECT_EQ(output, "") << "page:\n" << page;
}

TEST_F(MetricsTest, CallCounterIncrementsAfterACall) {
  StartServer();
  const std::string ok_checks =
      std::string("fieldsync_rpc_calls_total{method=\"") + kCheck + "\",code=\"OK\"}";
  double before = Sample(Scrape(), ok_checks);
  ASSERT_TRUE(Check("").ok());
  std::string page = Scrape();
  EXPECT_EQ(Sample(page, ok_checks), before + 1);
  EXPECT_GE(Sample(page, std::string("fieldsync_rpc_duration_seconds_count{method=\"") + kCheck +
                             "\",code=\"OK\"}"),
            1);
}

TEST_F(MetricsTest, UnknownMethodsShareOneSeries) {
  StartServer();
  grpc::GenericStub stub(channel_);
  for (const char* method : {"/evil.Scanner/Probe1", "/evil.Scanner/Probe2"}) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Slice empty("");
    grpc::ByteBuffer request(&empty, 1), response;
    grpc::Status status;
    absl::Notification done;
    stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
      status = std::move(s);
      done.Notify();
    });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  std::string page = Scrape();
  EXPECT_FALSE(absl::StrContains(page, "evil")) << page;
  EXPECT_EQ(Sample(page, "fieldsync_rpc_calls_total{method=\"unknown\",code=\"UNIMPLEMENTED\"}"),
            2);
}

TEST_F(MetricsTest, TextLogHasOneLinePerCallWithEveryField) {
  StartServer();
  ASSERT_TRUE(Check("text-log-1").ok());
  std::string logs = Logs();
  std::string line;
  for (absl::string_view l : absl::StrSplit(logs, '\n')) {
    if (absl::StrContains(l, "request_id=text-log-1")) line = std::string(l);
  }
  ASSERT_FALSE(line.empty()) << logs;
  for (const char* part : {" info call ", "method=/grpc.health.v1.Health/Check",
                           "peer=ipv4:127.0.0.1:", "user=-", "code=OK", "latency_ms="}) {
    EXPECT_TRUE(absl::StrContains(line, part)) << part << " missing from: " << line;
  }
}

TEST_F(MetricsTest, JsonLogLinesParseAndCarryTheCall) {
  StartServer({"--log_format=json"});
  std::string echoed;
  ASSERT_TRUE(Check("json-log-1", &echoed).ok());
  EXPECT_EQ(echoed, "json-log-1");
  std::string generated;
  ASSERT_TRUE(Check("", &generated).ok());
  EXPECT_EQ(generated.size(), 32u) << generated;

  std::string logs = Logs();
  int call_lines = 0;
  bool found_mine = false, found_generated = false;
  for (absl::string_view line : absl::StrSplit(logs, '\n', absl::SkipEmpty())) {
    google::protobuf::Struct record;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(std::string(line), &record).ok())
        << "not JSON: " << line;
    const auto& fields = record.fields();
    ASSERT_TRUE(fields.contains("ts") && fields.contains("level") && fields.contains("msg"))
        << line;
    if (fields.at("msg").string_value() != "call") continue;
    ++call_lines;
    EXPECT_EQ(fields.at("method").string_value(), kCheck);
    EXPECT_EQ(fields.at("code").string_value(), "OK");
    EXPECT_TRUE(absl::StartsWith(fields.at("peer").string_value(), "ipv4:127.0.0.1:")) << line;
    EXPECT_EQ(fields.at("user").string_value(), "-");
    EXPECT_EQ(fields.at("latency_ms").kind_case(), google::protobuf::Value::kNumberValue);
    EXPECT_GE(fields.at("latency_ms").number_value(), 0);
    found_mine = found_mine || fields.at("request_id").string_value() == "json-log-1";
    found_generated = found_generated || fields.at("request_id").string_value() == generated;
  }
  EXPECT_EQ(call_lines, 2) << logs;
  EXPECT_TRUE(found_mine) << logs;
  EXPECT_TRUE(found_generated) << logs;
}

TEST_F(MetricsTest, UnusableRequestIdIsReplaced) {
  StartServer();
  std::string echoed;
  ASSERT_TRUE(Check("bad id with spaces", &echoed).ok());
  EXPECT_EQ(echoed.size(), 32u) << echoed;
  EXPECT_FALSE(absl::StrContains(Logs(), "bad id with spaces"));
}

TEST_F(MetricsTest, MessageOverTheLimitIsResourceExhausted) {
  std::string config = (dir_ / "small.textproto").string();
  std::ofstream(config) << "limits { max_message_bytes: 4096 max_push_bytes: 4096 "
                           "max_pull_bytes: 4096 max_event_bytes: 1024 }\n";
  StartServer({"--config=" + config});
  auto stub = health::Health::NewStub(channel_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  health::HealthCheckRequest request;
  request.set_service(std::string(8192, 'x'));
  health::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  // A message under the limit is served.
  EXPECT_TRUE(Check("").ok());
}

TEST_F(MetricsTest, MetricsOffPrintsNoMetricsLine) {
  auto server = ServerProcess::Start(
      FIELDSYNCD_PATH, {"--data_dir=" + (dir_ / "data").string(), "--metrics_listen=off"});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(server->metrics_port(), 0);
}

// The registry alone: label escaping, counters and histograms without labels
// show their one series from the start, gauges read at scrape time.
TEST(MetricsRegistryTest, RendersTheTextFormat) {
  server::MetricsRegistry registry;
  auto* calls = registry.Counter("demo_calls_total", "Calls.", {"method"});
  calls->Increment({"a\"b\\c\nd"});
  registry.Counter("demo_events_total", "Events.", {});
  auto* sizes = registry.Histogram("demo_size_bytes", "Sizes.", {}, {1, 10});
  sizes->Observe({}, 5);
  double gauge = 3;
  registry.Gauge("demo_level", "Level.", [&gauge] { return gauge; });
  gauge = 4.5;
  std::string page = registry.Render();
  EXPECT_TRUE(absl::StrContains(page, "demo_calls_total{method=\"a\\\"b\\\\c\\nd\"} 1\n")) << page;
  EXPECT_TRUE(absl::StrContains(page, "demo_events_total 0\n")) << page;
  EXPECT_TRUE(absl::StrContains(page, "demo_size_bytes_bucket{le=\"1\"} 0\n")) << page;
  EXPECT_TRUE(absl::StrContains(page, "demo_size_bytes_bucket{le=\"10\"} 1\n")) << page;
  EXPECT_TRUE(absl::StrContains(page, "demo_size_bytes_bucket{le=\"+Inf\"} 1\n")) << page;
  EXPECT_TRUE(absl::StrContains(page, "demo_size_bytes_sum 5\n")) << page;
  EXPECT_TRUE(absl::StrContains(page, "demo_level 4.5\n")) << page;
  EXPECT_TRUE(absl::StrContains(page, "# TYPE demo_level gauge\n")) << page;
}

TEST(MetricsRegistryTest, BucketBoundsAreShortestDecimals) {
  server::MetricsRegistry registry;
  registry.Histogram("demo_seconds", "Times.", {}, server::LatencyBuckets());
  std::string page = registry.Render();
  EXPECT_TRUE(absl::StrContains(page, "le=\"0.0005\"")) << page;
  EXPECT_TRUE(absl::StrContains(page, "le=\"0.0025\"")) << page;
  EXPECT_FALSE(absl::StrContains(page, "0000000")) << page;
}

}  // namespace
}  // namespace fieldsync
