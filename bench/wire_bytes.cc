// wire_bytes: bytes on the wire per typical visit pushed and acknowledged, and
// per pulled event (issue 9, "Bytes on the wire"), measured through a real
// gRPC connection to a real fieldsyncd, next to the same visit as
// CouchDB-style JSON.
//
// The bench starts the built fieldsyncd with the demo county (--demo=county)
// on a temp directory and puts a small TCP proxy of its own between the
// client and the server, counting the bytes of each direction (TCP payload:
// HTTP/2 framing, HPACK headers, gRPC message prefixes and the messages, as
// they would cross a 2G link; TCP/IP headers not counted). The client is the
// SDK (clients/sdk) through its public API: a demo cadre's phone records
// visits (Client::Record) and pushes them (Client::PushOutbox), in batches of
// 1, 20 and 50 (ClientOptions::max_push_events), and the county staff's
// tablet pulls them (Client::Pull) after each batch. Whatever encoding the
// SDK uses is what is measured. Each configuration runs on its own fresh
// devices and its own connection; the connection's set-up (TCP accept,
// HTTP/2 preface and SETTINGS, up to the channel being READY) is reported
// apart and not in the per-visit figures.
//
//   compressed: the SDK's channel as it makes it (gzip requested on every
//               call; the server answers as it is configured).
//   not:        the same channel without gzip, and a client interceptor that
//               takes the SDK's per-call gzip request out of each call's
//               initial metadata, so the same calls go uncompressed.
//
// The JSON side is the same recorded visits (the phone's first run; each
// Event as proto3 JSON, with CouchDB's `_id` and a `type`) in a POST /fieldsync/_bulk_docs body
// {"docs":[...]} of the same batch sizes, and CouchDB's answer
// [{"ok":true,"id":...,"rev":"1-<32 hex>"},...], each with its HTTP/1.1
// request or status line and headers, gzip (zlib, default level, both
// bodies, Content-Encoding: gzip) and not.
//
// Output: one JSON document on stdout; `ratio` = fieldsync bytes per visit
// (push + acknowledgement, both directions, compressed, batches of 50) / the
// JSON form's (gzip, batches of 50); `goal_180_met` = that fieldsync figure
// is at most 180 bytes. Progress goes to stderr.
//
//   wire_bytes [--fieldsyncd PATH] [--visits N] [--dir DIR]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <grpc/compression.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_interceptor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "clients/sdk/client.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"

extern char** environ;

namespace fieldsync::bench {
namespace {

void Progress(const std::string& line) { std::fprintf(stderr, "wire_bytes: %s\n", line.c_str()); }

// ---------------------------------------------------------------------------
// The counting proxy: accepts on 127.0.0.1:0 and relays every connection to
// `target_port`, adding each direction's bytes to its counter.
class CountingProxy {
 public:
  std::atomic<uint64_t> up{0};    // client -> server
  std::atomic<uint64_t> down{0};  // server -> client

  absl::Status Start(int target_port) {
    target_port_ = target_port;
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 16) != 0) {
      return absl::InternalError(absl::StrCat("proxy listen: ", strerror(errno)));
    }
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    // Detached: they end with the process (the bench exits after printing).
    std::thread([this] { AcceptLoop(); }).detach();
    return absl::OkStatus();
  }
  int port() const { return port_; }
  uint64_t total() const { return up + down; }

 private:
  void AcceptLoop() {
    while (true) {
      const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) {
        if (errno == EINTR) continue;
        return;
      }
      const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(target_port_));
      if (server < 0 || ::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(client);
        if (server >= 0) ::close(server);
        continue;
      }
      std::thread([this, client, server] { Relay(client, server); }).detach();
    }
  }

  void Relay(int client, int server) {
    pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    char buffer[65536];
    bool open = true;
    while (open) {
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int i = 0; i < 2 && open; ++i) {
        if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
        if (n <= 0) {
          open = false;
          break;
        }
        (i == 0 ? up : down) += static_cast<uint64_t>(n);
        const int to = i == 0 ? server : client;
        for (ssize_t sent = 0; sent < n;) {
          const ssize_t w = ::write(to, buffer + sent, static_cast<size_t>(n - sent));
          if (w <= 0) {
            open = false;
            break;
          }
          sent += w;
        }
      }
    }
    ::close(client);
    ::close(server);
  }

  int listen_fd_ = -1;
  int port_ = 0;
  int target_port_ = 0;
};

// ---------------------------------------------------------------------------
// fieldsyncd as a child process, with the demo county.
class Server {
 public:
  ~Server() { Stop(); }
  // SIGTERM and wait (fieldsyncd drains and exits).
  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

  absl::Status Start(const std::string& binary, const std::vector<std::string>& args,
                     const std::string& log_path) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> strings = {binary};
    strings.insert(strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& s : strings) argv.push_back(s.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) return absl::InternalError(absl::StrCat("cannot start ", binary, ": ", strerror(rc)));
    FILE* out = ::fdopen(fds[0], "r");
    char* line = nullptr;
    size_t size = 0;
    ssize_t n;
    while ((n = ::getline(&line, &size, out)) >= 0) {
      std::string text(line, static_cast<size_t>(n));
      if (!text.empty() && text.back() == '\n') text.pop_back();
      if (text.rfind("first admin token: ", 0) == 0) admin_token_ = text.substr(19);
      if (text.rfind("fieldsyncd listening on ", 0) == 0) {
        const std::string address = text.substr(24);
        if (!absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port_)) break;
        std::free(line);
        // Keep reading stdout so that the server never blocks on it.
        std::thread([out] {
          char buffer[4096];
          while (std::fread(buffer, 1, sizeof buffer, out) > 0) {
          }
        }).detach();
        return admin_token_.empty() ? absl::InternalError("no first admin token printed")
                                    : absl::OkStatus();
      }
    }
    std::free(line);
    return absl::InternalError(absl::StrCat("fieldsyncd exited before listening; see ", log_path));
  }
  int port() const { return port_; }
  const std::string& admin_token() const { return admin_token_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string admin_token_;
};

absl::StatusOr<std::string> IssueCode(const std::string& target, const std::string& token,
                                      const std::string& user) {
  auto admin = v1::AdminService::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + token);
  v1::IssueEnrollmentCodeRequest request;
  request.set_user_id(user);
  v1::IssueEnrollmentCodeResponse response;
  grpc::Status status = admin->IssueEnrollmentCode(&context, request, &response);
  if (!status.ok()) return absl::InternalError("IssueEnrollmentCode: " + status.error_message());
  return response.code();
}

// ---------------------------------------------------------------------------
// Counting and gzip helpers.

std::string Gzip(const std::string& data) {
  z_stream z{};
  deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, data.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

struct PushFigures {
  int batch = 0;
  bool compressed = false;
  uint64_t visits = 0;
  uint64_t setup_bytes = 0;  // the phone's connection, up to READY
  uint64_t push_up = 0, push_down = 0;
  uint64_t pulled_events = 0, pull_up = 0, pull_down = 0;
  double PerVisit() const { return static_cast<double>(push_up + push_down) / visits; }
  double PerPulled() const {
    return pulled_events == 0 ? 0 : static_cast<double>(pull_up + pull_down) / pulled_events;
  }
};

// Takes the SDK's per-call gzip request (ClientContext::
// set_compression_algorithm puts it in the initial metadata) off every call:
// the channel's enabled-algorithms argument alone switches only the
// channel's default off, not a call's request.
class NoCompression : public grpc::experimental::Interceptor {
 public:
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->erase("grpc-internal-encoding-request");
    }
    methods->Proceed();
  }
};
class NoCompressionFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new NoCompression();
  }
};

// The channel of a configuration: the SDK's own (gzip), or the same with
// compression off. A channel argument of its own per run keeps gRPC from
// sharing a connection between runs.
std::shared_ptr<grpc::Channel> ChannelFor(const std::string& target, bool compressed, int run) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
  args.SetInt("fieldsync.bench.run", run);
  if (compressed) {
    args.SetCompressionAlgorithm(GRPC_COMPRESS_GZIP);
    return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  }
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<NoCompressionFactory>());
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      target, grpc::InsecureChannelCredentials(), args, std::move(factories));
}

absl::StatusOr<PushFigures> RunOne(const std::string& dir, const Server& server,
                                   CountingProxy& proxy, int batch, bool compressed, int visits,
                                   int run, std::vector<v1::Event>* recorded_visits) {
  PushFigures f;
  f.batch = batch;
  f.compressed = compressed;
  const std::string direct = absl::StrCat("127.0.0.1:", server.port());
  const std::string proxied = absl::StrCat("127.0.0.1:", proxy.port());

  auto open = [&](const std::string& name, const std::string& user,
                  std::shared_ptr<grpc::Channel> channel)
      -> absl::StatusOr<std::unique_ptr<client::Client>> {
    client::ClientOptions options;
    options.server = proxied;
    options.channel = std::move(channel);
    options.max_push_events = static_cast<uint32_t>(batch);
    auto c = client::Client::Open(absl::StrCat(dir, "/", name, "-", run, ".db"), options);
    if (!c.ok()) return c.status();
    auto code = IssueCode(direct, server.admin_token(), user);
    if (!code.ok()) return code.status();
    auto identity = (*c)->Enroll(*code, name);
    if (!identity.ok()) return identity.status();
    auto synced = (*c)->Sync();  // the initial state: households in scope
    if (!synced.ok()) return synced.status();
    return c;
  };

  // The phone's connection set-up, counted alone.
  auto phone_channel = ChannelFor(proxied, compressed, 2 * run);
  const uint64_t before_setup = proxy.total();
  if (!phone_channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    return absl::UnavailableError("the phone's channel did not connect");
  }
  f.setup_bytes = proxy.total() - before_setup;
  auto phone = open("phone", "demo-cadre-01", phone_channel);
  if (!phone.ok()) return phone.status();
  auto tablet = open("tablet", "demo-county-staff", ChannelFor(proxied, compressed, 2 * run + 1));
  if (!tablet.ok()) return tablet.status();
  auto households = (*phone)->Households();
  if (!households.ok() || households->empty()) {
    return absl::FailedPreconditionError("the demo cadre's phone sees no household");
  }

  absl::Time start = absl::Now() - absl::Hours(24 * 30);
  for (int done = 0; done < visits;) {
    const int n = std::min(batch, visits - done);
    for (int i = 0; i < n; ++i, ++done) {
      const v1::Household& household = (*households)[static_cast<size_t>(done) % households->size()];
      v1::Event draft;
      draft.mutable_subject()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
      draft.mutable_subject()->set_id(household.id());
      // A typical visit: 50 minutes, a GPS fix near the dwelling, the
      // routine purpose, a line of notes, confirmed by the household head.
      const absl::Time begin = start + absl::Hours(3 * done);
      const absl::Time end = begin + absl::Minutes(50);
      v1::Location* at = draft.mutable_location();
      at->set_lat(household.location().lat() + 0.0002);
      at->set_lng(household.location().lng());
      at->set_accuracy_m(10);
      at->mutable_fix_time()->set_seconds(absl::ToUnixSeconds(end));
      v1::VisitRecorded* visit = draft.mutable_visit_recorded();
      visit->mutable_start_time()->set_seconds(absl::ToUnixSeconds(begin));
      visit->mutable_end_time()->set_seconds(absl::ToUnixSeconds(end));
      visit->set_purpose(v1::VISIT_PURPOSE_ROUTINE);
      visit->set_notes("走访，了解生产生活情况");
      visit->set_household_confirmed(true);
      visit->set_confirmer_name("户主");
      auto recorded = (*phone)->Record(draft);
      if (!recorded.ok()) return recorded.status();
      if (recorded_visits != nullptr) recorded_visits->push_back(*recorded);
    }
    client::SyncReport report;
    uint64_t up = proxy.up, down = proxy.down;
    if (absl::Status s = (*phone)->PushOutbox(report); !s.ok()) return s;
    f.push_up += proxy.up - up;
    f.push_down += proxy.down - down;
    if (report.accepted != static_cast<uint32_t>(n)) {
      return absl::InternalError(
          absl::StrCat("pushed ", n, " visits, ", report.accepted, " accepted"));
    }
    client::SyncReport pulled;
    up = proxy.up, down = proxy.down;
    if (absl::Status s = (*tablet)->Pull(pulled); !s.ok()) return s;
    f.pull_up += proxy.up - up;
    f.pull_down += proxy.down - down;
    f.pulled_events += pulled.pulled_events;
  }
  f.visits = static_cast<uint64_t>(visits);
  return f;
}

// ---------------------------------------------------------------------------
// The CouchDB-style form of the same visits.

struct JsonFigures {
  int batch = 0;
  bool gzip = false;
  double request_per_visit = 0, response_per_visit = 0;
  double PerVisit() const { return request_per_visit + response_per_visit; }
};

// The visits (distinct, as recorded by the phone) in _bulk_docs requests of
// `batch` docs each; figures per visit over all of them.
JsonFigures JsonForm(const std::vector<v1::Event>& visits, int batch, bool gzip) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  uint64_t request_bytes = 0, response_bytes = 0;
  for (size_t from = 0; from < visits.size(); from += static_cast<size_t>(batch)) {
    std::string docs = "{\"docs\":[";
    std::string answer = "[";
    const size_t to = std::min(visits.size(), from + static_cast<size_t>(batch));
    for (size_t i = from; i < to; ++i) {
      const v1::Event& event = visits[i];
      std::string json;
      (void)google::protobuf::util::MessageToJsonString(event, &json, options);
      // The same visit carries the same proof of origin: a 64-byte Ed25519
      // signature (base64, as JSON stores bytes). The SDK's recorded Event has
      // none (the signature travels beside the bytes), so 64 pseudo-random
      // bytes stand in: a real signature is as incompressible.
      std::string signature(64, '\0');
      std::mt19937_64 noise(i + 1);
      for (size_t w = 0; w < signature.size(); w += 8) {
        const uint64_t word = noise();
        std::memcpy(signature.data() + w, &word, 8);
      }
      absl::StrAppend(&docs, i > from ? "," : "", "{\"_id\":\"", event.event_id(),
                      "\",\"type\":\"visit\",\"signature\":\"", absl::Base64Escape(signature),
                      "\",", json.substr(1));
      // CouchDB's first revision: "1-" and the MD5 of the body (32 hex).
      absl::StrAppend(&answer, i > from ? "," : "", "{\"ok\":true,\"id\":\"", event.event_id(),
                      "\",\"rev\":\"1-",
                      absl::StrFormat("%016x%016x", std::hash<std::string>()(json),
                                      std::hash<std::string>()(event.event_id())),
                      "\"}");
    }
    absl::StrAppend(&docs, "]}");
    absl::StrAppend(&answer, "]");
    const std::string request_body = gzip ? Gzip(docs) : docs;
    const std::string response_body = gzip ? Gzip(answer) : answer;
    const std::string request_head = absl::StrCat(
        "POST /fieldsync/_bulk_docs HTTP/1.1\r\nHost: 127.0.0.1:5984\r\n"
        "Authorization: Bearer fst_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG\r\n"
        "Content-Type: application/json\r\nContent-Length: ",
        request_body.size(), "\r\n",
        gzip ? "Content-Encoding: gzip\r\nAccept-Encoding: gzip\r\n" : "", "\r\n");
    const std::string response_head = absl::StrCat(
        "HTTP/1.1 201 Created\r\nServer: CouchDB/3.3.3 (Erlang OTP/24)\r\n"
        "Date: Tue, 01 Dec 2026 15:00:00 GMT\r\nContent-Type: application/json\r\n"
        "Content-Length: ",
        response_body.size(), "\r\nCache-Control: must-revalidate\r\n",
        gzip ? "Content-Encoding: gzip\r\n" : "", "\r\n");
    request_bytes += request_head.size() + request_body.size();
    response_bytes += response_head.size() + response_body.size();
  }
  JsonFigures f;
  f.batch = batch;
  f.gzip = gzip;
  f.request_per_visit = static_cast<double>(request_bytes) / visits.size();
  f.response_per_visit = static_cast<double>(response_bytes) / visits.size();
  return f;
}

int Main(int argc, char** argv) {
  std::string fieldsyncd = FIELDSYNC_FIELDSYNCD_PATH;
  std::string parent = std::filesystem::temp_directory_path().string();
  int visits = 100;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--fieldsyncd" && i + 1 < argc) {
      fieldsyncd = argv[++i];
    } else if (arg == "--dir" && i + 1 < argc) {
      parent = argv[++i];
    } else if (arg == "--visits" && i + 1 < argc && absl::SimpleAtoi(argv[i + 1], &visits) &&
               visits > 0) {
      ++i;
    } else {
      std::fprintf(stderr, "usage: wire_bytes [--fieldsyncd PATH] [--visits N] [--dir DIR]\n");
      return 2;
    }
  }
  const std::string dir = absl::StrCat(parent, "/wire_bytes_", ::getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/fieldsyncd.textproto")
      << "limits { device_requests_per_second: 100000 device_request_burst: 100000 }\n";
  Server server;
  absl::Status started = server.Start(
      fieldsyncd,
      {"--config=" + dir + "/fieldsyncd.textproto", "--data_dir=" + dir + "/data",
       "--listen=127.0.0.1:0", "--metrics_listen=off", "--demo=county",
       std::string("--demo_areas_csv=") + FIELDSYNC_AREAS_CSV},
      dir + "/fieldsyncd.log");
  if (!started.ok()) {
    std::fprintf(stderr, "wire_bytes: %s\n", std::string(started.message()).c_str());
    return 1;
  }
  Progress(absl::StrCat("fieldsyncd with the demo county on port ", server.port()));
  CountingProxy proxy;
  if (absl::Status s = proxy.Start(server.port()); !s.ok()) {
    std::fprintf(stderr, "wire_bytes: %s\n", std::string(s.message()).c_str());
    return 1;
  }

  std::vector<PushFigures> runs;
  std::vector<v1::Event> visits_recorded;  // of the first run: the JSON form's visits
  int run = 0;
  for (bool compressed : {true, false}) {
    for (int batch : {1, 20, 50}) {
      const int this_run = run++;
      auto figures = RunOne(dir, server, proxy, batch, compressed, visits, this_run,
                            this_run == 0 ? &visits_recorded : nullptr);
      if (!figures.ok()) {
        std::fprintf(stderr, "wire_bytes: batch %d%s: %s\n", batch,
                     compressed ? " compressed" : "", figures.status().ToString().c_str());
        return 1;
      }
      Progress(absl::StrFormat("batch %d %s: %.1f bytes per visit pushed, %.1f per pulled event",
                               batch, compressed ? "compressed" : "not compressed",
                               figures->PerVisit(), figures->PerPulled()));
      runs.push_back(*figures);
    }
  }

  std::string out = "{\n  \"bench\": \"wire_bytes\",\n  \"visits_per_run\": ";
  absl::StrAppend(&out, visits, ",\n  \"fieldsync\": [\n");
  const PushFigures* goal = nullptr;
  for (size_t i = 0; i < runs.size(); ++i) {
    const PushFigures& f = runs[i];
    if (f.compressed && f.batch == 50) goal = &f;
    absl::StrAppend(
        &out,
        absl::StrFormat(
            "    {\"batch\": %d, \"compressed\": %s, \"connection_setup_bytes\": %d, "
            "\"push_up_per_visit\": %.1f, \"ack_down_per_visit\": %.1f, \"per_visit\": %.1f, "
            "\"pulled_events\": %d, \"pull_per_event\": %.1f}%s\n",
            f.batch, f.compressed ? "true" : "false", f.setup_bytes,
            static_cast<double>(f.push_up) / f.visits, static_cast<double>(f.push_down) / f.visits,
            f.PerVisit(), f.pulled_events, f.PerPulled(), i + 1 < runs.size() ? "," : ""));
  }
  absl::StrAppend(&out, "  ],\n  \"couchdb_json\": [\n");
  const std::vector<int> batches = {1, 20, 50};
  JsonFigures json_goal;
  int k = 0;
  for (bool gzip : {true, false}) {
    for (int batch : batches) {
      JsonFigures f = JsonForm(visits_recorded, batch, gzip);
      if (gzip && batch == 50) json_goal = f;
      absl::StrAppend(&out,
                      absl::StrFormat("    {\"batch\": %d, \"gzip\": %s, \"request_per_visit\": "
                                      "%.1f, \"response_per_visit\": %.1f, \"per_visit\": %.1f}%s\n",
                                      batch, gzip ? "true" : "false", f.request_per_visit,
                                      f.response_per_visit, f.PerVisit(), ++k < 6 ? "," : ""));
    }
  }
  const double fieldsync_goal = goal->PerVisit();
  absl::StrAppend(
      &out, "  ],\n",
      absl::StrFormat("  \"fieldsync_per_visit_batch50_compressed\": %.1f,\n"
                      "  \"json_per_visit_batch50_gzip\": %.1f,\n"
                      "  \"ratio\": %.3f,\n  \"goal_bytes\": 180,\n  \"goal_180_met\": %s\n}\n",
                      fieldsync_goal, json_goal.PerVisit(), fieldsync_goal / json_goal.PerVisit(),
                      fieldsync_goal <= 180 ? "true" : "false"));
  std::fputs(out.c_str(), stdout);
  server.Stop();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace fieldsync::bench

int main(int argc, char** argv) { return fieldsync::bench::Main(argc, argv); }
