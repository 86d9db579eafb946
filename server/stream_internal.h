// The stream service's internal bounds and names (server/stream_*.cc):
// how much one catch-up step, one hub pass and one read may do, the batch
// and heartbeat bounds of a request, the trailer of a cut stream. Internal
// to server/; docs/stream.md states the figures.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"
#include "server/stream_wire.h"

namespace fieldsync::server {

using stream::BatchBuilder;
using stream::RecordKeys;

// How often the hub looks at heartbeats, idle consumers and draining (real
// time). Never how live events are found: commits wake the hub.
inline constexpr absl::Duration kTick = absl::Milliseconds(100);
// One catch-up step examines at most this many records (read, scanned,
// matched or not) before its stream gives the reader threads to the next
// stream; one read of the log at most kReadRecords of them.
inline constexpr size_t kExaminePerStep = 16384;
inline constexpr size_t kReadRecords = 4096;
inline constexpr size_t kReadBytes = 4 << 20;
// Catch-up batches a stream keeps ready beyond the one on the wire.
inline constexpr size_t kReadAhead = 2;
// Reader threads (StreamReaders) shared by every stream.
inline constexpr int kReaderThreads = 2;
// Unfiltered streams share their catch-up batches (BatchCache).
inline constexpr bool kShareBatches = true;
// The hub keeps the records it dispatched last, so that a stream reaching
// the head takes the few records committed meanwhile from memory.
inline constexpr size_t kRecentRecords = 8192;
inline constexpr size_t kRecentBytes = 8 << 20;
// One hub pass dispatches at most this many records (then passes again).
inline constexpr size_t kDispatchPerPass = 16384;
// Catch-up reads through the scope index when every prefix has an indexed
// length and there are at most this many; else ReadAfter, filtered.
inline constexpr size_t kMaxIndexedPrefixes = 16;

inline constexpr uint32_t kDefaultHeartbeatMs = 10000;
inline constexpr uint32_t kMinHeartbeatMs = 1000;
inline constexpr uint32_t kMaxHeartbeatMs = 60000;
inline constexpr uint32_t kDefaultBatchEvents = 4096;
inline constexpr uint32_t kMaxBatchEvents = 8192;
inline constexpr uint32_t kDefaultBatchBytes = 1 << 20;
inline constexpr uint32_t kMinBatchBytes = 1 << 10;
inline constexpr uint32_t kMaxBatchBytes = 2 << 20;

// The trailing metadata of a cut stream: the offset to resume from.
inline constexpr char kResumeTrailer[] = "fieldsync-resume-offset";

}  // namespace fieldsync::server
