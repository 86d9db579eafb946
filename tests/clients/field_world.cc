#include "tests/clients/field_world.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "grpcpp/grpcpp.h"

namespace fieldsync::testing {
namespace {

constexpr char kAreasCsv[] =
    "code,parent,level,name\n"
    "620000000000,,province,甘肃省\n"
    "620100000000,620000000000,city,兰州市\n"
    "620102000000,620100000000,county,城关区\n"
    "620102001000,620102000000,township,甲乡\n"
    "620102001001,620102001000,village,一村\n"
    "620102001002,620102001000,village,二村\n";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

}  // namespace

std::string JsonField(const std::string& json, const std::string& key) {
  const std::string needle = absl::StrCat("\"", key, "\":");
  size_t at = json.find(needle);
  if (at == std::string::npos) return "";
  at += needle.size();
  size_t end = at;
  if (end < json.size() && json[end] == '"') {
    end = json.find('"', end + 1);
    return json.substr(at + 1, end - at - 1);
  }
  while (end < json.size() && json[end] != ',' && json[end] != '}') ++end;
  return json.substr(at, end - at);
}

long long JsonInt(const std::string& json, const std::string& key) {
  long long n = -1;
  if (!absl::SimpleAtoi(JsonField(json, key), &n)) return -1;
  return n;
}

void FieldWorld::SetUp() {
  dir_ = (std::filesystem::path(::testing::TempDir()) /
          absl::StrCat("field_world_", getpid(), "_",
                       ::testing::UnitTest::GetInstance()->current_test_info()->name()))
             .string();
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_ + "/data");
  WriteFile(dir_ + "/fieldsyncd.textproto", ServerConfigText());
  StartServer();
  ASSERT_TRUE(server_.has_value());
  ASSERT_TRUE(server_->first_admin_token().has_value());
  admin_token_ = *server_->first_admin_token();
  token_file_ = dir_ + "/admin.token";
  WriteFile(token_file_, admin_token_ + "\n");

  WriteFile(dir_ + "/areas.csv", kAreasCsv);
  Must("", {"--token-file", token_file_, "admin", "areas", "import", dir_ + "/areas.csv"});
  Must("", {"--token-file", token_file_, "admin", "unit", "upsert", "--id", "U1", "--name",
            "unit U1", "--area", "620102001000"});
  for (const char* cadre : {"cadre1", "cadre2"}) {
    Must("", {"--token-file", token_file_, "admin", "user", "upsert", "--id", cadre, "--name",
              cadre, "--role", "cadre", "--unit", "U1"});
  }
  Must("", {"--token-file", token_file_, "admin", "user", "upsert", "--id", "town1", "--name",
            "town1", "--role", "township_staff", "--scope", "620102001"});
  Enroll("phone1", "cadre1");
  Enroll("phone2", "cadre2");
  Enroll("tablet", "town1");
  Must("tablet", {"household", "register", "--id", kH1, "--village", kV1, "--number", "N-1",
                  "--head", "戶主一", "--head-id", "11010519491231002X"});
  Must("tablet", {"household", "register", "--id", kH2, "--village", kV1, "--number", "N-2",
                  "--head", "戶主二", "--head-id", "11010519491231002X"});
  Must("tablet", {"sync"});
}

void FieldWorld::StartServer() {
  // FIELDSYNCD_UNDER_TEST runs the world on another build of the server.
  const char* binary = std::getenv("FIELDSYNCD_UNDER_TEST");
  auto server = ServerProcess::Start(
      binary != nullptr ? binary : FIELDSYNCD_PATH,
      {"--data_dir=" + dir_ + "/data", "--config=" + dir_ + "/fieldsyncd.textproto"},
      dir_ + "/fieldsyncd.log");
  ASSERT_TRUE(server.ok()) << server.status();
  server_.reset();
  server_.emplace(std::move(*server));
  address_ = server_->address();
}

void FieldWorld::StopServer() {
  if (server_.has_value()) server_->StopWith(SIGTERM);
  server_.reset();
}

void FieldWorld::TearDown() {
  server_.reset();
  if (!HasFailure()) std::filesystem::remove_all(dir_);
}

void FieldWorld::Enroll(const std::string& device, const std::string& user) {
  CtlRun code = Must("", {"--token-file", token_file_, "admin", "code", "issue", "--user", user});
  std::string text(absl::StripAsciiWhitespace(code.out));
  Must(device, {"enroll", "--code", text, "--name", device});
}

std::string FieldWorld::Link(const std::string& link_id, const std::string& cadre,
                             const std::string& household, const std::string& from) {
  std::vector<std::string> args = {"--token-file", token_file_,     "admin",           "link",
                                   "start",        "--id",          link_id,           "--cadre",
                                   cadre,          "--target-kind", "household",       "--target",
                                   household,      "--role",        "household_helper"};
  if (!from.empty()) {
    args.push_back("--from");
    args.push_back(from);
  }
  Must("", args);
  return link_id;
}

CtlRun FieldWorld::Admin(std::vector<std::string> args) {
  args.insert(args.begin(), {"--token-file", token_file_});
  return Fieldctl("", std::move(args));
}

pid_t FieldWorld::Spawn(const std::string& device, std::vector<std::string> args) {
  std::vector<std::string> argv = {FIELDCTL_PATH, "--server", address_};
  for (const std::string& extra : ExtraArgs()) argv.push_back(extra);
  if (!device.empty()) {
    argv.push_back("--db");
    argv.push_back(Db(device));
  }
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string out = dir_ + "/last.out", err = dir_ + "/last.err";
  pid_t pid = fork();
  if (pid == 0) {
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(o, STDOUT_FILENO);
    dup2(e, STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, STDIN_FILENO);
    std::vector<char*> raw;
    for (std::string& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    // No user config file may change what the tests run.
    setenv("FIELDCTL_CONFIG", "/nonexistent/fieldctl.toml", 1);
    execv(raw[0], raw.data());
    _exit(127);
  }
  return pid;
}

CtlRun FieldWorld::Fieldctl(const std::string& device, std::vector<std::string> args) {
  pid_t pid = Spawn(device, std::move(args));
  CtlRun run;
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) run.signal = WTERMSIG(status);
  run.out = ReadAll(dir_ + "/last.out");
  run.err = ReadAll(dir_ + "/last.err");
  return run;
}

CtlRun FieldWorld::Must(const std::string& device, std::vector<std::string> args, int code) {
  const std::string shown = absl::StrJoin(args, " ");
  CtlRun run = Fieldctl(device, std::move(args));
  EXPECT_EQ(run.exit_code, code) << "fieldctl " << shown << "\nstdout: " << run.out
                                 << "\nstderr: " << run.err;
  return run;
}

std::vector<sync::LoggedEvent> FieldWorld::History(const std::string& household) {
  auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  auto stub = v1::QueryService::NewStub(channel);
  std::vector<sync::LoggedEvent> out;
  uint64_t after = 0;
  while (true) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + admin_token_);
    v1::GetHistoryRequest request;
    request.mutable_subject()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
    request.mutable_subject()->set_id(household);
    request.set_after_offset(after);
    request.set_limit(500);
    v1::GetHistoryResponse response;
    grpc::Status status = stub->GetHistory(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (!status.ok()) break;
    for (const v1::LogEntry& entry : response.events()) {
      absl::StatusOr<sync::LoggedEvent> decoded = sync::DecodeLogEntry(entry);
      EXPECT_TRUE(decoded.ok()) << decoded.status();
      if (decoded.ok()) out.push_back(*std::move(decoded));
    }
    after = response.next_after_offset();
    if (!response.more()) break;
  }
  return out;
}

}  // namespace fieldsync::testing
