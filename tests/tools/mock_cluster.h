// MockKafkaCluster: librdkafka's mock Kafka cluster (rd_kafka_mock_cluster_new)
// in this process, listening on 127.0.0.1 ports the kernel picks: a real
// Kafka-protocol endpoint for fieldsyncd's exporter, kcat and the tests'
// consumers, with broker errors a test can inject. ReadTopic is a consumer
// that reads a whole topic (to the partitions' high watermarks).
//
// Not thread-safe; the cluster serves on librdkafka's own threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;

namespace fieldsync::testing {

class MockKafkaCluster {
 public:
  // A cluster of `brokers` brokers; `topic` (if not empty) is created with
  // `partitions` partitions, replicated on min(brokers, 3).
  static absl::StatusOr<std::unique_ptr<MockKafkaCluster>> Start(int brokers,
                                                                 const std::string& topic,
                                                                 int partitions);
  ~MockKafkaCluster();

  // "127.0.0.1:port,..." of every broker.
  const std::string& bootstrap_servers() const { return bootstraps_; }
  int brokers() const { return brokers_; }
  rd_kafka_mock_cluster_t* handle() { return cluster_; }

  // The next `errors.size()` produce requests fail with these Kafka error
  // codes (rd_kafka_resp_err_t values), in order.
  void FailNextProduces(const std::vector<int>& errors);
  // Every broker down (refuses connections) or up again.
  void SetAllBrokersDown(bool down);
  // Adds `rtt` of latency to every broker's responses.
  void SetRoundTrip(absl::Duration rtt);

 private:
  MockKafkaCluster() = default;
  rd_kafka_t* handle_owner_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::string bootstraps_;
  int brokers_ = 0;
};

// One message read back.
struct KafkaMessage {
  int32_t partition = 0;
  int64_t position = 0;  // The Kafka offset within the partition.
  std::string key;
  std::string value;
  std::map<std::string, std::string> headers;
};

// Every message of `topic` on `bootstrap_servers`, partition by partition in
// partition order, up to the high watermarks as they are when called.
// Errors: Unavailable if the topic cannot be read within `timeout`.
absl::StatusOr<std::vector<KafkaMessage>> ReadTopic(const std::string& bootstrap_servers,
                                                    const std::string& topic,
                                                    absl::Duration timeout = absl::Seconds(30));

}  // namespace fieldsync::testing
