// mock_kafka: librdkafka's mock Kafka cluster as a process, so that fieldsyncd
// and kcat can be pointed at a real Kafka-protocol endpoint without a broker.
//
//   mock_kafka [--brokers=3] [--topic=fieldsync.events] [--partitions=4]
//
// Prints the bootstrap servers ("127.0.0.1:PORT,...") as one line on stdout,
// then serves until SIGTERM or SIGINT. The topic is created up front (the
// mock cluster would auto-create it too, with its own partition count).
// Everything is in memory: a restart starts empty. docs/operations.md "Kafka
// export" shows it with fieldsyncd and kcat.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "tests/tools/mock_cluster.h"

namespace {

bool Flag(const char* arg, const char* name, std::string* value) {
  const size_t n = strlen(name);
  if (strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
  *value = arg + n + 1;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int brokers = 3;
  int partitions = 4;
  std::string topic = "fieldsync.events";
  for (int i = 1; i < argc; ++i) {
    std::string value;
    if (Flag(argv[i], "--brokers", &value)) {
      brokers = atoi(value.c_str());
    } else if (Flag(argv[i], "--partitions", &value)) {
      partitions = atoi(value.c_str());
    } else if (Flag(argv[i], "--topic", &value)) {
      topic = value;
    } else {
      std::cerr << "usage: mock_kafka [--brokers=N] [--topic=NAME] [--partitions=N]\n";
      return 2;
    }
  }
  if (brokers < 1 || partitions < 1) {
    std::cerr << "mock_kafka: --brokers and --partitions must be at least 1\n";
    return 2;
  }
  // Block the signals before librdkafka starts its threads; main waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto cluster = fieldsync::testing::MockKafkaCluster::Start(brokers, topic, partitions);
  if (!cluster.ok()) {
    std::cerr << "mock_kafka: " << cluster.status() << "\n";
    return 1;
  }
  std::cout << (*cluster)->bootstrap_servers() << std::endl;
  int signal = 0;
  sigwait(&signals, &signal);
  cluster->reset();
  return 0;
}
