// FieldWorld: a GoogleTest fixture for the client tests. A real fieldsyncd
// process (tests/server/server_process.h) on port 0 over a temp data
// directory, and fieldctl run as a real process against it, each device with
// its own SQLite database. The world is built through fieldctl's own admin
// commands:
//   areas   county 620102 > township 620102001 > villages kV1, kV2
//   unit U1 in the township
//   users   cadre1, cadre2 (cadres of U1), town1 (township staff of 620102001)
//   devices "phone1" (cadre1), "phone2" (cadre2), "tablet" (town1), enrolled
//   households kH1 (N-1, kV1) and kH2 (N-2, kV1), registered by the tablet
// Links are left to each test. The server binary is the build's fieldsyncd,
// or $FIELDSYNCD_UNDER_TEST when set (to run the client tests against
// another build of the server).
//
// Not thread-safe (a test fixture).
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fieldsync/v1/query_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "sync/event_codec.h"
#include "tests/server/server_process.h"

namespace fieldsync::testing {

inline constexpr char kV1[] = "620102001001";
inline constexpr char kV2[] = "620102001002";
inline constexpr char kH1[] = "11111111-1111-4111-8111-000000000001";
inline constexpr char kH2[] = "11111111-1111-4111-8111-000000000002";

// What one fieldctl run did.
struct CtlRun {
  int exit_code = -1;  // -1 when killed by a signal.
  int signal = 0;
  std::string out;
  std::string err;
};

class FieldWorld : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

 public:
  // The server's config (text ServerConfig); by default no rate limit in the
  // way of the tests' bursts. Fixtures override it.
  virtual std::string ServerConfigText() const {
    return "limits { device_requests_per_second: 100000 device_request_burst: 100000 }\n";
  }

  // Global flags every fieldctl run of the fixture gets (e.g. --tls-ca).
  virtual std::vector<std::string> ExtraArgs() const { return {}; }

  // Runs fieldctl with --server set to the world's server, and --db of
  // `device` unless empty ("" = no --db: admin commands).
  CtlRun Fieldctl(const std::string& device, std::vector<std::string> args);
  // As Fieldctl with --token-file of the admin, for admin commands.
  CtlRun Admin(std::vector<std::string> args);
  // Fieldctl that must exit with `code` (test failure otherwise, with output).
  CtlRun Must(const std::string& device, std::vector<std::string> args, int code = 0);
  // Starts fieldctl without waiting: for the kill tests.
  pid_t Spawn(const std::string& device, std::vector<std::string> args);

  // The local database file of a device.
  std::string Db(const std::string& device) const { return dir_ + "/" + device + ".db"; }
  // Enrolls `device` for `user` (a code from the admin, then fieldctl enroll).
  void Enroll(const std::string& device, const std::string& user);
  // Starts a link of a cadre to a household; returns the link id.
  std::string Link(const std::string& link_id, const std::string& cadre,
                   const std::string& household, const std::string& from = "");

  // Every event on the server's log about `household`, as the admin reads it
  // (QueryService.GetHistory, all pages).
  std::vector<sync::LoggedEvent> History(const std::string& household);

  // Stops the server (SIGTERM) / starts it again on the same data directory
  // (on a new port: later runs use it).
  void StopServer();
  void StartServer();

  const std::string& dir() const { return dir_; }
  const std::string& address() const { return address_; }
  const std::string& admin_token() const { return admin_token_; }

 private:
  std::string dir_;
  std::string address_;
  std::string admin_token_;
  std::string token_file_;
  std::optional<ServerProcess> server_;
};

// A field of a JSON text: the raw text after "\"key\":" up to the next , or }
// (enough for the flat numbers and strings the tests read).
std::string JsonField(const std::string& json, const std::string& key);
// Its value as an integer (-1 when absent).
long long JsonInt(const std::string& json, const std::string& key);

}  // namespace fieldsync::testing
