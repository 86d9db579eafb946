// The config of fieldsyncd: defaults, file and flag precedence, validation
// messages that name the setting, and the real binary refusing a bad config.
#include "server/config.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/text_format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/server/server_process.h"

namespace fieldsync::server {
namespace {

using ::fieldsync::testing::ServerProcess;
using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

std::string ReadText(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Every leaf setting of ServerConfig as a dotted path ("limits.max_push_events").
void LeafPaths(const Descriptor* descriptor, const std::string& prefix,
               std::vector<std::string>* out) {
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    std::string path = prefix.empty() ? field->name() : prefix + "." + field->name();
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !field->is_map()) {
      LeafPaths(field->message_type(), path, out);
    } else {
      out->push_back(path);
    }
  }
}

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("config_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string WriteConfig(const std::string& text) {
    std::filesystem::path path = dir_ / "fieldsyncd.textproto";
    std::ofstream(path) << text;
    return path.string();
  }

  // The error LoadServerConfig gives for a file holding `text`.
  std::string LoadError(const std::string& text) {
    auto config = LoadServerConfig(WriteConfig(text), {});
    if (config.ok()) return "(loaded fine)";
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(config.status().message());
  }

  std::filesystem::path dir_;
};

TEST_F(ConfigTest, NoFileGivesEveryDefault) {
  auto config = LoadServerConfig("", {});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->data_dir(), "./var/data");
  EXPECT_EQ(config->listen(), "127.0.0.1:50051");
  EXPECT_EQ(config->metrics_listen(), "127.0.0.1:9464");
  EXPECT_EQ(config->shutdown_grace_ms(), 10000u);
  EXPECT_EQ(config->limits().max_message_bytes(), 4194304u);
  EXPECT_EQ(config->limits().max_push_events(), 500u);
  EXPECT_EQ(config->limits().device_request_burst(), 40u);
  EXPECT_EQ(config->limits().max_hlc_skew_ms(), 300000u);
  EXPECT_EQ(config->log().format(), v1::LOG_FORMAT_TEXT);
  EXPECT_EQ(config->log().level(), v1::LOG_LEVEL_INFO);
  EXPECT_EQ(config->storage().backup_dir(), "./var/data/backups");
  EXPECT_EQ(config->storage().max_open_files(), 4096u);
  EXPECT_EQ(config->assessment().device_time_skew_ms(), 600000u);
  EXPECT_EQ(config->kafka().topic(), "fieldsync.events");
  EXPECT_EQ(config->kafka().brokers(), "");
  EXPECT_FALSE(config->insecure());
  EXPECT_FALSE(TlsEnabled(*config));
}

TEST_F(ConfigTest, EveryDefaultNamesARealSettingAndParses) {
  for (const ConfigDefault& entry : ConfigDefaults()) {
    v1::ServerConfig config;
    const FieldDescriptor* field = nullptr;
    std::stringstream parts(entry.path);
    std::string part;
    google::protobuf::Message* mutable_message = &config;
    while (std::getline(parts, part, '.')) {
      field = mutable_message->GetDescriptor()->FindFieldByName(part);
      ASSERT_NE(field, nullptr) << entry.path;
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        mutable_message = mutable_message->GetReflection()->MutableMessage(mutable_message, field);
      }
    }
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFieldValueFromString(entry.value, field,
                                                                        mutable_message))
        << entry.path << " = " << entry.value;
  }
}

TEST_F(ConfigTest, DefaultsAreIdempotentAndKeepSetValues) {
  v1::ServerConfig config;
  config.mutable_limits()->set_max_push_events(7);
  config.set_data_dir("/srv/fieldsync");
  ApplyConfigDefaults(&config);
  v1::ServerConfig again = config;
  ApplyConfigDefaults(&again);
  EXPECT_EQ(again.SerializeAsString(), config.SerializeAsString());
  EXPECT_EQ(config.limits().max_push_events(), 7u);
  EXPECT_EQ(config.limits().max_pull_events(), 1000u);
  EXPECT_EQ(config.storage().backup_dir(), "/srv/fieldsync/backups");
}

TEST_F(ConfigTest, FlagsOverrideTheFile) {
  std::string path = WriteConfig(R"(
    data_dir: "/from/file"
    listen: "127.0.0.1:7000"
    limits { max_push_events: 9 }
    log { format: LOG_FORMAT_TEXT }
  )");
  ConfigOverrides overrides;
  overrides.listen = "127.0.0.1:7001";
  overrides.log_format = v1::LOG_FORMAT_JSON;
  auto config = LoadServerConfig(path, overrides);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->data_dir(), "/from/file");
  EXPECT_EQ(config->listen(), "127.0.0.1:7001");
  EXPECT_EQ(config->limits().max_push_events(), 9u);
  EXPECT_EQ(config->log().format(), v1::LOG_FORMAT_JSON);
}

TEST_F(ConfigTest, EachBadSettingIsNamedInTheError) {
  struct Case {
    std::string text;
    std::string expected;  // A part of the message that names the setting.
  };
  const std::vector<Case> cases = {
      {"no_such_setting: 1", "no_such_setting"},
      {"limits { max_push_events: -1 }", "max_push_events"},
      {"limits { max_push_evnts: 5 }", "max_push_evnts"},
      {"listen: \"nonsense\"", "listen"},
      {"listen: \"127.0.0.1:70000\"", "listen"},
      {"listen: \"::1:5000\"", "listen"},
      {"metrics_listen: \"127.0.0.1\"", "metrics_listen"},
      {"listen: \"127.0.0.1:7000\" metrics_listen: \"127.0.0.1:7000\"", "metrics_listen"},
      {"listen: \"0.0.0.0:7000\"", "insecure"},
      {"listen: \"10.1.2.3:7000\"", "listen"},
      {"tls { key_file: \"/etc/key.pem\" }", "tls.key_file"},
      {"tls { cert_file: \"/nonexistent/cert.pem\" key_file: \"/nonexistent/key.pem\" }",
       "tls.cert_file"},
      {"tls { require_client_cert: true }", "tls.require_client_cert"},
      {"tls { client_ca_file: \"/etc/ca.pem\" }", "tls.client_ca_file"},
      {"limits { max_message_bytes: 3000000000 }", "limits.max_message_bytes"},
      {"limits { max_push_bytes: 8388608 }", "limits.max_push_bytes"},
      {"limits { max_event_bytes: 4194304 }", "limits.max_event_bytes"},
      {"auth { enrollment_code_ttl_seconds: 99999999 }", "auth.enrollment_code_ttl_seconds"},
      {"log { format: LOG_FORMAT_XML }", "format"},
      {"log { level: 42 }", "level"},
      {"kafka { properties { key: \"\" value: \"x\" } }", "kafka.properties"},
  };
  for (const Case& c : cases) {
    std::string error = LoadError(c.text);
    EXPECT_NE(error.find("config: "), std::string::npos) << c.text << " → " << error;
    EXPECT_NE(error.find(c.expected), std::string::npos) << c.text << " → " << error;
  }
}

TEST_F(ConfigTest, ZeroWhereNotAllowedIsNamed) {
  // A zero in the file means "default"; a zero that reaches validation (a
  // config built in code) is refused with the setting's name.
  v1::ServerConfig config;
  ApplyConfigDefaults(&config);
  config.mutable_limits()->set_max_push_events(0);
  absl::Status status = ValidateServerConfig(config);
  EXPECT_EQ(status.message(), "config: limits.max_push_events must be > 0");
  config.mutable_limits()->set_max_push_events(1);
  config.set_shutdown_grace_ms(0);
  EXPECT_EQ(ValidateServerConfig(config).message(), "config: shutdown_grace_ms must be > 0");
}

TEST_F(ConfigTest, UnreadableFileIsNamed) {
  auto config = LoadServerConfig((dir_ / "missing.textproto").string(), {});
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("missing.textproto"), absl::string_view::npos);
}

TEST_F(ConfigTest, NonLoopbackPlaintextNeedsInsecure) {
  ConfigOverrides overrides;
  overrides.listen = "0.0.0.0:7000";
  EXPECT_FALSE(LoadServerConfig("", overrides).ok());
  overrides.insecure = true;
  EXPECT_TRUE(LoadServerConfig("", overrides).ok());
  std::string path = WriteConfig("insecure: true listen: \"[::]:7000\"");
  EXPECT_TRUE(LoadServerConfig(path, {}).ok());
}

TEST_F(ConfigTest, LoopbackHosts) {
  for (const char* host :
       {"localhost", "LOCALHOST", "127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host : {"", "0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "example.org",
                           "localhost.example.org", "::ffff:10.0.0.1"}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
}

TEST_F(ConfigTest, HostPortParsing) {
  auto v4 = ParseHostPort("127.0.0.1:0", "listen");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 0);
  auto v6 = ParseHostPort("[::1]:50051", "listen");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 50051);
  auto any = ParseHostPort(":9464", "metrics_listen");
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(any->host, "");
  for (const char* bad : {"", "host", "host:", "host:-1", "host:65536", "host:1x", "[::1]",
                          "[::1:5", "[nonsense]:5", "a b:5", "::1:5"}) {
    auto parsed = ParseHostPort(bad, "listen");
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.status().message().find("config: listen"), absl::string_view::npos);
  }
}

TEST_F(ConfigTest, ExampleConfigLoadsAndMentionsEverySetting) {
  std::filesystem::path example =
      std::filesystem::path(FIELDSYNC_SOURCE_DIR) / "deploy" / "fieldsyncd.example.textproto";
  auto config = LoadServerConfig(example.string(), {});
  ASSERT_TRUE(config.ok()) << config.status();
  std::string text = ReadText(example);
  std::vector<std::string> paths;
  LeafPaths(v1::ServerConfig::descriptor(), "", &paths);
  for (const std::string& path : paths) {
    std::string leaf = path.substr(path.rfind('.') + 1);
    EXPECT_TRUE(text.find(leaf + ":") != std::string::npos ||
                text.find(leaf + " {") != std::string::npos)
        << path << " missing from " << example;
  }
}

TEST_F(ConfigTest, OperationsDocListsEverySettingAndItsDefault) {
  std::string doc =
      ReadText(std::filesystem::path(FIELDSYNC_SOURCE_DIR) / "docs" / "operations.md");
  ASSERT_FALSE(doc.empty());
  std::vector<std::string> paths;
  LeafPaths(v1::ServerConfig::descriptor(), "", &paths);
  for (const std::string& path : paths) {
    EXPECT_NE(doc.find("\n| `" + path + "` |"), std::string::npos) << path << " not documented";
  }
  for (const ConfigDefault& entry : ConfigDefaults()) {
    // The row of the settings table: it starts with the setting.
    size_t row = doc.find("\n| `" + entry.path + "` |");
    ASSERT_NE(row, std::string::npos) << entry.path;
    ++row;
    std::string line = doc.substr(row, doc.find('\n', row) - row);
    std::string value = entry.value;
    if (value.front() == '"') value = value.substr(1, value.size() - 2);
    EXPECT_NE(line.find("`" + value + "`"), std::string::npos)
        << entry.path << ": default " << value << " not in its row: " << line;
  }
}

// The real binary: a bad config fails at start, exit status 2, and stderr
// names the setting.
class FieldsyncdConfigTest : public ConfigTest {
 protected:
  ServerProcess::Exit Run(std::vector<std::string> args) {
    args.push_back("--data_dir=" + (dir_ / "data").string());
    auto exit = ServerProcess::RunToExit(FIELDSYNCD_PATH, args);
    EXPECT_TRUE(exit.ok()) << exit.status();
    return exit.ok() ? *exit : ServerProcess::Exit{};
  }
};

TEST_F(FieldsyncdConfigTest, BadConfigFileExitsNamingTheSetting) {
  struct Case {
    std::string text;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"limits { max_push_events: -5 }", "max_push_events"},
      {"limits { no_such_limit: 5 }", "no_such_limit"},
      {"tls { key_file: \"/etc/key.pem\" }", "tls.key_file"},
      {"listen: \"127.0.0.1:7000\" metrics_listen: \"127.0.0.1:7000\"", "metrics_listen"},
      {"limits { max_push_bytes: 8388608 }", "limits.max_push_bytes"},
  };
  for (const Case& c : cases) {
    ServerProcess::Exit exit = Run({"--config=" + WriteConfig(c.text)});
    EXPECT_FALSE(exit.started) << c.text;
    ASSERT_TRUE(WIFEXITED(exit.wait_status)) << c.text;
    EXPECT_EQ(WEXITSTATUS(exit.wait_status), 2) << c.text;
    EXPECT_NE(exit.stderr_text.find(c.expected), std::string::npos)
        << c.text << " → stderr: " << exit.stderr_text;
  }
}

TEST_F(FieldsyncdConfigTest, MissingTlsFileExitsNamingTheSetting) {
  ServerProcess::Exit exit = Run({"--tls_cert=" + (dir_ / "nope.pem").string(),
                                  "--tls_key=" + (dir_ / "nope.key").string(),
                                  "--listen=127.0.0.1:0", "--metrics_listen=off"});
  EXPECT_FALSE(exit.started);
  EXPECT_EQ(WEXITSTATUS(exit.wait_status), 2);
  EXPECT_NE(exit.stderr_text.find("tls.cert_file"), std::string::npos) << exit.stderr_text;
}

TEST_F(FieldsyncdConfigTest, NonLoopbackWithoutInsecureRefusesToStart) {
  ServerProcess::Exit exit = Run({"--listen=0.0.0.0:0", "--metrics_listen=off"});
  EXPECT_FALSE(exit.started);
  EXPECT_EQ(WEXITSTATUS(exit.wait_status), 2);
  EXPECT_NE(exit.stderr_text.find("listen"), std::string::npos) << exit.stderr_text;
  EXPECT_NE(exit.stderr_text.find("insecure"), std::string::npos) << exit.stderr_text;
}

TEST_F(FieldsyncdConfigTest, NonLoopbackWithInsecureStartsAndWarns) {
  // Binds every interface on a free port; the test sends it no traffic.
  ServerProcess::Exit exit = Run({"--listen=0.0.0.0:0", "--metrics_listen=off", "--insecure"});
  EXPECT_TRUE(exit.started) << exit.stderr_text;
  EXPECT_NE(exit.stderr_text.find("warning"), std::string::npos) << exit.stderr_text;
  EXPECT_NE(exit.stderr_text.find("plaintext"), std::string::npos) << exit.stderr_text;
}

TEST_F(FieldsyncdConfigTest, UnknownFlagValueForLogFormatIsRefused) {
  ServerProcess::Exit exit = Run({"--log_format=xml", "--metrics_listen=off"});
  EXPECT_FALSE(exit.started);
  EXPECT_EQ(WEXITSTATUS(exit.wait_status), 2);
  EXPECT_NE(exit.stderr_text.find("log.format"), std::string::npos) << exit.stderr_text;
}

TEST_F(FieldsyncdConfigTest, FirstStartWritesTheAdminTokenFileOwnerOnly) {
  std::filesystem::path data = dir_ / "data";
  auto server = ServerProcess::Start(FIELDSYNCD_PATH, {"--data_dir=" + data.string()});
  ASSERT_TRUE(server.ok()) << server.status();
  if (!server->first_admin_token().has_value()) {
    GTEST_SKIP() << "the services create no first admin yet (placeholder ServiceSet)";
  }
  std::filesystem::path file = data / "admin-token";
  ASSERT_TRUE(std::filesystem::exists(file));
  EXPECT_EQ(std::filesystem::status(file).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_EQ(ReadText(file), *server->first_admin_token() + "\n");
  ASSERT_EQ(server->StopWith(SIGTERM), 0);
  // The token is printed once: a later start of the same store prints none.
  auto again = ServerProcess::Start(FIELDSYNCD_PATH, {"--data_dir=" + data.string()});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->first_admin_token().has_value());
}

}  // namespace
}  // namespace fieldsync::server
