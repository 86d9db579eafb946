#include "tests/tools/mock_cluster.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <unistd.h>

#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace fieldsync::testing {
namespace {

// librdkafka logs connection refusals and the like to stderr by default;
// the tests keep them (they explain a failure) but only from warnings up.
void QuietLog(const rd_kafka_t*, int level, const char* facility, const char* text) {
  if (level <= 4) fprintf(stderr, "mock kafka %s: %s\n", facility, text);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MockKafkaCluster>> MockKafkaCluster::Start(int brokers,
                                                                           const std::string& topic,
                                                                           int partitions) {
  auto cluster = std::unique_ptr<MockKafkaCluster>(new MockKafkaCluster());
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set_log_cb(conf, &QuietLog);
  // The handle only hosts the cluster; it never connects anywhere.
  cluster->handle_owner_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof(error));
  if (cluster->handle_owner_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InternalError(absl::StrCat("rd_kafka_new: ", error));
  }
  cluster->cluster_ = rd_kafka_mock_cluster_new(cluster->handle_owner_, brokers);
  if (cluster->cluster_ == nullptr) return absl::InternalError("rd_kafka_mock_cluster_new failed");
  cluster->brokers_ = brokers;
  cluster->bootstraps_ = rd_kafka_mock_cluster_bootstraps(cluster->cluster_);
  if (!topic.empty()) {
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(cluster->cluster_, topic.c_str(),
                                                         partitions, std::min(brokers, 3));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return absl::InternalError(absl::StrCat("creating topic ", topic, ": ", rd_kafka_err2str(err)));
    }
  }
  return cluster;
}

MockKafkaCluster::~MockKafkaCluster() {
  if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
  if (handle_owner_ != nullptr) rd_kafka_destroy(handle_owner_);
}

void MockKafkaCluster::FailNextProduces(const std::vector<int>& errors) {
  std::vector<rd_kafka_resp_err_t> codes;
  for (int e : errors) codes.push_back(static_cast<rd_kafka_resp_err_t>(e));
  rd_kafka_mock_push_request_errors_array(cluster_, /*ApiKey Produce=*/0, codes.size(),
                                          codes.data());
}

void MockKafkaCluster::SetAllBrokersDown(bool down) {
  for (int32_t id = 1; id <= brokers_; ++id) {
    if (down) {
      rd_kafka_mock_broker_set_down(cluster_, id);
    } else {
      rd_kafka_mock_broker_set_up(cluster_, id);
    }
  }
}

void MockKafkaCluster::SetRoundTrip(absl::Duration rtt) {
  for (int32_t id = 1; id <= brokers_; ++id) {
    rd_kafka_mock_broker_set_rtt(cluster_, id, static_cast<int>(absl::ToInt64Milliseconds(rtt)));
  }
}

absl::StatusOr<std::vector<KafkaMessage>> ReadTopic(const std::string& bootstrap_servers,
                                                    const std::string& topic,
                                                    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  absl::BitGen random;
  const std::string group = absl::StrCat("reader-", absl::Uniform<uint64_t>(random));
  for (auto [key, value] : std::vector<std::pair<const char*, std::string>>{
           {"bootstrap.servers", bootstrap_servers},
           {"group.id", group},
           {"enable.auto.commit", "false"},
           {"enable.partition.eof", "false"}}) {
    if (rd_kafka_conf_set(conf, key, value.c_str(), error, sizeof(error)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InternalError(error);
    }
  }
  rd_kafka_conf_set_log_cb(conf, &QuietLog);
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof(error));
  if (consumer == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InternalError(absl::StrCat("rd_kafka_new: ", error));
  }
  std::unique_ptr<rd_kafka_t, void (*)(rd_kafka_t*)> owner(consumer, [](rd_kafka_t* rk) {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  });
  rd_kafka_poll_set_consumer(consumer);

  // The partitions and their high watermarks.
  rd_kafka_topic_t* handle = rd_kafka_topic_new(consumer, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* metadata = nullptr;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  int partitions = 0;
  while (true) {
    err = rd_kafka_metadata(consumer, 0, handle, &metadata, 5000);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && metadata->topic_cnt == 1 &&
        metadata->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      partitions = metadata->topics[0].partition_cnt;
    }
    if (metadata != nullptr) rd_kafka_metadata_destroy(metadata);
    metadata = nullptr;
    if (partitions > 0 || absl::Now() > deadline) break;
    usleep(100 * 1000);
  }
  rd_kafka_topic_destroy(handle);
  if (partitions == 0) return absl::UnavailableError(absl::StrCat("no metadata for ", topic));

  std::vector<int64_t> high(partitions, 0);
  rd_kafka_topic_partition_list_t* assignment = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    int64_t low = 0;
    err = rd_kafka_query_watermark_offsets(consumer, topic.c_str(), p, &low, &high[p], 10000);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_topic_partition_list_destroy(assignment);
      return absl::UnavailableError(
          absl::StrCat("watermarks of ", topic, "[", p, "]: ", rd_kafka_err2str(err)));
    }
    rd_kafka_topic_partition_list_add(assignment, topic.c_str(), p)->offset = low;
  }
  err = rd_kafka_assign(consumer, assignment);
  rd_kafka_topic_partition_list_destroy(assignment);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::InternalError(absl::StrCat("assign: ", rd_kafka_err2str(err)));
  }

  std::vector<std::vector<KafkaMessage>> by_partition(partitions);
  std::vector<int64_t> next(partitions, 0);
  auto done = [&] {
    for (int p = 0; p < partitions; ++p) {
      if (next[p] < high[p]) return false;
    }
    return true;
  };
  while (!done()) {
    if (absl::Now() > deadline) {
      return absl::UnavailableError(absl::StrCat("reading ", topic, ": timed out"));
    }
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer, 200);
    if (message == nullptr) continue;
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_message_destroy(message);
      continue;
    }
    KafkaMessage m;
    m.partition = message->partition;
    m.position = message->offset;
    if (message->key != nullptr) m.key.assign(static_cast<const char*>(message->key), message->key_len);
    if (message->payload != nullptr) {
      m.value.assign(static_cast<const char*>(message->payload), message->len);
    }
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name = nullptr;
      const void* value = nullptr;
      size_t size = 0;
      for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) ==
                         RD_KAFKA_RESP_ERR_NO_ERROR;
           ++i) {
        m.headers[name] = std::string(static_cast<const char*>(value), size);
      }
    }
    next[m.partition] = std::max(next[m.partition], m.position + 1);
    by_partition[m.partition].push_back(std::move(m));
    rd_kafka_message_destroy(message);
  }
  std::vector<KafkaMessage> out;
  for (auto& messages : by_partition) {
    std::sort(messages.begin(), messages.end(),
              [](const KafkaMessage& a, const KafkaMessage& b) { return a.position < b.position; });
    for (auto& m : messages) {
      if (m.position < high[m.partition]) out.push_back(std::move(m));
    }
  }
  return out;
}

}  // namespace fieldsync::testing
