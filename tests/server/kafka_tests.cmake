# The Kafka export (server/kafka_exporter.h, issue 12): included once by
# tests/server/CMakeLists.txt. Every test runs against librdkafka's mock
# cluster (tests/tools), in the test process.
add_subdirectory(${PROJECT_SOURCE_DIR}/tests/tools ${CMAKE_BINARY_DIR}/tests/tools)

# The exporter over a real store fed by pushes: every event once, keyed by
# county, in log order per key; restarts, injected broker errors, an outage;
# the kafka.* settings.
fieldsync_test(kafka_export_test
  SOURCES kafka_export_test.cc
  DEPS fieldsync_sync_world fieldsync_mock_kafka
  PROPERTIES TIMEOUT 300)

# The real fieldsyncd exporting: SIGKILL mid-export and a restart lose
# nothing and repeat only what was in flight; kcat -C reads the topic.
fieldsync_test(kafka_process_test
  SOURCES kafka_process_test.cc
  DEPS fieldsync_service_harness fieldsync_server_process fieldsync_storage fieldsync_mock_kafka
  PROPERTIES TIMEOUT 300)
fieldsync_uses_fieldsyncd(kafka_process_test)
add_dependencies(kafka_process_test mock_kafka)
target_compile_definitions(kafka_process_test PRIVATE MOCK_KAFKA_PATH="$<TARGET_FILE:mock_kafka>")
