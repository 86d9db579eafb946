// The call log interceptor on a bare gRPC server with a test service: the
// user set by the guard, request ids both ways, JSON and text records, and
// escaping of hostile values.
#include "server/call_log.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/logging.h"
#include "server/metrics.h"

namespace fieldsync::server {
namespace {

namespace health = ::grpc::health::v1;

// Health.Check that behaves like a guarded service: it names the caller,
// remembers the call's request id, and fails for service "fail".
class GuardedHealth final : public health::Health::CallbackService {
 public:
  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const health::HealthCheckRequest* request,
                                  health::HealthCheckResponse* response) override {
    SetCallUser(context, "user-42");
    {
      absl::MutexLock lock(&mu_);
      seen_request_id_ = CallRequestId(context);
    }
    auto* reactor = context->DefaultReactor();
    if (request->service() == "fail") {
      reactor->Finish(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "no \"access\"\nhere"));
    } else {
      response->set_status(health::HealthCheckResponse::SERVING);
      reactor->Finish(grpc::Status::OK);
    }
    return reactor;
  }

  std::string seen_request_id() {
    absl::MutexLock lock(&mu_);
    return seen_request_id_;
  }

 private:
  absl::Mutex mu_;
  std::string seen_request_id_ ABSL_GUARDED_BY(mu_);
};

class CallLogTest : public ::testing::Test {
 protected:
  void StartServer(v1::LogFormat format) {
    v1::LogConfig log;
    log.set_format(format);
    log.set_level(v1::LOG_LEVEL_INFO);
    InitLogging(log, std::make_shared<spdlog::sinks::ostream_sink_mt>(logs_));
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(NewCallLogFactory(&metrics_));
    builder.experimental().SetInterceptorCreators(std::move(creators));
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = health::Health::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                        grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    InitLogging(v1::LogConfig());  // Back to stderr before logs_ goes away.
  }

  grpc::Status Call(const std::string& service, const std::string& request_id,
                    std::string* echoed_initial = nullptr, std::string* echoed_trailing = nullptr) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!request_id.empty()) context.AddMetadata("x-request-id", request_id);
    health::HealthCheckRequest request;
    request.set_service(service);
    health::HealthCheckResponse response;
    grpc::Status status = stub_->Check(&context, request, &response);
    auto get = [](const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                  std::string* out) {
      if (out == nullptr) return;
      auto found = metadata.find("x-request-id");
      if (found != metadata.end()) out->assign(found->second.data(), found->second.size());
    };
    get(context.GetServerInitialMetadata(), echoed_initial);
    get(context.GetServerTrailingMetadata(), echoed_trailing);
    return status;
  }

  std::vector<std::string> Lines() {
    spdlog::default_logger()->flush();
    std::vector<std::string> lines;
    for (absl::string_view line : absl::StrSplit(logs_.str(), '\n', absl::SkipEmpty())) {
      lines.emplace_back(line);
    }
    return lines;
  }

  std::ostringstream logs_;
  MetricsRegistry metrics_;
  GuardedHealth service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<health::Health::Stub> stub_;
};

TEST_F(CallLogTest, JsonRecordNamesTheUserSetByTheGuard) {
  StartServer(v1::LOG_FORMAT_JSON);
  std::string initial, trailing;
  ASSERT_TRUE(Call("", "req-7", &initial, &trailing).ok());
  EXPECT_EQ(initial, "req-7");
  EXPECT_EQ(trailing, "req-7");
  EXPECT_EQ(service_.seen_request_id(), "req-7");
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 1u);
  google::protobuf::Struct record;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(lines[0], &record).ok()) << lines[0];
  const auto& fields = record.fields();
  EXPECT_EQ(fields.at("msg").string_value(), "call");
  EXPECT_EQ(fields.at("level").string_value(), "info");
  EXPECT_EQ(fields.at("user").string_value(), "user-42");
  EXPECT_EQ(fields.at("request_id").string_value(), "req-7");
  EXPECT_EQ(fields.at("code").string_value(), "OK");
  EXPECT_EQ(fields.at("method").string_value(), "/grpc.health.v1.Health/Check");
}

TEST_F(CallLogTest, FailedCallLogsItsCodeAndEscapedMessage) {
  StartServer(v1::LOG_FORMAT_JSON);
  EXPECT_EQ(Call("fail", "").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 1u);
  google::protobuf::Struct record;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(lines[0], &record).ok()) << lines[0];
  EXPECT_EQ(record.fields().at("code").string_value(), "PERMISSION_DENIED");
  EXPECT_EQ(record.fields().at("error").string_value(), "no \"access\"\nhere");
  EXPECT_EQ(record.fields().at("request_id").string_value().size(), 32u);
}

TEST_F(CallLogTest, TextRecordIsOneLineWithQuotedValues) {
  StartServer(v1::LOG_FORMAT_TEXT);
  EXPECT_FALSE(Call("fail", "req-8").ok());
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 1u) << logs_.str();
  const std::string& line = lines[0];
  for (const char* part : {" info call method=/grpc.health.v1.Health/Check peer=ipv4:127.0.0.1:",
                           " user=user-42 code=PERMISSION_DENIED latency_ms=",
                           " request_id=req-8 error=\"no \\\"access\\\"\\nhere\""}) {
    EXPECT_TRUE(absl::StrContains(line, part)) << part << " not in " << line;
  }
}

TEST_F(CallLogTest, CountsCallsByMethodAndCode) {
  StartServer(v1::LOG_FORMAT_TEXT);
  ASSERT_TRUE(Call("", "").ok());
  ASSERT_TRUE(Call("", "").ok());
  ASSERT_FALSE(Call("fail", "").ok());
  std::string page = metrics_.Render();
  EXPECT_TRUE(absl::StrContains(
      page, "fieldsync_rpc_calls_total{method=\"/grpc.health.v1.Health/Check\",code=\"OK\"} 2\n"))
      << page;
  EXPECT_TRUE(absl::StrContains(page,
                                "fieldsync_rpc_calls_total{method=\"/grpc.health.v1.Health/"
                                "Check\",code=\"PERMISSION_DENIED\"} 1\n"))
      << page;
  EXPECT_TRUE(absl::StrContains(page,
                                "fieldsync_rpc_duration_seconds_count{method=\"/grpc.health.v1."
                                "Health/Check\",code=\"OK\"} 2\n"))
      << page;
}

TEST(JsonQuoteTest, KeepsEveryRecordOneValidLine) {
  std::string hostile = std::string("a\"b\\c\nd\re\tf\x01g\x7f", 14) + "\xff\xfe" +
                        "\xe4\xb8\xad" /* 中 */ + "\xed\xa0\x80" /* surrogate */;
  std::string quoted = JsonQuote(hostile);
  EXPECT_EQ(quoted.find('\n'), std::string::npos);
  google::protobuf::Struct record;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage("{\"v\":" + quoted + "}", &record).ok())
      << quoted;
  std::string decoded = record.fields().at("v").string_value();
  EXPECT_TRUE(absl::StartsWith(decoded, "a\"b\\c\nd\re\tf\x01g\x7f")) << decoded;
  EXPECT_TRUE(absl::StrContains(decoded, "\xe4\xb8\xad"));
}

}  // namespace
}  // namespace fieldsync::server
