// TLS and mutual TLS on a real in-process fieldsyncd, with a CA, a server
// certificate (SAN localhost, 127.0.0.1) and client certificates that the test
// creates with the openssl CLI.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <spdlog/sinks/base_sink.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/synchronization/notification.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/logging.h"
#include "server/server.h"

namespace fieldsync::server {
namespace {

namespace health = ::grpc::health::v1;
namespace fs = std::filesystem;

std::string ReadText(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Keeps formatted log lines; notifies once a line from gRPC itself arrives.
class CapturingSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lock(mutex_);
    return lines_;
  }
  absl::Notification grpc_line;

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    lines_.emplace_back(formatted.data(), formatted.size());
    if (lines_.back().find("\"source\":\"grpc\"") != std::string::npos &&
        !grpc_line.HasBeenNotified()) {
      grpc_line.Notify();
    }
  }
  void flush_() override {}

 private:
  std::vector<std::string> lines_;
};

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new fs::path(fs::path(::testing::TempDir()) / ("tls_pki_" + std::to_string(getpid())));
    fs::remove_all(*pki_);
    fs::create_directories(*pki_);
    const std::string d = pki_->string();
    auto run = [](const std::string& command) {
      std::string quiet = command + " >/dev/null 2>&1";
      ASSERT_EQ(std::system(quiet.c_str()), 0) << command;
    };
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    for (const char* ca : {"ca", "rogue_ca"}) {
      run("openssl req -x509" + ec + " -keyout " + d + "/" + ca + ".key -out " + d + "/" + ca +
          ".pem -days 2 -subj /CN=fieldsync-test-" + ca +
          " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign");
    }
    std::ofstream(d + "/server.ext")
        << "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
    std::ofstream(d + "/client.ext") << "extendedKeyUsage=clientAuth\n";
    auto issue = [&](const std::string& name, const std::string& ca, const std::string& ext) {
      run("openssl req" + ec + " -keyout " + d + "/" + name + ".key -out " + d + "/" + name +
          ".csr -subj /CN=" + name);
      run("openssl x509 -req -in " + d + "/" + name + ".csr -CA " + d + "/" + ca + ".pem -CAkey " +
          d + "/" + ca + ".key -CAcreateserial -days 2 -out " + d + "/" + name + ".pem -extfile " +
          d + "/" + ext);
    };
    issue("server", "ca", "server.ext");
    issue("client", "ca", "client.ext");
    issue("rogue_client", "rogue_ca", "client.ext");
  }

  static void TearDownTestSuite() {
    fs::remove_all(*pki_);
    delete pki_;
  }

  void SetUp() override {
    data_dir_ = fs::path(::testing::TempDir()) /
                ("tls_" + std::to_string(getpid()) + "_" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(data_dir_);
  }

  void TearDown() override {
    server_.reset();
    fs::remove_all(data_dir_);
  }

  static std::string Pki(const std::string& file) { return (*pki_ / file).string(); }

  v1::ServerConfig Config() {
    v1::ServerConfig config;
    config.set_data_dir(data_dir_.string());
    config.set_listen("127.0.0.1:0");
    config.set_metrics_listen("off");
    config.mutable_tls()->set_cert_file(Pki("server.pem"));
    config.mutable_tls()->set_key_file(Pki("server.key"));
    return config;
  }

  void StartServer(const v1::ServerConfig& config) {
    auto server = FieldsyncServer::Start(config);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  // A TLS channel trusting the test CA, presenting `client` ("" for no
  // client certificate).
  std::shared_ptr<grpc::Channel> TlsChannel(const std::string& client) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ReadText(Pki("ca.pem"));
    if (!client.empty()) {
      options.pem_private_key = ReadText(Pki(client + ".key"));
      options.pem_cert_chain = ReadText(Pki(client + ".pem"));
    }
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                               grpc::SslCredentials(options));
  }

  static grpc::Status Check(const std::shared_ptr<grpc::Channel>& channel) {
    auto stub = health::Health::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    health::HealthCheckRequest request;
    health::HealthCheckResponse response;
    grpc::Status status = stub->Check(&context, request, &response);
    if (status.ok()) {
      EXPECT_EQ(response.status(), health::HealthCheckResponse::SERVING);
    }
    return status;
  }

  static fs::path* pki_;
  fs::path data_dir_;
  std::unique_ptr<FieldsyncServer> server_;
};

fs::path* TlsTest::pki_ = nullptr;

TEST_F(TlsTest, ClientTrustingTheCaIsServed) {
  StartServer(Config());
  grpc::Status status = Check(TlsChannel(""));
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(TlsTest, PlaintextClientIsRefused) {
  StartServer(Config());
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                     grpc::InsecureChannelCredentials());
  EXPECT_EQ(Check(channel).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, ClientNotTrustingTheServerCertificateFails) {
  StartServer(Config());
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ReadText(Pki("rogue_ca.pem"));
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                     grpc::SslCredentials(options));
  EXPECT_EQ(Check(channel).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, RequiredClientCertificate) {
  v1::ServerConfig config = Config();
  config.mutable_tls()->set_client_ca_file(Pki("ca.pem"));
  config.mutable_tls()->set_require_client_cert(true);
  StartServer(config);
  EXPECT_EQ(Check(TlsChannel("")).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Check(TlsChannel("rogue_client")).error_code(), grpc::StatusCode::UNAVAILABLE);
  grpc::Status status = Check(TlsChannel("client"));
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(TlsTest, OptionalClientCertificateIsVerifiedWhenPresented) {
  v1::ServerConfig config = Config();
  config.mutable_tls()->set_client_ca_file(Pki("ca.pem"));
  StartServer(config);
  EXPECT_TRUE(Check(TlsChannel("")).ok());
  EXPECT_TRUE(Check(TlsChannel("client")).ok());
  EXPECT_EQ(Check(TlsChannel("rogue_client")).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, FailedHandshakesAreLoggedAsJsonLines) {
  auto sink = std::make_shared<CapturingSink>();
  v1::LogConfig log;
  log.set_format(v1::LOG_FORMAT_JSON);
  InitLogging(log, sink);
  StartServer(Config());
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                     grpc::InsecureChannelCredentials());
  EXPECT_EQ(Check(channel).error_code(), grpc::StatusCode::UNAVAILABLE);
  // gRPC logs the failed handshake from its own thread.
  EXPECT_TRUE(sink->grpc_line.WaitForNotificationWithTimeout(absl::Seconds(30)));
  server_.reset();
  InitLogging(v1::LogConfig());  // Back to stderr.
  for (const std::string& line : sink->lines()) {
    google::protobuf::Struct record;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(line, &record).ok()) << line;
  }
}

TEST_F(TlsTest, NonLoopbackListenIsAllowedWithTls) {
  v1::ServerConfig config = Config();
  config.set_listen("0.0.0.0:0");  // Bound, never called: no traffic leaves loopback.
  auto server = FieldsyncServer::Start(config);
  EXPECT_TRUE(server.ok()) << server.status();
}

TEST_F(TlsTest, KeyNotMatchingTheCertificateFailsAtStart) {
  v1::ServerConfig config = Config();
  config.mutable_tls()->set_key_file(Pki("client.key"));
  auto server = FieldsyncServer::Start(config);
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("tls.key_file"), absl::string_view::npos)
      << server.status();
}

TEST_F(TlsTest, CertificateFileWithoutPemFailsAtStart) {
  v1::ServerConfig config = Config();
  config.mutable_tls()->set_cert_file(Pki("server.ext"));
  auto server = FieldsyncServer::Start(config);
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("tls.cert_file"), absl::string_view::npos)
      << server.status();
}

}  // namespace
}  // namespace fieldsync::server
