// KafkaExporter: fieldsyncd's feed of the event log into one Kafka topic, for
// HQ analytics past one node (DESIGN.md "Scale"). docs/operations.md "Kafka
// export" is the operator's side of the same.
//
// What it does:
//   - One thread tails the log from the exported offset: it reads the store
//     in bounded windows (ReadAfter) and produces every stored event, the
//     sync engine's rejection markers skipped (sync::IsRejectionMarker), with
//     librdkafka's idempotent producer (enable.idempotence, acks=all, no
//     local message timeout: librdkafka retries until the brokers take it).
//   - Key: the county code of the event, the first digits of its area code
//     (CountyCode); empty for an event without one. Partitioner murmur2 (the
//     Java client's), so one county's events go to one partition in log
//     order.
//   - Value: the record's payload exactly as stored (LogEntry.record: a
//     serialized fieldsync.v1.StoredEvent holding the device's signed event
//     bytes), so hash = SHA-256(prev_hash | be64 offset | value) and the
//     signature can be checked without re-encoding.
//     Headers: kOffsetHeader (decimal log offset), kHashHeader and
//     kPrevHashHeader (64 lowercase hex digits).
//   - The exported offset (every event at or below it is delivered) advances
//     only on delivery reports, over the contiguous delivered prefix, and is
//     written to the store as the cursor KafkaCursorName(topic) every
//     cursor_interval_ms and at Stop. A restart resumes after it: nothing is
//     lost, and what is re-sent is at most what was delivered after the last
//     written cursor (at-least-once; every message carries its offset, so a
//     consumer drops an offset it has seen).
//   - Memory is bounded: the exporter reads the log only while fewer than
//     max_in_flight_events are produced and unreported, so a broker outage
//     stops the reads, never a push (pushes do not wait for the export), and
//     the lag grows instead.
//   - A failed delivery report (a permanent broker error) or a fatal producer
//     error: the producer is purged and made anew, and the export resumes
//     from the exported offset after a backoff (1 s doubling to 30 s), so the
//     stream is never skipped over; the messages delivered after the failed
//     one are sent again.
//   - Metrics: fieldsync_kafka_exported_offset, fieldsync_kafka_lag_events
//     (log head minus exported offset), fieldsync_kafka_in_flight_events,
//     fieldsync_kafka_delivered_total (its rate is the produce rate),
//     fieldsync_kafka_delivery_errors_total{error}, fieldsync_kafka_errors_total{error}
//     (client errors: brokers down, authentication) and
//     fieldsync_kafka_producer_restarts_total.
//
// Thread-safety: the accessors may be called from any thread; Stop and the
// destructor from one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fieldsync/v1/config.pb.h"
#include "server/metrics.h"
#include "storage/event_store.h"

namespace fieldsync::server {

// Header names of every message.
inline constexpr char kOffsetHeader[] = "fieldsync-offset";
inline constexpr char kHashHeader[] = "fieldsync-hash";
inline constexpr char kPrevHashHeader[] = "fieldsync-prev-hash";

// The store cursor of the export to `topic`: "kafka/<topic>" (a new topic is
// exported from the start of the log).
std::string KafkaCursorName(absl::string_view topic);

// The message key of an event in `area_code`: its county's code (the county
// level's significant digits, base/area_code.h: the first 6 of the 12), or ""
// when the code is shorter.
std::string CountyCode(absl::string_view area_code);

// Checks the kafka.* settings of a config whose defaults are applied (called
// by ValidateServerConfig): the security protocol and what it needs, the
// properties the contract reserves. InvalidArgument "config: kafka...".
// Checks nothing librdkafka alone knows: Start reports those.
absl::Status ValidateKafkaConfig(const v1::KafkaConfig& config);

class KafkaExporter {
 public:
  // Starts exporting the log of `store` to config.brokers / config.topic
  // (defaults applied, validated), registering its metrics in `metrics`.
  // `store` and `metrics` must outlive the exporter. Errors: InvalidArgument
  // "config: kafka..." for a setting librdkafka refuses or an unreadable
  // sasl_password_file; the store's error reading the cursor. Brokers that
  // cannot be reached are no error: the export waits for them.
  static absl::StatusOr<std::unique_ptr<KafkaExporter>> Start(const v1::KafkaConfig& config,
                                                              storage::EventStore* store,
                                                              MetricsRegistry* metrics);

  virtual ~KafkaExporter() = default;  // Stop(absl::Now()) if still running.

  // Stops reading the log, waits until `deadline` for the deliveries in
  // flight, writes the exported offset to the store and closes the producer
  // (undelivered messages are dropped: the next start sends them). Idempotent.
  virtual void Stop(absl::Time deadline) = 0;

  // Every event with an offset up to this one is delivered.
  virtual uint64_t exported_offset() const = 0;

  // Blocks until exported_offset() >= offset or `deadline`; true if reached.
  virtual bool WaitForExported(uint64_t offset, absl::Time deadline) const = 0;
};

}  // namespace fieldsync::server
