// fieldctl over TLS: a server with a certificate of the deployment's CA;
// --tls-ca verifies it. Certificates are made with the openssl CLI.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/clients/field_world.h"

namespace fieldsync::testing {
namespace {

namespace fs = std::filesystem;

class ClientTlsTest : public FieldWorld {
 public:
  static void SetUpTestSuite() {
    pki_ = new std::string(
        (fs::path(::testing::TempDir()) / ("client_tls_pki_" + std::to_string(getpid()))).string());
    fs::remove_all(*pki_);
    fs::create_directories(*pki_);
    const std::string d = *pki_;
    auto run = [](const std::string& command) {
      const std::string quiet = command + " >/dev/null 2>&1";
      ASSERT_EQ(std::system(quiet.c_str()), 0) << command;
    };
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    run("openssl req -x509" + ec + " -keyout " + d + "/ca.key -out " + d +
        "/ca.pem -days 2 -subj /CN=fieldsync-client-test-ca"
        " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign");
    std::ofstream(d + "/server.ext")
        << "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
    run("openssl req" + ec + " -keyout " + d + "/server.key -out " + d +
        "/server.csr -subj /CN=server");
    run("openssl x509 -req -in " + d + "/server.csr -CA " + d + "/ca.pem -CAkey " + d +
        "/ca.key -CAcreateserial -days 2 -out " + d + "/server.pem -extfile " + d + "/server.ext");
  }
  static void TearDownTestSuite() {
    fs::remove_all(*pki_);
    delete pki_;
  }
  std::string ServerConfigText() const override {
    return "limits { device_requests_per_second: 100000 device_request_burst: 100000 }\n"
           "tls { cert_file: \"" +
           *pki_ + "/server.pem\" key_file: \"" + *pki_ + "/server.key\" }\n";
  }
  std::vector<std::string> ExtraArgs() const override { return {"--tls-ca", *pki_ + "/ca.pem"}; }

  static std::string* pki_;
};
std::string* ClientTlsTest::pki_ = nullptr;

TEST_F(ClientTlsTest, EnrollAndSyncOverTlsVerifiedByTheDeploymentCa) {
  // SetUp already imported areas, made users, enrolled three devices and
  // synced the tablet, every call over TLS.
  Link("L1", "cadre1", kH1);
  Must("phone1",
       {"visit", "record", "--household", kH1, "--start", "2024-03-01T09:00:00+08:00", "--end",
        "2024-03-01T10:00:00+08:00"},
       1);  // Not pulled yet: the household is not local.
  Must("phone1", {"sync"});
  Must("phone1", {"visit", "record", "--household", kH1, "--start", "2024-03-01T09:00:00+08:00",
                  "--end", "2024-03-01T10:00:00+08:00"});
  CtlRun synced = Must("phone1", {"--json", "sync"});
  EXPECT_EQ(JsonInt(synced.out, "accepted"), 1) << synced.out;
  CtlRun missing = Must("phone1", {"--tls-ca", *pki_ + "/nope.pem", "sync"}, 1);
  EXPECT_NE(missing.err.find("cannot read the TLS CA file"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace fieldsync::testing
