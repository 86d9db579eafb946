#include "tests/server/server_process.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace fieldsync::testing {
namespace {

constexpr char kListening[] = "fieldsyncd listening on ";
constexpr char kMetrics[] = "metrics listening on ";
constexpr char kToken[] = "first admin token: ";

bool HasFlag(const std::vector<std::string>& args, const std::string& flag) {
  for (const auto& a : args) {
    if (absl::StartsWith(a, flag + "=")) return true;
  }
  return false;
}

// The port at the end of "...HOST:PORT", or -1.
int PortOf(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  int port = -1;
  if (!absl::SimpleAtoi(text.substr(text.rfind(':') + 1), &port)) return -1;
  return port;
}

std::string Trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

struct Child {
  pid_t pid = -1;
  FILE* out = nullptr;  // The child's stdout.
};

// Forks and execs `binary` with stdout to a pipe and stderr to `stderr_fd`
// (-1: inherited). Everything the child needs is prepared before the fork:
// only async-signal-safe calls run between fork and exec.
absl::StatusOr<Child> Spawn(const std::string& binary, std::vector<std::string> args,
                            int stderr_fd) {
  std::vector<char*> argv;
  std::string binary_copy = binary;
  argv.push_back(binary_copy.data());
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    if (stderr_fd >= 0) dup2(stderr_fd, STDERR_FILENO);
    execv(binary_copy.c_str(), argv.data());
    _exit(127);
  }
  close(out[1]);
  return Child{pid, fdopen(out[0], "r")};
}

}  // namespace

absl::StatusOr<ServerProcess> ServerProcess::Start(const std::string& binary,
                                                   std::vector<std::string> args,
                                                   const std::string& stderr_path) {
  if (!HasFlag(args, "--listen")) args.push_back("--listen=127.0.0.1:0");
  if (!HasFlag(args, "--metrics_listen")) args.push_back("--metrics_listen=127.0.0.1:0");
  int stderr_fd = -1;
  if (!stderr_path.empty()) {
    stderr_fd = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (stderr_fd < 0) return absl::InternalError(absl::StrCat("cannot open ", stderr_path));
  }
  auto child = Spawn(binary, std::move(args), stderr_fd);
  if (stderr_fd >= 0) close(stderr_fd);
  if (!child.ok()) return child.status();
  FILE* stream = child->out;
  char line[512];
  int metrics_port = 0;
  std::optional<std::string> token;
  while (fgets(line, sizeof(line), stream) != nullptr) {
    std::string text(line);
    if (absl::StartsWith(text, kToken)) {
      token = Trimmed(text.substr(strlen(kToken)));
      continue;
    }
    if (absl::StartsWith(text, kMetrics)) {
      metrics_port = PortOf(text);
      continue;
    }
    auto at = text.find(kListening);
    if (at == std::string::npos) continue;
    int port = PortOf(text.substr(at + strlen(kListening)));
    if (port <= 0) return absl::InternalError(absl::StrCat("bad listening line: ", text));
    // Keep draining stdout so the child never blocks on it; the thread ends
    // at the child's exit (EOF).
    std::thread([stream] {
      char rest[512];
      while (fgets(rest, sizeof(rest), stream) != nullptr) {
      }
      fclose(stream);
    }).detach();
    ServerProcess process(child->pid, port);
    process.metrics_port_ = metrics_port;
    process.first_admin_token_ = std::move(token);
    return process;
  }
  fclose(stream);
  int status = 0;
  waitpid(child->pid, &status, 0);
  return absl::InternalError(
      absl::StrCat("fieldsyncd exited before listening, wait status ", status));
}

absl::StatusOr<ServerProcess::Exit> ServerProcess::RunToExit(const std::string& binary,
                                                             const std::vector<std::string>& args) {
  char stderr_template[] = "/tmp/fieldsyncd_stderr_XXXXXX";
  int stderr_fd = mkstemp(stderr_template);
  if (stderr_fd < 0) return absl::InternalError("mkstemp failed");
  unlink(stderr_template);  // The fd keeps it alive; read it back through the fd.
  auto child = Spawn(binary, args, stderr_fd);
  if (!child.ok()) {
    close(stderr_fd);
    return child.status();
  }
  Exit exit;
  char line[512];
  while (fgets(line, sizeof(line), child->out) != nullptr) {
    exit.stdout_text += line;
    if (absl::StrContains(line, kListening)) {
      exit.started = true;
      kill(child->pid, SIGKILL);
      break;
    }
  }
  fclose(child->out);
  waitpid(child->pid, &exit.wait_status, 0);
  lseek(stderr_fd, 0, SEEK_SET);
  char buffer[4096];
  ssize_t n;
  while ((n = read(stderr_fd, buffer, sizeof(buffer))) > 0) exit.stderr_text.append(buffer, n);
  close(stderr_fd);
  return exit;
}

ServerProcess::ServerProcess(ServerProcess&& other) noexcept
    : pid_(other.pid_),
      port_(other.port_),
      metrics_port_(other.metrics_port_),
      first_admin_token_(std::move(other.first_admin_token_)) {
  other.pid_ = -1;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) StopWith(SIGKILL);
}

int ServerProcess::StopWith(int signal) {
  Signal(signal);
  return WaitForExit();
}

void ServerProcess::Signal(int signal) {
  if (pid_ > 0) kill(pid_, signal);
}

int ServerProcess::WaitForExit() {
  if (pid_ <= 0) return -1;
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

}  // namespace fieldsync::testing
