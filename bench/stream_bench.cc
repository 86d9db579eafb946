// stream_bench: StreamService.Subscribe catch-up throughput for 1 and for N
// concurrent subscribers over a log of --events stored events, set against
// the raw gRPC stream ceiling measured in the same run, plus the live-tail
// latency from commit to consumer under an append load.
//
//   load     --events VisitRecorded events (about 330 bytes each, realistic
//   (untimed) fields) appended straight through the EventStore API, 10,000 an
//            Append, after the services were created over the store.
//   raw      the ceiling: a bare callback server (no store, no filter, no
//            auth) streams the same bytes: batches cut from the first
//            records of the log with the same encoder and bounds as the real
//            service (server/stream_wire.h), cycled until --events events
//            were sent; one write in flight, the next from OnWriteDone.
//   catchup  the real StreamService (in process, real gRPC over TCP on
//            127.0.0.1, port 0) as an admin: Subscribe from offset 0 until
//            caught_up; 1 subscriber, then --subscribers at once, each on
//            its own connection. Events counted from the wire (batches are
//            walked, events not parsed) on both sides, so the client's
//            parsing is not what is measured; every run checks its count.
//   live     one subscriber at the head while a thread appends
//            --live_rate events/s in appends of --live_batch for
//            --live_seconds; latency = the consumer's receipt minus the
//            commit (the store's head listener, called by the committer
//            after the group is durable), per event.
//
// One JSON document on stdout (progress on stderr); key `ratio` = catch-up
// events/s of one subscriber over the raw ceiling's. Exit 0 whether or not a
// goal is met; 1 if a phase could not run; 2 on a bad flag.
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "fieldsync/v1/stream_service.grpc.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "server/metrics.h"
#include "server/server_state.h"
#include "server/services.h"
#include "server/stream_wire.h"
#include "storage/event_store.h"
#include "sync/event_codec.h"

namespace fieldsync::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  size_t events = 1000000;
  size_t subscribers = 8;
  double live_seconds = 5;
  size_t live_rate = 20000;
  size_t live_batch = 50;
  uint32_t batch_events = 0;  // 0: the server's default.
  uint32_t batch_bytes = 0;
};

bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> const char* {
      std::string prefix = absl::StrCat("--", name, "=");
      return arg.rfind(prefix, 0) == 0 ? argv[i] + prefix.size() : nullptr;
    };
    const char* v;
    bool ok = true;
    if ((v = value("events"))) {
      ok = absl::SimpleAtoi(v, &flags->events);
    } else if ((v = value("subscribers"))) {
      ok = absl::SimpleAtoi(v, &flags->subscribers);
    } else if ((v = value("live_seconds"))) {
      ok = absl::SimpleAtod(v, &flags->live_seconds);
    } else if ((v = value("live_rate"))) {
      ok = absl::SimpleAtoi(v, &flags->live_rate);
    } else if ((v = value("live_batch"))) {
      ok = absl::SimpleAtoi(v, &flags->live_batch);
    } else if ((v = value("batch_events"))) {
      ok = absl::SimpleAtoi(v, &flags->batch_events);
    } else if ((v = value("batch_bytes"))) {
      ok = absl::SimpleAtoi(v, &flags->batch_bytes);
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "bad flag %s\n", arg.c_str());
      return false;
    }
  }
  return flags->events > 0 && flags->subscribers > 0 && flags->live_batch > 0;
}

// A realistic pushed visit as the engine stores it.
sync::LoggedEvent MakeEvent(size_t i) {
  sync::LoggedEvent logged;
  v1::StoredEvent& stored = logged.stored;
  v1::Event& event = logged.parsed;
  event.set_event_id(absl::StrFormat("%08x-bench-4000-8000-%012x", i / 7, i));
  event.set_device_id(absl::StrCat("dev-", i % 400));
  event.set_device_seq(i / 400 + 1);
  event.set_hlc((uint64_t{1764547200000} + i) << 16);
  event.mutable_device_time()->set_seconds(1764547200 + static_cast<int64_t>(i / 100));
  event.mutable_location()->set_lat(36.06 + (i % 1000) * 1e-5);
  event.mutable_location()->set_lng(103.83 + (i % 997) * 1e-5);
  event.mutable_subject()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
  event.mutable_subject()->set_id(absl::StrFormat("11111111-1111-4111-8111-%012d", i % 50000));
  event.set_area_code(absl::StrFormat("620102%03d%03d", 1 + i % 20, 1 + i % 30));
  event.mutable_visit_recorded()->set_notes("走訪了解家庭收入與幫扶措施落實情況");
  stored.set_event(event.SerializeAsString());
  stored.set_signature(std::string(64, static_cast<char>('s' + i % 7)));
  stored.mutable_received_at()->set_seconds(1764547300 + static_cast<int64_t>(i / 100));
  stored.set_actor(absl::StrCat("cadre-", i % 400));
  stored.set_adopted_hlc(event.hlc());
  return logged;
}

absl::Status Load(storage::EventStore& store, size_t events, size_t first) {
  for (size_t done = 0; done < events;) {
    std::vector<storage::AppendEntry> entries;
    for (; entries.size() < 10000 && done < events; ++done) {
      const sync::LoggedEvent made = MakeEvent(first + done);
      entries.push_back(sync::ToAppendEntry(made.stored, made.parsed));
    }
    absl::StatusOr<std::vector<storage::AppendResult>> appended = store.Append(std::move(entries));
    if (!appended.ok()) return appended.status();
  }
  return absl::OkStatus();
}

// What a subscriber saw on the wire.
struct WireCount {
  size_t events = 0;
  size_t batches = 0;
  uint64_t last_offset = 0;  // The last batch's through_offset.
  bool caught_up = false;
};

// Walks one SubscribeResponse: counts the batch's events without parsing
// them, and `offsets` (if not null) gets each event's offset.
bool CountMessage(grpc::ByteBuffer* buffer, WireCount* count, std::vector<uint64_t>* offsets) {
  grpc::ProtoBufferReader reader(buffer);
  google::protobuf::io::CodedInputStream in(&reader);
  uint32_t tag = in.ReadTag();
  if (tag == 0x12) {  // caught_up
    count->caught_up = true;
    return true;
  }
  if (tag != 0x22) return true;  // A heartbeat.
  uint32_t length;
  if (!in.ReadVarint32(&length)) return false;
  auto limit = in.PushLimit(static_cast<int>(length));
  ++count->batches;
  while (uint32_t field = in.ReadTag()) {
    if (field == 0x0A) {
      uint32_t size;
      if (!in.ReadVarint32(&size)) return false;
      if (offsets == nullptr) {
        if (!in.Skip(static_cast<int>(size))) return false;
      } else {
        // The offset is in the frame the server appends after the payload:
        // parse the event's top level for it.
        auto event_limit = in.PushLimit(static_cast<int>(size));
        uint64_t offset = 0;
        while (uint32_t t = in.ReadTag()) {
          if (t == 0x10) {
            if (!in.ReadVarint64(&offset)) return false;
          } else if (!google::protobuf::internal::WireFormatLite::SkipField(&in, t)) {
            return false;
          }
        }
        in.PopLimit(event_limit);
        offsets->push_back(offset);
      }
      ++count->events;
    } else if (field == 0x10) {
      if (!in.ReadVarint64(&count->last_offset)) return false;
    } else if (!google::protobuf::internal::WireFormatLite::SkipField(&in, field)) {
      return false;
    }
  }
  in.PopLimit(limit);
  return true;
}

std::shared_ptr<grpc::Channel> Connect(int port, int id) {
  grpc::ChannelArguments args;
  args.SetInt("fieldsync.bench.connection", id);  // One TCP connection each.
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

// Reads a Subscribe stream raw until caught_up (or `stop_after` events).
struct Subscription {
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader;
};

Subscription OpenRaw(grpc::Channel& channel, const std::string& token,
                     const v1::SubscribeRequest& request) {
  static const grpc::internal::RpcMethod method("/fieldsync.v1.StreamService/Subscribe",
                                                grpc::internal::RpcMethod::SERVER_STREAMING);
  Subscription subscription;
  subscription.context = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) subscription.context->AddMetadata("authorization", "Bearer " + token);
  grpc::ByteBuffer raw = server::stream::SerializeToBuffer(request);
  subscription.reader.reset(grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
      &channel, method, subscription.context.get(), raw));
  return subscription;
}

WireCount CatchUp(grpc::Channel& channel, const std::string& token,
                  const v1::SubscribeRequest& request, grpc::Status* status) {
  Subscription subscription = OpenRaw(channel, token, request);
  WireCount count;
  grpc::ByteBuffer buffer;
  while (!count.caught_up && subscription.reader->Read(&buffer)) {
    if (!CountMessage(&buffer, &count, nullptr)) break;
  }
  if (count.caught_up) {
    subscription.context->TryCancel();
    while (subscription.reader->Read(&buffer)) {
    }
    *status = grpc::Status::OK;
    subscription.reader->Finish();
  } else {
    *status = subscription.reader->Finish();
  }
  return count;
}

// The raw ceiling: streams `batches` in a cycle until `events` events went.
class RawReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  RawReactor(const std::vector<grpc::ByteBuffer>* batches, size_t per_batch, size_t events,
             grpc::ByteBuffer caught_up)
      : batches_(batches), per_batch_(per_batch), left_(events), caught_up_(caught_up) {
    Next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::CANCELLED);
      return;
    }
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    if (left_ == 0) {
      if (!marker_sent_) {
        marker_sent_ = true;
        StartWrite(&caught_up_);
        return;
      }
      Finish(grpc::Status::OK);
      return;
    }
    current_ = (*batches_)[next_++ % batches_->size()];
    left_ -= std::min(left_, per_batch_);
    StartWrite(&current_);
  }
  const std::vector<grpc::ByteBuffer>* batches_;
  const size_t per_batch_;
  size_t left_;
  size_t next_ = 0;
  bool marker_sent_ = false;
  grpc::ByteBuffer current_;
  grpc::ByteBuffer caught_up_;
};

class RawService final
    : public v1::StreamService::WithRawCallbackMethod_Subscribe<v1::StreamService::Service> {
 public:
  RawService(std::vector<grpc::ByteBuffer> batches, size_t per_batch, size_t events)
      : batches_(std::move(batches)), per_batch_(per_batch), events_(events) {}
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Subscribe(grpc::CallbackServerContext*,
                                                        const grpc::ByteBuffer*) override {
    v1::SubscribeResponse marker;
    marker.mutable_caught_up()->set_head_offset(events_);
    return new RawReactor(&batches_, per_batch_, events_, server::stream::SerializeToBuffer(marker));
  }

 private:
  const std::vector<grpc::ByteBuffer> batches_;
  const size_t per_batch_;
  const size_t events_;
};

struct Run {
  double seconds = 0;
  size_t events = 0;
  bool ok = true;
  double rate() const { return seconds > 0 ? events / seconds : 0; }
};

// `n` subscribers at once, each on its own connection.
Run Subscribers(int port, const std::string& token, size_t n, const v1::SubscribeRequest& request,
                size_t expected) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (size_t i = 0; i < n; ++i) channels.push_back(Connect(port, static_cast<int>(i)));
  for (auto& channel : channels) channel->WaitForConnected(std::chrono::system_clock::now() +
                                                           std::chrono::seconds(10));
  std::vector<WireCount> counts(n);
  std::vector<grpc::Status> statuses(n);
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] { counts[i] = CatchUp(*channels[i], token, request, &statuses[i]); });
  }
  for (std::thread& thread : threads) thread.join();
  Run run;
  run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (size_t i = 0; i < n; ++i) {
    run.events += counts[i].events;
    if (!statuses[i].ok() || counts[i].events != expected) {
      std::fprintf(stderr, "subscriber %zu: %zu events of %zu, status %d %s\n", i,
                   counts[i].events, expected, statuses[i].error_code(),
                   statuses[i].error_message().c_str());
      run.ok = false;
    }
  }
  return run;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t at = std::min(values.size() - 1, static_cast<size_t>(p * (values.size() - 1) + 0.5));
  return values[at];
}

int Main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  const std::string dir =
      (std::filesystem::temp_directory_path() / absl::StrCat("stream_bench.", getpid())).string();
  std::filesystem::create_directories(dir);
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};

  absl::StatusOr<std::unique_ptr<storage::EventStore>> opened =
      storage::OpenEventStore(dir + "/db");
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  storage::EventStore& store = **opened;
  v1::ServerConfig config;
  config.set_data_dir(dir);
  server::ServerState state;
  server::MetricsRegistry metrics;
  server::ServiceDeps deps;
  deps.store = &store;
  deps.config = &config;
  deps.state = &state;
  deps.metrics = &metrics;
  absl::StatusOr<std::unique_ptr<server::ServiceSet>> services = server::CreateServices(deps);
  if (!services.ok() || !(*services)->first_admin_token()) {
    std::fprintf(stderr, "services: %s\n", services.status().ToString().c_str());
    return 1;
  }
  const std::string token = *(*services)->first_admin_token();

  std::fprintf(stderr, "loading %zu events...\n", flags.events);
  const uint64_t before = store.Head();
  const auto load_start = Clock::now();
  if (absl::Status loaded = Load(store, flags.events, 0); !loaded.ok()) {
    std::fprintf(stderr, "load: %s\n", loaded.ToString().c_str());
    return 1;
  }
  const double load_seconds = std::chrono::duration<double>(Clock::now() - load_start).count();
  const size_t total = before + flags.events;  // Every record is an event (no markers).

  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  for (grpc::Service* service : (*services)->services()) builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) return 1;

  // The raw ceiling's batches: the first records of the log, cut by the
  // same encoder and bounds as the service uses.
  const size_t per_batch = flags.batch_events == 0 ? 4096 : flags.batch_events;
  const size_t batch_bytes = flags.batch_bytes == 0 ? (1 << 20) : flags.batch_bytes;
  std::vector<grpc::ByteBuffer> raw_batches;
  size_t raw_per_batch = 0;
  {
    absl::StatusOr<std::vector<storage::LogRecord>> records =
        store.ReadAfter(before, storage::ReadLimits{.max_records = 16 * per_batch,
                                                    .max_bytes = 64 << 20});
    if (!records.ok() || records->empty()) return 1;
    // Full batches only (the last, shorter one is left out), so that every
    // raw batch carries raw_per_batch events.
    size_t at = 0;
    while (at < records->size() && raw_batches.size() < 16) {
      server::stream::BatchBuilder batch(per_batch, batch_bytes);
      while (at < records->size() && batch.Fits(server::stream::EncodedSize((*records)[at]))) {
        batch.Add((*records)[at++]);
      }
      if (at == records->size() && !raw_batches.empty()) break;
      if (raw_per_batch == 0) raw_per_batch = batch.events();
      if (batch.events() != raw_per_batch) break;
      raw_batches.push_back(batch.Finish((*records)[at - 1].offset));
    }
  }
  RawService raw_service(raw_batches, raw_per_batch, total);
  int raw_port = 0;
  grpc::ServerBuilder raw_builder;
  raw_builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &raw_port);
  raw_builder.RegisterService(&raw_service);
  std::unique_ptr<grpc::Server> raw_server = raw_builder.BuildAndStart();
  if (raw_server == nullptr) return 1;
  // The raw stream sends whole batches: its event count rounds up to them.
  const size_t raw_expected = (total + raw_per_batch - 1) / raw_per_batch * raw_per_batch;

  v1::SubscribeRequest request;
  request.set_max_batch_events(flags.batch_events);
  request.set_max_batch_bytes(flags.batch_bytes);

  std::fprintf(stderr, "raw ceiling, 1 subscriber...\n");
  Run raw1 = Subscribers(raw_port, "", 1, request, raw_expected);
  std::fprintf(stderr, "fieldsync, 1 subscriber...\n");
  Run one = Subscribers(port, token, 1, request, total);
  std::fprintf(stderr, "raw ceiling, %zu subscribers...\n", flags.subscribers);
  Run rawn = Subscribers(raw_port, "", flags.subscribers, request, raw_expected);
  std::fprintf(stderr, "fieldsync, %zu subscribers...\n", flags.subscribers);
  Run many = Subscribers(port, token, flags.subscribers, request, total);

  // Live tail: commit instants from the head listener, receipt instants
  // from the consumer.
  std::fprintf(stderr, "live tail, %zu events/s for %.1f s...\n", flags.live_rate,
               flags.live_seconds);
  const uint64_t live_from = store.Head();
  const size_t live_events = static_cast<size_t>(flags.live_rate * flags.live_seconds);
  std::vector<Clock::time_point> committed(live_events + flags.live_batch + 1);
  std::atomic<uint64_t> stamped{live_from};
  const uint64_t listener = store.AddHeadListener([&](uint64_t head) {
    const auto now = Clock::now();
    for (uint64_t offset = stamped.load() + 1; offset <= head; ++offset) {
      if (offset - live_from - 1 < committed.size()) committed[offset - live_from - 1] = now;
    }
    stamped.store(head);
  });
  std::vector<double> latencies_ms;
  grpc::Status live_status;
  {
    std::shared_ptr<grpc::Channel> channel = Connect(port, 1000);
    v1::SubscribeRequest live_request = request;
    live_request.set_from_offset(live_from);
    Subscription subscription = OpenRaw(*channel, token, live_request);
    WireCount count;
    grpc::ByteBuffer buffer;
    while (!count.caught_up && subscription.reader->Read(&buffer)) {
      CountMessage(&buffer, &count, nullptr);
    }
    std::thread load([&] {
      const auto start = Clock::now();
      const double interval = static_cast<double>(flags.live_batch) / flags.live_rate;
      for (size_t done = 0, round = 0; done < live_events; ++round) {
        std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(
                                                  std::chrono::duration<double>(round * interval)));
        const size_t n = std::min(flags.live_batch, live_events - done);
        if (!Load(store, n, flags.events + done).ok()) break;
        done += n;
      }
    });
    std::vector<uint64_t> offsets;
    size_t received = 0;
    while (received < live_events && subscription.reader->Read(&buffer)) {
      offsets.clear();
      WireCount batch;
      CountMessage(&buffer, &batch, &offsets);
      const auto now = Clock::now();
      for (uint64_t offset : offsets) {
        const uint64_t index = offset - live_from - 1;
        if (index < committed.size() && offset <= stamped.load()) {
          latencies_ms.push_back(
              std::chrono::duration<double, std::milli>(now - committed[index]).count());
        }
      }
      received += offsets.size();
    }
    load.join();
    subscription.context->TryCancel();
    while (subscription.reader->Read(&buffer)) {
    }
    live_status = subscription.reader->Finish();
  }
  store.RemoveHeadListener(listener);

  raw_server->Shutdown(std::chrono::system_clock::now());
  state.BeginDrain();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));

  const double ratio1 = raw1.rate() > 0 ? one.rate() / raw1.rate() : 0;
  const double ration = rawn.rate() > 0 ? many.rate() / rawn.rate() : 0;
  const double p50 = Percentile(latencies_ms, 0.50);
  const double p99 = Percentile(latencies_ms, 0.99);
  std::printf(
      "{\n"
      "  \"benchmark\": \"stream_bench\",\n"
      "  \"events\": %zu,\n"
      "  \"load_events_per_s\": %.0f,\n"
      "  \"batch_events\": %zu,\n"
      "  \"batch_bytes\": %zu,\n"
      "  \"raw_1_events_per_s\": %.0f,\n"
      "  \"catchup_1_events_per_s\": %.0f,\n"
      "  \"catchup_1_ok\": %s,\n"
      "  \"raw_%zu_events_per_s\": %.0f,\n"
      "  \"catchup_%zu_events_per_s\": %.0f,\n"
      "  \"catchup_%zu_ok\": %s,\n"
      "  \"ratio_%zu\": %.3f,\n"
      "  \"live_rate_events_per_s\": %zu,\n"
      "  \"live_events_measured\": %zu,\n"
      "  \"live_p50_ms\": %.2f,\n"
      "  \"live_p99_ms\": %.2f,\n"
      "  \"goals\": {\"catchup_1_events_per_s\": 1000000, \"ratio\": 0.5, "
      "\"catchup_%zu_events_per_s\": 1500000, \"live_p99_ms\": 50},\n"
      "  \"ratio\": %.3f\n"
      "}\n",
      total, load_seconds > 0 ? flags.events / load_seconds : 0, per_batch, batch_bytes,
      raw1.rate(), one.rate(), one.ok ? "true" : "false", flags.subscribers, rawn.rate(),
      flags.subscribers, many.rate(), flags.subscribers, many.ok ? "true" : "false",
      flags.subscribers, ration, flags.live_rate, latencies_ms.size(), p50, p99,
      flags.subscribers, ratio1);
  return one.ok && many.ok ? 0 : 1;
}

}  // namespace
}  // namespace fieldsync::bench

int main(int argc, char** argv) { return fieldsync::bench::Main(argc, argv); }
