// ServerProcess: runs a real fieldsyncd binary as a child process for tests,
// on port 0, and learns its ports from the lines it prints on stdout
// ("first admin token: ...", "metrics listening on ...", "fieldsyncd
// listening on ..."). RunToExit runs one that is expected to fail at start
// and returns its exit status and output.
// Not thread-safe; one per test.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace fieldsync::testing {

class ServerProcess {
 public:
  // Starts `binary` with `args` (e.g. "--data_dir=..."); "--listen=127.0.0.1:0"
  // and "--metrics_listen=127.0.0.1:0" are added unless args already hold a
  // --listen / --metrics_listen (so a --config file's addresses are
  // overridden unless the test passes its own flags). Waits for the listening
  // line. The child's stderr (its logs) goes to `stderr_path` when not empty
  // (truncated first), else to the test's stderr.
  static absl::StatusOr<ServerProcess> Start(const std::string& binary,
                                             std::vector<std::string> args,
                                             const std::string& stderr_path = "");

  // What a process run by RunToExit did.
  struct Exit {
    bool started = false;  // It printed its listening line (and was then killed).
    int wait_status = 0;   // As from waitpid.
    std::string stdout_text;
    std::string stderr_text;
  };
  // Runs `binary` with `args` (no flags added) until it exits, or until it
  // prints its listening line, in which case it is SIGKILLed and `started`
  // is true. For processes expected to fail at start.
  static absl::StatusOr<Exit> RunToExit(const std::string& binary,
                                        const std::vector<std::string>& args);

  ServerProcess(ServerProcess&& other) noexcept;
  ServerProcess& operator=(ServerProcess&&) = delete;
  ~ServerProcess();  // SIGKILLs a child still running.

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // The /metrics port; 0 if the server printed no "metrics listening" line.
  int metrics_port() const { return metrics_port_; }
  // The token of the "first admin token: " line, if the server printed one.
  const std::optional<std::string>& first_admin_token() const { return first_admin_token_; }
  pid_t pid() const { return pid_; }

  // Sends `signal` and waits for the exit; returns the wait status.
  int StopWith(int signal);
  // Sends `signal` without waiting.
  void Signal(int signal);
  // Waits for the exit; returns the wait status (-1 if already reaped).
  int WaitForExit();

 private:
  ServerProcess(pid_t pid, int port) : pid_(pid), port_(port) {}
  pid_t pid_ = -1;
  int port_ = 0;
  int metrics_port_ = 0;
  std::optional<std::string> first_admin_token_;
};

}  // namespace fieldsync::testing
