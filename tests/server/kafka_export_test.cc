// The Kafka exporter (server/kafka_exporter.h) over a real store fed by real
// pushes (SyncWorld), producing to librdkafka's mock cluster in this process
// (tests/tools/mock_cluster.h), read back by a real consumer: every stored
// event arrives once, rejection markers never, keyed by county, in log order
// per key, with its offset and hash in headers; across exporter restarts,
// injected broker errors and an outage. The SIGKILL and kcat tests, which
// need the real fieldsyncd, are in kafka_process_test.cc.
#include <librdkafka/rdkafka.h>

#include <map>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/config.h"
#include "server/kafka_exporter.h"
#include "server/metrics.h"
#include "sync/event_codec.h"
#include "tests/server/sync_world.h"
#include "tests/tools/mock_cluster.h"

namespace fieldsync::testing {
namespace {

constexpr char kTopic[] = "fieldsync.events";

// What one test expects of the topic: every non-marker record of the log.
struct LoggedRecord {
  std::string county;
  std::string payload;
  std::string hash;
};

// The value of a metric line "name{labels} value" (0 if absent; summed over
// label sets).
double MetricValue(const std::string& page, const std::string& name) {
  double total = 0;
  for (absl::string_view line : absl::StrSplit(page, '\n')) {
    if (!absl::StartsWith(line, name)) continue;
    absl::string_view rest = line.substr(name.size());
    if (!rest.empty() && rest[0] != ' ' && rest[0] != '{') continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) total += value;
  }
  return total;
}

class KafkaExportTest : public SyncWorld {
 protected:
  void SetUp() override {
    SyncWorld::SetUp();
    auto cluster = MockKafkaCluster::Start(3, kTopic, 4);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
  }

  void TearDown() override {
    exporter_.reset();
    cluster_.reset();
    SyncWorld::TearDown();
  }

  v1::KafkaConfig ExportConfig() {
    v1::ServerConfig config;
    config.mutable_kafka()->set_brokers(cluster_->bootstrap_servers());
    config.mutable_kafka()->set_cursor_interval_ms(50);
    server::ApplyConfigDefaults(&config);
    return config.kafka();
  }

  void StartExporter(const v1::KafkaConfig& config) {
    metrics_ = std::make_unique<server::MetricsRegistry>();
    auto exporter = server::KafkaExporter::Start(config, &harness().store(), metrics_.get());
    ASSERT_TRUE(exporter.ok()) << exporter.status();
    exporter_ = *std::move(exporter);
  }

  // Pushes `n` registrations: two of every three in county A (the tablet),
  // one in county B; and one rejected event (the tablet registering in
  // county B, out of its scope), which leaves a rejection marker in the log.
  void PushEvents(int n) {
    std::vector<v1::Event> a, b;
    for (int i = 0; i < n; ++i) {
      const std::string id = RandomUuid();
      const std::string number = absl::StrCat("K-", next_number_++);
      if (i % 3 == 2) {
        b.push_back(county_b().Register(id, kV4, number));
      } else {
        a.push_back(tablet().Register(id, i % 2 == 0 ? kV1 : kV2, number));
      }
    }
    if (!a.empty()) MustPush(tablet(), a);
    if (!b.empty()) MustPush(county_b(), b);
    v1::PushResponse rejected;
    ASSERT_TRUE(
        Push(tablet(), {tablet().Register(RandomUuid(), kV4, "K-out")}, &rejected).ok());
    ASSERT_EQ(rejected.results_size(), 1);
    ASSERT_TRUE(rejected.results(0).has_rejected()) << rejected.ShortDebugString();
  }

  // Every record of the log that is an event (markers left out), by offset;
  // `markers` counts the others.
  std::map<uint64_t, LoggedRecord> Logged(int* markers = nullptr) {
    std::map<uint64_t, LoggedRecord> out;
    int skipped = 0;
    uint64_t after = 0;
    while (true) {
      auto records = harness().store().ReadAfter(after, storage::ReadLimits{});
      EXPECT_TRUE(records.ok()) << records.status();
      if (!records.ok() || records->empty()) break;
      for (const storage::LogRecord& record : *records) {
        after = record.offset;
        auto stored = sync::DecodeRecord(record);
        EXPECT_TRUE(stored.ok()) << stored.status();
        if (!stored.ok()) continue;
        if (stored->is_marker()) {
          ++skipped;
          continue;
        }
        out[record.offset] = {server::CountyCode(stored->event().area_code()), record.payload,
                              absl::BytesToHexString(record.hash)};
      }
    }
    if (markers != nullptr) *markers = skipped;
    return out;
  }

  void WaitExportedHead() {
    const uint64_t head = Head();
    ASSERT_TRUE(exporter_->WaitForExported(head, absl::Now() + absl::Seconds(60)))
        << "exported " << exporter_->exported_offset() << " of " << head;
  }

  std::vector<KafkaMessage> ReadAll() {
    auto messages = ReadTopic(cluster_->bootstrap_servers(), kTopic);
    EXPECT_TRUE(messages.ok()) << messages.status();
    return messages.ok() ? *std::move(messages) : std::vector<KafkaMessage>{};
  }

  // Checks `messages` against the log: each message is a logged event with
  // its county as key, its bytes as value and its offset and hash in
  // headers; every logged event is there; each key lives in one partition.
  // Returns how often each offset arrived.
  std::map<uint64_t, int> CheckAgainstLog(const std::vector<KafkaMessage>& messages) {
    const std::map<uint64_t, LoggedRecord> logged = Logged();
    std::map<uint64_t, int> arrivals;
    std::map<std::string, int32_t> partition_of_key;
    for (const KafkaMessage& m : messages) {
      uint64_t offset = 0;
      auto header = m.headers.find(server::kOffsetHeader);
      EXPECT_NE(header, m.headers.end()) << "a message without " << server::kOffsetHeader;
      if (header == m.headers.end() || !absl::SimpleAtoi(header->second, &offset)) continue;
      ++arrivals[offset];
      auto it = logged.find(offset);
      EXPECT_NE(it, logged.end()) << "offset " << offset << " is no event of the log (a marker?)";
      if (it == logged.end()) continue;
      EXPECT_EQ(m.key, it->second.county) << "offset " << offset;
      EXPECT_EQ(m.value, it->second.payload) << "offset " << offset;
      EXPECT_EQ(m.headers.at(server::kHashHeader), it->second.hash) << "offset " << offset;
      auto [placed, inserted] = partition_of_key.emplace(m.key, m.partition);
      EXPECT_EQ(placed->second, m.partition) << "key " << m.key << " in two partitions";
    }
    for (const auto& [offset, record] : logged) {
      EXPECT_TRUE(arrivals.contains(offset)) << "event at offset " << offset << " never arrived";
    }
    EXPECT_GE(partition_of_key.size(), 2u) << "both counties should be keys";
    return arrivals;
  }

  // Per partition, the offsets in the order of arrival.
  static std::map<int32_t, std::vector<uint64_t>> OffsetsByPartition(
      const std::vector<KafkaMessage>& messages) {
    std::map<int32_t, std::vector<uint64_t>> out;
    for (const KafkaMessage& m : messages) {
      uint64_t offset = 0;
      if (absl::SimpleAtoi(m.headers.at(server::kOffsetHeader), &offset)) {
        out[m.partition].push_back(offset);
      }
    }
    return out;
  }

  // Each partition's offsets are strictly increasing once repeats of an
  // offset already seen are dropped (a consumer's dedupe by offset).
  static void ExpectFirstArrivalsInLogOrder(const std::vector<KafkaMessage>& messages) {
    for (const auto& [partition, offsets] : OffsetsByPartition(messages)) {
      std::set<uint64_t> seen;
      uint64_t last = 0;
      for (uint64_t offset : offsets) {
        if (!seen.insert(offset).second) continue;
        EXPECT_GT(offset, last) << "partition " << partition << ": " << offset << " after "
                                << last;
        last = offset;
      }
    }
  }

  std::string MetricsPage() { return metrics_->Render(); }

  std::unique_ptr<MockKafkaCluster> cluster_;
  std::unique_ptr<server::MetricsRegistry> metrics_;
  std::unique_ptr<server::KafkaExporter> exporter_;
  int next_number_ = 0;
};

TEST_F(KafkaExportTest, EveryStoredEventArrivesOnceKeyedByCountyInLogOrderMarkersSkipped) {
  PushEvents(60);
  int markers = 0;
  const auto logged = Logged(&markers);
  ASSERT_GE(markers, 1) << "the test needs a rejection marker in the log";
  StartExporter(ExportConfig());
  WaitExportedHead();

  const std::vector<KafkaMessage> messages = ReadAll();
  const std::map<uint64_t, int> arrivals = CheckAgainstLog(messages);
  EXPECT_EQ(messages.size(), logged.size());
  for (const auto& [offset, count] : arrivals) EXPECT_EQ(count, 1) << "offset " << offset;
  ExpectFirstArrivalsInLogOrder(messages);
  const std::string page = MetricsPage();
  EXPECT_EQ(MetricValue(page, "fieldsync_kafka_delivered_total"), logged.size());
  EXPECT_EQ(MetricValue(page, "fieldsync_kafka_lag_events"), 0);
  EXPECT_EQ(MetricValue(page, "fieldsync_kafka_exported_offset"), Head());
}

TEST_F(KafkaExportTest, LiveEventsAreExportedAsTheyCommit) {
  StartExporter(ExportConfig());
  WaitExportedHead();
  for (int round = 0; round < 3; ++round) {
    PushEvents(10);
    WaitExportedHead();
  }
  const std::vector<KafkaMessage> messages = ReadAll();
  const std::map<uint64_t, int> arrivals = CheckAgainstLog(messages);
  for (const auto& [offset, count] : arrivals) EXPECT_EQ(count, 1) << "offset " << offset;
  ExpectFirstArrivalsInLogOrder(messages);
}

TEST_F(KafkaExportTest, RestartResumesAfterTheStoredExportedOffsetWithoutResending) {
  PushEvents(30);
  StartExporter(ExportConfig());
  WaitExportedHead();
  exporter_->Stop(absl::Now() + absl::Seconds(10));
  // The exported offset is in the store, under the topic's cursor.
  auto cursor = harness().store().GetCursor(server::KafkaCursorName(kTopic));
  ASSERT_TRUE(cursor.ok()) << cursor.status();
  ASSERT_TRUE(cursor->has_value());
  EXPECT_EQ(**cursor, Head());
  exporter_.reset();

  // Written while no exporter runs; and the store itself restarts.
  PushEvents(30);
  Restart();
  StartExporter(ExportConfig());
  WaitExportedHead();
  PushEvents(9);
  WaitExportedHead();

  const std::vector<KafkaMessage> messages = ReadAll();
  const std::map<uint64_t, int> arrivals = CheckAgainstLog(messages);
  EXPECT_EQ(messages.size(), Logged().size()) << "a restart re-sent delivered events";
  for (const auto& [offset, count] : arrivals) EXPECT_EQ(count, 1) << "offset " << offset;
  ExpectFirstArrivalsInLogOrder(messages);
}

TEST_F(KafkaExportTest, RetriableBrokerErrorsAreRetriedWithoutLossDuplicateOrReorder) {
  PushEvents(60);
  // Produce requests answered with errors a broker sends during a leader
  // change or under load; the idempotent producer retries them in order.
  cluster_->FailNextProduces({RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                              RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                              RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                              RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
                              RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND});
  v1::KafkaConfig config = ExportConfig();
  // Small batches: the errors hit several requests, not one.
  (*config.mutable_properties())["batch.num.messages"] = "5";
  StartExporter(config);
  WaitExportedHead();
  PushEvents(15);
  WaitExportedHead();

  const std::vector<KafkaMessage> messages = ReadAll();
  const std::map<uint64_t, int> arrivals = CheckAgainstLog(messages);
  for (const auto& [offset, count] : arrivals) EXPECT_EQ(count, 1) << "offset " << offset;
  EXPECT_EQ(messages.size(), Logged().size());
  ExpectFirstArrivalsInLogOrder(messages);
}

TEST_F(KafkaExportTest, PermanentDeliveryErrorResendsFromTheExportedOffsetAndCountsTheError) {
  PushEvents(45);
  // A produce request refused for good: librdkafka reports the messages
  // failed; the exporter makes a new producer and sends them again.
  cluster_->FailNextProduces({RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED});
  StartExporter(ExportConfig());
  WaitExportedHead();

  const std::vector<KafkaMessage> messages = ReadAll();
  CheckAgainstLog(messages);
  const std::string page = MetricsPage();
  EXPECT_GE(MetricValue(page, "fieldsync_kafka_delivery_errors_total"), 1) << page;
  EXPECT_GE(MetricValue(page, "fieldsync_kafka_producer_restarts_total"), 1) << page;
  // What was sent again is a run in log order: the last arrival of every
  // offset, per partition, is in log order.
  for (const auto& [partition, offsets] : OffsetsByPartition(messages)) {
    std::map<uint64_t, size_t> last_position;
    for (size_t i = 0; i < offsets.size(); ++i) last_position[offsets[i]] = i;
    size_t previous = 0;
    bool first = true;
    for (const auto& [offset, position] : last_position) {
      if (!first) {
        EXPECT_GT(position, previous) << "partition " << partition << " offset " << offset;
      }
      previous = position;
      first = false;
    }
  }
}

TEST_F(KafkaExportTest, BrokerOutageNeitherBlocksPushesNorHoldsMoreThanTheInFlightBound) {
  cluster_->SetAllBrokersDown(true);
  v1::KafkaConfig config = ExportConfig();
  config.set_max_in_flight_events(20);
  StartExporter(config);
  // Pushes commit while no broker answers.
  PushEvents(90);
  const uint64_t head = Head();
  // The exporter read up to its bound and stopped reading.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (MetricValue(MetricsPage(), "fieldsync_kafka_in_flight_events") < 20 &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  std::string page = MetricsPage();
  EXPECT_EQ(MetricValue(page, "fieldsync_kafka_in_flight_events"), 20) << page;
  EXPECT_LT(exporter_->exported_offset(), head);
  // The lag: the head as the store's head listener reported it (it runs
  // after the commit has answered its pushes), minus the exported offset.
  const double lag = static_cast<double>(head - exporter_->exported_offset());
  while (MetricValue(MetricsPage(), "fieldsync_kafka_lag_events") != lag &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(MetricValue(MetricsPage(), "fieldsync_kafka_lag_events"), lag);
  PushEvents(3);  // Still no wait on the export.
  EXPECT_LE(MetricValue(MetricsPage(), "fieldsync_kafka_in_flight_events"), 20);

  cluster_->SetAllBrokersDown(false);
  WaitExportedHead();
  const std::vector<KafkaMessage> messages = ReadAll();
  const std::map<uint64_t, int> arrivals = CheckAgainstLog(messages);
  for (const auto& [offset, count] : arrivals) EXPECT_EQ(count, 1) << "offset " << offset;
  ExpectFirstArrivalsInLogOrder(messages);
}

// The settings: what the contract reserves is refused, naming the setting.
TEST(KafkaConfigTest, ReservedPropertiesAndIncompleteSecurityAreConfigErrors) {
  struct Case {
    std::string text;
    std::string names;
  };
  const std::vector<Case> cases = {
      {R"(kafka { properties { key: "acks" value: "1" } })", "kafka.properties[acks]"},
      {R"(kafka { properties { key: "enable.idempotence" value: "false" } })",
       "kafka.properties[enable.idempotence]"},
      {R"(kafka { properties { key: "Message.Timeout.Ms" value: "1000" } })",
       "kafka.properties[Message.Timeout.Ms]"},
      {R"(kafka { properties { key: "security.protocol" value: "SSL" } })",
       "kafka.properties[security.protocol]"},
      {R"(kafka { security_protocol: "TLS" })", "kafka.security_protocol"},
      {R"(kafka { security_protocol: "SASL_SSL" sasl_username: "u" sasl_password_file: "/p" })",
       "kafka.sasl_mechanism"},
      {R"(kafka { security_protocol: "SASL_SSL" sasl_mechanism: "PLAIN" sasl_password_file: "/p" })",
       "kafka.sasl_username"},
      {R"(kafka { security_protocol: "SASL_SSL" sasl_mechanism: "PLAIN" sasl_username: "u" })",
       "kafka.sasl_password_file"},
      {R"(kafka { sasl_username: "u" })", "kafka.sasl_"},
      {R"(kafka { ssl_ca_file: "/ca.pem" })", "kafka.ssl_"},
      {R"(kafka { security_protocol: "SSL" ssl_cert_file: "/c.pem" })", "kafka.ssl_cert_file"},
  };
  for (const Case& c : cases) {
    auto parsed = server::ParseServerConfig(c.text, "test");
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    server::ApplyConfigDefaults(&*parsed);
    absl::Status status = server::ValidateServerConfig(*parsed);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_TRUE(absl::StrContains(status.message(), c.names)) << c.text << ": " << status;
  }
  // SASL over TLS, complete: accepted.
  auto parsed = server::ParseServerConfig(
      R"(kafka { security_protocol: "SASL_SSL" sasl_mechanism: "SCRAM-SHA-512" )"
      R"(sasl_username: "u" sasl_password_file: "/p" linger_ms: 20 batch_size_bytes: 65536 })",
      "test");
  ASSERT_TRUE(parsed.ok());
  server::ApplyConfigDefaults(&*parsed);
  EXPECT_TRUE(server::ValidateServerConfig(*parsed).ok());
}

TEST(KafkaConfigTest, ASettingLibrdkafkaRefusesFailsTheStartNamingIt) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/kafka_refused_", getpid());
  auto store = storage::OpenEventStore(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  v1::ServerConfig config;
  config.mutable_kafka()->set_brokers("127.0.0.1:1");
  (*config.mutable_kafka()->mutable_properties())["compression.type"] = "brotli";
  server::ApplyConfigDefaults(&config);
  server::MetricsRegistry metrics;
  auto exporter = server::KafkaExporter::Start(config.kafka(), store->get(), &metrics);
  ASSERT_FALSE(exporter.ok());
  EXPECT_EQ(exporter.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(exporter.status().message(), "kafka.properties[compression.type]"))
      << exporter.status();
}

}  // namespace
}  // namespace fieldsync::testing
