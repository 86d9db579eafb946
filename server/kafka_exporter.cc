#include "server/kafka_exporter.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <fstream>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "base/area_code.h"
#include "base/status_macros.h"
#include "fieldsync/v1/event.pb.h"
#include "sync/event_codec.h"

namespace fieldsync::server {
namespace {

// One log window: the exporter never holds more than this many records read
// and not yet produced, whatever max_in_flight_events allows.
constexpr size_t kWindowRecords = 1000;
constexpr size_t kWindowBytes = 4 << 20;

constexpr absl::Duration kFirstBackoff = absl::Seconds(1);
constexpr absl::Duration kMaxBackoff = absl::Seconds(30);

absl::Status ConfigError(absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("config: ", message));
}

// Properties the export's contract rests on, or that have a field of their
// own: kafka.properties may not set them.
bool ReservedProperty(absl::string_view key) {
  static const auto* const reserved = new absl::flat_hash_set<absl::string_view>{
      "bootstrap.servers",     "metadata.broker.list",     "client.id",
      "enable.idempotence",    "acks",                     "request.required.acks",
      "message.timeout.ms",    "delivery.timeout.ms",      "partitioner",
      "security.protocol",     "sasl.mechanism",           "sasl.mechanisms",
      "sasl.username",         "sasl.password",            "ssl.ca.location",
      "ssl.certificate.location", "ssl.key.location",      "batch.size",
      "linger.ms",             "queue.buffering.max.ms",   "enable.gapless.guarantee",
      "max.in.flight.requests.per.connection", "max.in.flight"};
  return reserved->contains(key);
}

bool IsSasl(std::string_view protocol) { return protocol.starts_with("SASL_"); }
bool IsSsl(std::string_view protocol) { return protocol.ends_with("SSL"); }

// The first line of `path` (the SASL password), without its line end.
absl::StatusOr<std::string> ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  if (!in) return ConfigError(absl::StrCat("kafka.sasl_password_file: cannot read ", path));
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) return ConfigError(absl::StrCat("kafka.sasl_password_file: ", path, " is empty"));
  return line;
}

// What the gauges read; shared with their closures, which may outlive the
// exporter (the registry lives as long as the server).
struct SharedState {
  std::atomic<uint64_t> head{0};
  std::atomic<uint64_t> exported{0};
  std::atomic<uint64_t> in_flight{0};
};

// A produced record, or a skipped one (a rejection marker: done at once),
// in log order.
struct Pending {
  uint64_t offset = 0;
  bool done = false;
};

class KafkaExporterImpl final : public KafkaExporter {
 public:
  KafkaExporterImpl(v1::KafkaConfig config, std::string sasl_password,
                    storage::EventStore* store, MetricsRegistry* metrics)
      : config_(std::move(config)),
        sasl_password_(std::move(sasl_password)),
        cursor_name_(KafkaCursorName(config_.topic())),
        store_(store),
        shared_(std::make_shared<SharedState>()) {
    delivered_ = metrics->Counter("fieldsync_kafka_delivered_total",
                                  "Events the Kafka brokers acknowledged (acks=all); its rate is "
                                  "the produce rate.",
                                  {});
    delivery_errors_ = metrics->Counter(
        "fieldsync_kafka_delivery_errors_total",
        "Events whose produce or delivery failed; the export resumes from the exported offset.",
        {"error"});
    client_errors_ = metrics->Counter(
        "fieldsync_kafka_errors_total",
        "Errors of the Kafka client (brokers down, authentication, fatal producer errors).",
        {"error"});
    restarts_ = metrics->Counter("fieldsync_kafka_producer_restarts_total",
                                 "Times the Kafka producer was made anew after an error.", {});
    std::shared_ptr<SharedState> shared = shared_;
    metrics->Gauge("fieldsync_kafka_exported_offset",
                   "Every event up to this log offset is delivered to Kafka.",
                   [shared] { return static_cast<double>(shared->exported.load()); });
    metrics->Gauge("fieldsync_kafka_lag_events",
                   "Log head minus the exported offset: records not yet delivered to Kafka.",
                   [shared] {
                     uint64_t head = shared->head.load(), exported = shared->exported.load();
                     return head > exported ? static_cast<double>(head - exported) : 0.0;
                   });
    metrics->Gauge("fieldsync_kafka_in_flight_events",
                   "Events produced to Kafka and not yet reported delivered.",
                   [shared] { return static_cast<double>(shared->in_flight.load()); });
  }

  ~KafkaExporterImpl() override { Stop(absl::Now()); }

  // Reads the cursor, makes the producer and starts the thread.
  absl::Status Begin() {
    ASSIGN_OR_RETURN(std::optional<uint64_t> cursor, store_->GetCursor(cursor_name_));
    const uint64_t head = store_->Head();
    uint64_t exported = cursor.value_or(0);
    if (exported > head) {
      spdlog::warn("kafka export: cursor {} is past the log head {}: exporting after the head",
                   exported, head);
      exported = head;
    }
    {
      // No other thread runs yet; the lock keeps the analysis (and a later
      // reader of exported_) honest.
      absl::MutexLock lock(&mu_);
      exported_ = exported;
    }
    written_cursor_ = cursor.value_or(0);
    next_read_ = exported;
    shared_->exported = exported;
    shared_->head = head;
    RETURN_IF_ERROR(MakeProducer());
    listener_id_ = store_->AddHeadListener([this](uint64_t new_head) {
      shared_->head.store(new_head, std::memory_order_release);
      absl::MutexLock lock(&mu_);
      woken_ = true;
    });
    spdlog::info("kafka export: to topic {} at {}, resuming after offset {} (log head {})",
                 config_.topic(), config_.brokers(), exported, head);
    thread_ = std::thread([this] { Run(); });
    return absl::OkStatus();
  }

  void Stop(absl::Time deadline) override {
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) return;
      stopped_ = true;
      stop_deadline_ = deadline;
      woken_ = true;
    }
    if (listener_id_ != 0) store_->RemoveHeadListener(listener_id_);
    if (thread_.joinable()) thread_.join();
    DestroyProducer();
  }

  uint64_t exported_offset() const override {
    absl::MutexLock lock(&mu_);
    return exported_;
  }

  bool WaitForExported(uint64_t offset, absl::Time deadline) const override {
    absl::MutexLock lock(&mu_);
    auto reached = [this, offset]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return exported_ >= offset;
    };
    return mu_.AwaitWithDeadline(absl::Condition(&reached), deadline);
  }

 private:
  // ---- The producer ----

  absl::Status Set(rd_kafka_conf_t* conf, const std::string& key, const std::string& value,
                   absl::string_view setting) {
    char error[512];
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof(error)) !=
        RD_KAFKA_CONF_OK) {
      return ConfigError(absl::StrCat(setting, ": ", error));
    }
    return absl::OkStatus();
  }

  absl::Status Configure(rd_kafka_conf_t* conf) {
    const v1::KafkaConfig& c = config_;
    RETURN_IF_ERROR(Set(conf, "bootstrap.servers", c.brokers(), "kafka.brokers"));
    RETURN_IF_ERROR(Set(conf, "client.id", c.client_id(), "kafka.client_id"));
    // The contract: no duplicate or reordering from the producer's own
    // retries, every replica has it before it counts, and no local timeout
    // (a message waits for the brokers however long they are down).
    RETURN_IF_ERROR(Set(conf, "enable.idempotence", "true", "kafka"));
    RETURN_IF_ERROR(Set(conf, "acks", "all", "kafka"));
    RETURN_IF_ERROR(Set(conf, "message.timeout.ms", "0", "kafka"));
    RETURN_IF_ERROR(Set(conf, "partitioner", "murmur2_random", "kafka"));
    RETURN_IF_ERROR(Set(conf, "batch.size", absl::StrCat(c.batch_size_bytes()),
                        "kafka.batch_size_bytes"));
    RETURN_IF_ERROR(Set(conf, "linger.ms", absl::StrCat(c.linger_ms()), "kafka.linger_ms"));
    // Room for every event the exporter lets be in flight.
    RETURN_IF_ERROR(Set(conf, "queue.buffering.max.messages",
                        absl::StrCat(std::max<uint32_t>(c.max_in_flight_events(), 1000)),
                        "kafka.max_in_flight_events"));
    RETURN_IF_ERROR(
        Set(conf, "security.protocol", c.security_protocol(), "kafka.security_protocol"));
    if (IsSasl(c.security_protocol())) {
      RETURN_IF_ERROR(Set(conf, "sasl.mechanism", c.sasl_mechanism(), "kafka.sasl_mechanism"));
      RETURN_IF_ERROR(Set(conf, "sasl.username", c.sasl_username(), "kafka.sasl_username"));
      RETURN_IF_ERROR(Set(conf, "sasl.password", sasl_password_, "kafka.sasl_password_file"));
    }
    if (!c.ssl_ca_file().empty()) {
      RETURN_IF_ERROR(Set(conf, "ssl.ca.location", c.ssl_ca_file(), "kafka.ssl_ca_file"));
    }
    if (!c.ssl_cert_file().empty()) {
      RETURN_IF_ERROR(
          Set(conf, "ssl.certificate.location", c.ssl_cert_file(), "kafka.ssl_cert_file"));
      RETURN_IF_ERROR(Set(conf, "ssl.key.location", c.ssl_key_file(), "kafka.ssl_key_file"));
    }
    for (const auto& [key, value] : c.properties()) {
      RETURN_IF_ERROR(Set(conf, key, value, absl::StrCat("kafka.properties[", key, "]")));
    }
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_dr_msg_cb(conf, &KafkaExporterImpl::OnDelivery);
    rd_kafka_conf_set_error_cb(conf, &KafkaExporterImpl::OnError);
    rd_kafka_conf_set_log_cb(conf, &KafkaExporterImpl::OnLog);
    return absl::OkStatus();
  }

  absl::Status MakeProducer() {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    if (absl::Status configured = Configure(conf); !configured.ok()) {
      rd_kafka_conf_destroy(conf);
      return configured;
    }
    char error[512];
    rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof(error));
    if (producer == nullptr) {
      rd_kafka_conf_destroy(conf);  // rd_kafka_new owns conf only on success.
      return ConfigError(absl::StrCat("kafka: cannot make the producer: ", error));
    }
    producer_ = producer;
    // The thread sleeps until the main queue (delivery reports, errors) has
    // something, a commit moved the head, or a timer is due.
    rd_kafka_queue_t* queue = rd_kafka_queue_get_main(producer_);
    rd_kafka_queue_cb_event_enable(queue, &KafkaExporterImpl::OnQueueEvent, this);
    rd_kafka_queue_destroy(queue);
    return absl::OkStatus();
  }

  // Purges what is queued or in flight, serves the purged reports (they
  // change nothing: Pending entries are dropped by the caller) and destroys
  // the producer.
  void DestroyProducer() {
    if (producer_ == nullptr) return;
    rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    discarding_ = true;
    while (rd_kafka_poll(producer_, 0) > 0) {
    }
    rd_kafka_queue_t* queue = rd_kafka_queue_get_main(producer_);
    rd_kafka_queue_cb_event_enable(queue, nullptr, nullptr);
    rd_kafka_queue_destroy(queue);
    rd_kafka_destroy(producer_);
    producer_ = nullptr;
    discarding_ = false;
    pending_.clear();
    in_flight_ = 0;
    shared_->in_flight = 0;
  }

  static void OnQueueEvent(rd_kafka_t*, void* opaque) {
    auto* self = static_cast<KafkaExporterImpl*>(opaque);
    absl::MutexLock lock(&self->mu_);
    self->woken_ = true;
  }

  // Delivery reports: served by rd_kafka_poll on the export thread.
  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
    static_cast<KafkaExporterImpl*>(opaque)->Delivered(
        static_cast<uint64_t>(reinterpret_cast<uintptr_t>(message->_private)), message->err);
  }

  static void OnError(rd_kafka_t* producer, int error, const char* reason, void* opaque) {
    auto* self = static_cast<KafkaExporterImpl*>(opaque);
    auto code = static_cast<rd_kafka_resp_err_t>(error);
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
      char fatal[512];
      code = rd_kafka_fatal_error(producer, fatal, sizeof(fatal));
      spdlog::error("kafka export: fatal producer error {}: {}; the producer is made anew",
                    rd_kafka_err2name(code), fatal);
      self->restart_needed_ = true;
    } else {
      spdlog::warn("kafka export: {}: {}", rd_kafka_err2name(code), reason);
    }
    self->client_errors_->Increment({rd_kafka_err2name(code)});
  }

  static void OnLog(const rd_kafka_t*, int level, const char* facility, const char* text) {
    // syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug.
    if (level <= 3) {
      spdlog::error("kafka: {}: {}", facility, text);
    } else if (level == 4) {
      spdlog::warn("kafka: {}: {}", facility, text);
    } else if (level <= 6) {
      spdlog::info("kafka: {}: {}", facility, text);
    } else {
      spdlog::debug("kafka: {}: {}", facility, text);
    }
  }

  void Delivered(uint64_t offset, rd_kafka_resp_err_t error) {
    if (discarding_) return;
    auto it = std::lower_bound(pending_.begin(), pending_.end(), offset,
                               [](const Pending& p, uint64_t o) { return p.offset < o; });
    if (it == pending_.end() || it->offset != offset || it->done) return;
    if (error != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // A permanent failure (retriable ones never reach here: no local
      // timeout). Everything from the first undelivered offset is sent again
      // by a new producer, so the topic never skips this event.
      // Logged once per producer: the events behind it fail alike.
      if (!restart_needed_) {
        spdlog::error(
            "kafka export: event at offset {} not delivered: {}; resending from offset {} with a "
            "new producer",
            offset, rd_kafka_err2str(error), exported_offset() + 1);
      }
      delivery_errors_->Increment({rd_kafka_err2name(error)});
      restart_needed_ = true;
      return;
    }
    it->done = true;
    --in_flight_;
    delivered_->Increment({});
    AdvanceExported();
  }

  // Pops the delivered prefix of pending_ and publishes the exported offset.
  void AdvanceExported() {
    uint64_t exported = 0;
    while (!pending_.empty() && pending_.front().done) {
      exported = pending_.front().offset;
      pending_.pop_front();
    }
    shared_->in_flight = in_flight_;
    if (exported == 0) return;
    shared_->exported = exported;
    absl::MutexLock lock(&mu_);
    exported_ = exported;
  }

  // ---- The thread ----

  void Run() {
    absl::Duration backoff = kFirstBackoff;
    absl::Time next_cursor = absl::Now() + CursorInterval();
    while (true) {
      absl::Time deadline;
      {
        absl::MutexLock lock(&mu_);
        if (stopped_) break;
        woken_ = false;
      }
      ServeEvents();
      if (restart_needed_) {
        RestartProducer(backoff);
        backoff = std::min(backoff * 2, kMaxBackoff);
        continue;
      }
      absl::Status read = ReadAndProduce();
      if (!read.ok()) {
        spdlog::warn("kafka export: reading the log after offset {}: {}; retrying in {}",
                     next_read_, read.ToString(), absl::FormatDuration(backoff));
        WaitFor(backoff);
        backoff = std::min(backoff * 2, kMaxBackoff);
        continue;
      }
      if (in_flight_ == 0 && !restart_needed_) backoff = kFirstBackoff;
      if (absl::Now() >= next_cursor) {
        WriteCursor();
        next_cursor = absl::Now() + CursorInterval();
      }
      // Sleep until a report or a commit arrives, or the cursor is due; with
      // room to read and records to read, do not sleep.
      if (HasWork()) continue;
      deadline = next_cursor;
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithDeadline(absl::Condition(&woken_), deadline);
    }
    Drain();
  }

  absl::Duration CursorInterval() const { return absl::Milliseconds(config_.cursor_interval_ms()); }

  bool HasWork() {
    return !restart_needed_ && pending_.size() < config_.max_in_flight_events() &&
           next_read_ < shared_->head.load(std::memory_order_acquire) && !queue_full_;
  }

  // Serves every queued delivery report and error.
  void ServeEvents() {
    queue_full_ = false;
    while (producer_ != nullptr && rd_kafka_poll(producer_, 0) > 0) {
    }
  }

  // Waits `duration` or until Stop.
  void WaitFor(absl::Duration duration) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopped_), duration);
  }

  void RestartProducer(absl::Duration backoff) {
    restarts_->Increment({});
    DestroyProducer();
    restart_needed_ = false;
    next_read_ = exported_offset();
    WaitFor(backoff);
    if (absl::Status made = MakeProducer(); !made.ok()) {
      // The settings made a producer at Start: this is unexpected.
      spdlog::error("kafka export: {}", made.ToString());
      restart_needed_ = true;
    }
  }

  // Reads one window after next_read_ and produces it, while in-flight room
  // lasts.
  absl::Status ReadAndProduce() {
    const size_t room = config_.max_in_flight_events() > pending_.size()
                            ? config_.max_in_flight_events() - pending_.size()
                            : 0;
    if (room == 0 || producer_ == nullptr) return absl::OkStatus();
    if (next_read_ >= shared_->head.load(std::memory_order_acquire)) return absl::OkStatus();
    storage::ReadLimits limits;
    limits.max_records = std::min(room, kWindowRecords);
    limits.max_bytes = kWindowBytes;
    ASSIGN_OR_RETURN(std::vector<storage::LogRecord> records,
                     store_->ReadAfter(next_read_, limits));
    for (storage::LogRecord& record : records) {
      ASSIGN_OR_RETURN(sync::LoggedEvent stored, sync::DecodeRecord(record));
      if (stored.is_marker()) {
        pending_.push_back({record.offset, true});
        next_read_ = record.offset;
        continue;
      }
      rd_kafka_resp_err_t error = Produce(record, stored.event().area_code());
      if (error == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        queue_full_ = true;  // Retried once reports free room.
        break;
      }
      if (error != RD_KAFKA_RESP_ERR_NO_ERROR) {
        spdlog::error("kafka export: cannot produce the event at offset {}: {}", record.offset,
                      rd_kafka_err2str(error));
        delivery_errors_->Increment({rd_kafka_err2name(error)});
        restart_needed_ = true;
        break;
      }
      pending_.push_back({record.offset, false});
      ++in_flight_;
      next_read_ = record.offset;
    }
    AdvanceExported();
    return absl::OkStatus();
  }

  rd_kafka_resp_err_t Produce(const storage::LogRecord& record, absl::string_view area_code) {
    const std::string key = CountyCode(area_code);
    const std::string offset = absl::StrCat(record.offset);
    const std::string hash = absl::BytesToHexString(record.hash);
    const std::string prev_hash = absl::BytesToHexString(record.prev_hash);
    // A non-null key pointer even when empty, so the empty key is hashed to
    // one partition rather than spread at random.
    static const char kNoKey = 0;
    return rd_kafka_producev(
        producer_, RD_KAFKA_V_TOPIC(config_.topic().c_str()),
        RD_KAFKA_V_KEY(key.empty() ? &kNoKey : key.data(), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(record.payload.data()), record.payload.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER(kOffsetHeader, offset.data(), static_cast<ssize_t>(offset.size())),
        RD_KAFKA_V_HEADER(kHashHeader, hash.data(), static_cast<ssize_t>(hash.size())),
        RD_KAFKA_V_HEADER(kPrevHashHeader, prev_hash.data(),
                          static_cast<ssize_t>(prev_hash.size())),
        RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<uintptr_t>(record.offset))),
        RD_KAFKA_V_END);
  }

  void WriteCursor() {
    const uint64_t exported = exported_offset();
    if (exported == written_cursor_) return;
    if (absl::Status put = store_->PutCursor(cursor_name_, exported); !put.ok()) {
      // Kept in memory and written at the next interval; a restart meanwhile
      // re-sends from the last written value.
      spdlog::warn("kafka export: writing the exported offset {}: {}", exported, put.ToString());
      return;
    }
    written_cursor_ = exported;
  }

  // At Stop: deliveries in flight get until the deadline, then the cursor is
  // written.
  void Drain() {
    absl::Time deadline;
    {
      absl::MutexLock lock(&mu_);
      deadline = stop_deadline_;
    }
    while (producer_ != nullptr && in_flight_ > 0 && !restart_needed_ && absl::Now() < deadline) {
      int ms = static_cast<int>(
          std::clamp<int64_t>(absl::ToInt64Milliseconds(deadline - absl::Now()), 1, 100));
      rd_kafka_poll(producer_, ms);
    }
    WriteCursor();
    if (in_flight_ > 0) {
      spdlog::info("kafka export: stopped with {} event(s) undelivered after offset {}; the "
                   "next start sends them",
                   in_flight_, exported_offset());
    }
  }

  const v1::KafkaConfig config_;
  const std::string sasl_password_;
  const std::string cursor_name_;
  storage::EventStore* const store_;
  std::shared_ptr<SharedState> shared_;
  CounterFamily* delivered_ = nullptr;
  CounterFamily* delivery_errors_ = nullptr;
  CounterFamily* client_errors_ = nullptr;
  CounterFamily* restarts_ = nullptr;

  // Export thread only (librdkafka serves the callbacks on it, in
  // rd_kafka_poll), and Stop after joining it.
  rd_kafka_t* producer_ = nullptr;
  std::deque<Pending> pending_;  // Offsets after exported_, in log order.
  size_t in_flight_ = 0;         // Entries of pending_ not done.
  uint64_t next_read_ = 0;       // The last offset read (produced or skipped).
  uint64_t written_cursor_ = 0;  // The value last written to the store.
  bool queue_full_ = false;
  bool discarding_ = false;
  // Set by the error callback too, which librdkafka may call from its own
  // threads for a fatal error.
  std::atomic<bool> restart_needed_{false};

  uint64_t listener_id_ = 0;
  std::thread thread_;

  mutable absl::Mutex mu_;
  uint64_t exported_ ABSL_GUARDED_BY(mu_) = 0;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time stop_deadline_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::string KafkaCursorName(absl::string_view topic) { return absl::StrCat("kafka/", topic); }

std::string CountyCode(absl::string_view area_code) {
  const size_t digits = base::SignificantDigits(base::AreaLevel::kCounty);
  if (area_code.size() < digits) return "";
  return std::string(area_code.substr(0, digits));
}

absl::Status ValidateKafkaConfig(const v1::KafkaConfig& config) {
  const std::string& protocol = config.security_protocol();
  if (protocol != "PLAINTEXT" && protocol != "SSL" && protocol != "SASL_PLAINTEXT" &&
      protocol != "SASL_SSL") {
    return ConfigError(absl::StrCat("kafka.security_protocol: want PLAINTEXT, SSL, "
                                    "SASL_PLAINTEXT or SASL_SSL, got \"",
                                    protocol, "\""));
  }
  if (IsSasl(protocol)) {
    const std::string& mechanism = config.sasl_mechanism();
    if (mechanism != "PLAIN" && mechanism != "SCRAM-SHA-256" && mechanism != "SCRAM-SHA-512") {
      return ConfigError(absl::StrCat("kafka.sasl_mechanism: with ", protocol,
                                      " want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got \"",
                                      mechanism, "\""));
    }
    if (config.sasl_username().empty()) {
      return ConfigError(absl::StrCat("kafka.sasl_username is required with ", protocol));
    }
    if (config.sasl_password_file().empty()) {
      return ConfigError(absl::StrCat("kafka.sasl_password_file is required with ", protocol));
    }
  } else if (!config.sasl_mechanism().empty() || !config.sasl_username().empty() ||
             !config.sasl_password_file().empty()) {
    return ConfigError(absl::StrCat("kafka.sasl_*: need a SASL_* security_protocol, not ",
                                    protocol));
  }
  if (!IsSsl(protocol) && (!config.ssl_ca_file().empty() || !config.ssl_cert_file().empty() ||
                           !config.ssl_key_file().empty())) {
    return ConfigError(
        absl::StrCat("kafka.ssl_*: need security_protocol SSL or SASL_SSL, not ", protocol));
  }
  if (config.ssl_cert_file().empty() != config.ssl_key_file().empty()) {
    return ConfigError("kafka.ssl_cert_file and kafka.ssl_key_file go together");
  }
  for (const auto& [key, value] : config.properties()) {
    if (key.empty()) return ConfigError("kafka.properties: a property has an empty name");
    if (ReservedProperty(absl::AsciiStrToLower(key))) {
      return ConfigError(absl::StrCat("kafka.properties[", key,
                                      "]: reserved (the export sets it, or it has a kafka.* "
                                      "setting of its own; docs/operations.md)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<KafkaExporter>> KafkaExporter::Start(const v1::KafkaConfig& config,
                                                                    storage::EventStore* store,
                                                                    MetricsRegistry* metrics) {
  RETURN_IF_ERROR(ValidateKafkaConfig(config));
  if (config.brokers().empty()) return ConfigError("kafka.brokers is empty: the export is off");
  std::string password;
  if (IsSasl(config.security_protocol())) {
    ASSIGN_OR_RETURN(password, ReadFirstLine(config.sasl_password_file()));
  }
  auto exporter =
      std::make_unique<KafkaExporterImpl>(config, std::move(password), store, metrics);
  RETURN_IF_ERROR(exporter->Begin());
  return exporter;
}

}  // namespace fieldsync::server
