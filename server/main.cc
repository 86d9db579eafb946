// fieldsyncd: the fieldsync server.
//
//   fieldsyncd --config=/etc/fieldsync/fieldsyncd.textproto
//   fieldsyncd --listen=127.0.0.1:50051 --data_dir=./var/data
//
// Settings come from the --config file (text format of
// fieldsync.v1.ServerConfig), overridden by the flags below, with a default
// for everything unset (docs/operations.md). A bad config exits with status 2
// and a message naming the setting.
//
// On stdout, in this order, once it serves:
//   first admin token: <token>          (first start of a store only)
//   metrics listening on HOST:PORT      (unless metrics_listen is "off")
//   fieldsyncd listening on HOST:PORT
// (with port 0 the port is the one the kernel chose). Logs go to stderr.
// With --demo=county on the first start of a store (an empty data directory)
// it loads the demo county through its own API (server/demo.h) after the
// token line and before the listening lines (so "listening" means the demo is
// there), printing what it made, the admin token file and three fieldctl
// commands; on a later start the flag does nothing. If loading fails it shuts
// down and exits 1 (remove the data directory and start again).
// --demo=province does the same with the seed's scale (server/demo_province.h),
// printing progress lines ("demo province: ...") and how long it took;
// --demo_province_size=COUNTIES/VILLAGES/HOUSEHOLDS makes it smaller (tests).
// SIGTERM or SIGINT shuts it down cleanly: health goes NOT_SERVING, new calls
// are refused, in-flight calls finish (up to shutdown_grace_ms), the store is
// closed, exit status 0.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <optional>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/clock.h"
#include "server/config.h"
#include "server/demo.h"
#include "server/demo_province.h"
#include "server/logging.h"
#include "server/server.h"

ABSL_FLAG(std::string, config, "", "path of the config file (text format ServerConfig)");
ABSL_FLAG(std::string, data_dir, "", "directory of the store (default ./var/data)");
ABSL_FLAG(std::string, listen, "",
          "host:port to serve gRPC on (default 127.0.0.1:50051); port 0 picks a free port");
ABSL_FLAG(std::string, metrics_listen, "",
          "host:port of the /metrics page, or \"off\" (default 127.0.0.1:9464)");
ABSL_FLAG(bool, insecure, false, "allow plaintext gRPC on a non-loopback address");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain of the server; enables TLS");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of the server");
ABSL_FLAG(std::string, tls_client_ca, "", "PEM CA bundle that verifies client certificates");
ABSL_FLAG(bool, tls_require_client_cert, false,
          "refuse clients without a certificate signed by --tls_client_ca");
ABSL_FLAG(std::string, log_format, "", "log format: text or json (default text)");
ABSL_FLAG(std::string, demo, "",
          "\"county\" or \"province\": on the first start of an empty data directory, load "
          "the demo county or the demo province (off by default)");
ABSL_FLAG(std::string, demo_province_size, "75/6220/400000",
          "COUNTIES/VILLAGES/HOUSEHOLDS of --demo=province (the seed's scale; smaller for tests)");
ABSL_FLAG(std::string, demo_areas_csv, "deploy/gansu-admin-areas.csv",
          "the Gansu areas CSV the demo county is taken from");
ABSL_FLAG(std::string, demo_fieldctl, "fieldctl",
          "how the printed demo commands call fieldctl (a path, or a name on PATH)");
ABSL_FLAG(std::string, demo_county, "620122", "6-digit code of the demo county (default 皋兰县)");

namespace {

std::optional<std::string> NonEmpty(const std::string& value) {
  if (value.empty()) return std::nullopt;
  return value;
}

std::string HostOf(const std::string& address) { return address.substr(0, address.rfind(':')); }

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "fieldsync server: fieldsyncd [--config=FILE] [--listen=HOST:PORT] [--data_dir=DIR] ...");
  absl::ParseCommandLine(argc, argv);

  // Block the shutdown signals in every thread; one thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  fieldsync::server::ConfigOverrides overrides;
  overrides.data_dir = NonEmpty(absl::GetFlag(FLAGS_data_dir));
  overrides.listen = NonEmpty(absl::GetFlag(FLAGS_listen));
  overrides.metrics_listen = NonEmpty(absl::GetFlag(FLAGS_metrics_listen));
  overrides.insecure = absl::GetFlag(FLAGS_insecure);
  overrides.tls_cert_file = NonEmpty(absl::GetFlag(FLAGS_tls_cert));
  overrides.tls_key_file = NonEmpty(absl::GetFlag(FLAGS_tls_key));
  overrides.tls_client_ca_file = NonEmpty(absl::GetFlag(FLAGS_tls_client_ca));
  overrides.tls_require_client_cert = absl::GetFlag(FLAGS_tls_require_client_cert);
  const std::string log_format = absl::GetFlag(FLAGS_log_format);
  if (log_format == "json") {
    overrides.log_format = fieldsync::v1::LOG_FORMAT_JSON;
  } else if (log_format == "text") {
    overrides.log_format = fieldsync::v1::LOG_FORMAT_TEXT;
  } else if (!log_format.empty()) {
    std::cerr << "fieldsyncd: config: log.format (--log_format): want text or json, got \""
              << log_format << "\"\n";
    return 2;
  }

  const std::string demo = absl::GetFlag(FLAGS_demo);
  if (!demo.empty() && demo != "county" && demo != "province") {
    std::cerr << "fieldsyncd: --demo: want county or province, got \"" << demo << "\"\n";
    return 2;
  }
  fieldsync::server::DemoProvinceOptions province_options;
  if (demo == "province") {
    if (absl::Status size = fieldsync::server::ParseDemoProvinceSize(
            absl::GetFlag(FLAGS_demo_province_size), &province_options);
        !size.ok()) {
      std::cerr << "fieldsyncd: " << size.message() << "\n";
      return 2;
    }
  }

  auto config = fieldsync::server::LoadServerConfig(absl::GetFlag(FLAGS_config), overrides);
  if (!config.ok()) {
    std::cerr << "fieldsyncd: " << config.status().message() << "\n";
    return 2;
  }
  fieldsync::server::InitLogging(config->log());
  if (!demo.empty() && !config->tls().cert_file().empty()) {
    // The demo talks to the server over a plaintext loopback channel.
    std::cerr << "fieldsyncd: --demo needs a plaintext listener (tls.cert_file is set)\n";
    return 2;
  }

  const absl::Duration grace = absl::Milliseconds(config->shutdown_grace_ms());
  auto server = fieldsync::server::FieldsyncServer::Start(*config);
  if (!server.ok()) {
    spdlog::critical("cannot start: {}", std::string(server.status().message()));
    return 1;
  }
  if (std::optional<std::string> token = (*server)->first_admin_token()) {
    std::cout << "first admin token: " << *token << "\n"
              << "(also written to " << config->data_dir() << "/"
              << fieldsync::server::kAdminTokenFileName << ", mode 0600)" << std::endl;
  }
  if (!demo.empty()) {
    if (std::optional<std::string> token = (*server)->first_admin_token()) {
      std::string host = HostOf(config->listen());
      if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
      if (host == "[::]") host = "[::1]";
      const std::string target = host + ":" + std::to_string((*server)->port());
      const std::string token_file =
          config->data_dir() + "/" + fieldsync::server::kAdminTokenFileName;
      absl::Status loaded;
      if (demo == "province") {
        province_options.target = target;
        province_options.admin_token = *token;
        province_options.areas_csv_path = absl::GetFlag(FLAGS_demo_areas_csv);
        province_options.progress = [](const std::string& line) {
          std::cout << line << std::endl;
        };
        absl::StatusOr<fieldsync::server::DemoProvinceSummary> summary =
            fieldsync::server::LoadDemoProvince(province_options);
        if (summary.ok()) {
          std::cout << fieldsync::server::DemoProvinceSummaryText(*summary, token_file)
                    << std::flush;
        }
        loaded = summary.status();
      } else {
        fieldsync::server::DemoCountyOptions demo_options;
        demo_options.target = target;
        demo_options.admin_token = *token;
        demo_options.areas_csv_path = absl::GetFlag(FLAGS_demo_areas_csv);
        demo_options.county_code = absl::GetFlag(FLAGS_demo_county);
        absl::StatusOr<fieldsync::server::DemoSummary> summary =
            fieldsync::server::LoadDemoCounty(demo_options);
        if (summary.ok()) {
          std::cout << fieldsync::server::DemoSummaryText(*summary, target, token_file,
                                                          absl::GetFlag(FLAGS_demo_fieldctl))
                    << std::flush;
        }
        loaded = summary.status();
      }
      if (!loaded.ok()) {
        spdlog::critical("{} (remove the data directory {} and start again)",
                         std::string(loaded.message()), config->data_dir());
        (*server)->Shutdown(absl::Now() + grace);
        (*server)->Wait();
        server->reset();
        return 1;
      }
    } else {
      spdlog::info("--demo={}: the store is not new; nothing loaded", demo);
    }
  }
  if ((*server)->metrics_port() != 0) {
    std::cout << "metrics listening on " << HostOf(config->metrics_listen()) << ":"
              << (*server)->metrics_port() << std::endl;
  }
  std::cout << "fieldsyncd listening on " << HostOf(config->listen()) << ":" << (*server)->port()
            << std::endl;

  std::thread waiter([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    spdlog::info("received signal {}: shutting down (grace {})", signal,
                 absl::FormatDuration(grace));
    (*server)->Shutdown(absl::Now() + grace);
  });
  (*server)->Wait();
  waiter.join();
  server->reset();
  return 0;
}
