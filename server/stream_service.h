// StreamService: the live log stream for HQ analytics (HQ analysts and
// admins; docs/authorization.md).
//
// Subscribe streams the events after `from_offset` that match the request's
// kinds and scope prefixes (within the caller's scope): first a catch-up from
// the log, then one `caught_up` marker, then live events as they commit, with
// heartbeats carrying the offset through which everything matching was sent
// (a consumer may resume from it). The sync engine's rejection markers are
// bookkeeping, never streamed (sync::IsRejectionMarker). At-least-once:
// a consumer resumes from the offset of the last event it processed.
//
// Events travel in batches (EventBatch: at most max_batch_events events and
// max_batch_bytes of them per message, 4096 and 1 MiB by default), built
// from the stored records' bytes (server/stream_wire.h). docs/stream.md.
//
// How it runs (the shape of etcd's watchers):
//   - Each call is a SubscribeReactor with one write in flight at most; the
//     next write starts from OnWriteDone (or from the hub, for live events),
//     so a consumer that reads slowly slows its own stream down.
//   - Catch-up is read on StreamReaders (server/stream_readers.h: 2 threads
//     shared by every stream), never on a gRPC callback thread: one step
//     examines at most 16384 records (matching or not) and makes at most one
//     batch, and up to two batches are kept ready while the previous one is
//     on the wire. The scope index serves 6-, 9- and 12-digit prefixes. A
//     consumer far behind costs at most three batches of memory; a filter
//     that matches nothing takes turns with the other streams, step by step.
//     Unfiltered streams with the same bounds share their catch-up batches
//     (a 32 MiB cache): consumers replaying together read the log once.
//   - Once a stream reaches the head it becomes live: the StreamHub thread,
//     woken by the store's head listener after every commit (never by
//     polling), reads every newly committed record once, encodes it once and
//     queues it on each live stream whose filter matches; the records
//     committed while a stream was finishing its catch-up come from the
//     hub's memory of the last 8192 records. A stream whose queue grows past
//     limits.subscriber_buffer_bytes is cut with RESOURCE_EXHAUSTED after its
//     write in flight, naming the offset N to resume from in the message
//     ("from_offset = N") and in the trailer `fieldsync-resume-offset`:
//     everything matching up to N was sent, nothing after it.
//   - The hub never holds its mutex across a store read: a pass takes a
//     snapshot of the streams (each held), reads, and hands records to each
//     stream under that stream's lock.
//   - The hub also ticks every 100 ms (real time): heartbeats are due by the
//     server's (injected) clock, in catch-up too, and when the server starts
//     draining every stream ends with UNAVAILABLE, so shutdown never waits
//     for consumers.
//   - At most limits.max_concurrent_streams streams, and at most
//     limits.max_streams_per_user of one user (default a quarter of the
//     cap), so no user can lock the others out; one more is
//     RESOURCE_EXHAUSTED naming the setting. Streams that are ending hold
//     no slot.
//   - A consumer that stopped reading is cut: a write that has waited for it
//     limits.stream_idle_timeout_ms (HTTP/2 flow control completes a write
//     only as the consumer reads) ends the stream with RESOURCE_EXHAUSTED
//     naming the offset sent through (a batch past it may still arrive:
//     resume from the larger of the two); checked at every tick and before a
//     new stream is refused. A cut call whose status the consumer still
//     does not take is cancelled after as long again.
//   - Revoking the caller's device or disabling its user ends the stream at
//     once with UNAUTHENTICATED (server/open_streams.h, registered with the
//     Identity; the principal is checked again right after registering).
// Errors at the start: INVALID_ARGUMENT (an unknown kind, a malformed
// prefix), PERMISSION_DENIED (a prefix outside the caller's scope),
// OUT_OF_RANGE (from_offset past the log head: a consumer of another or a
// restored server must resubscribe from at most the head).
//
// The pieces, one concept per file: stream_hub.h (registry, live dispatch,
// tick), stream_reactor.h (one call's state machine; its catch-up step in
// stream_catch_up.cc), stream_records.h (filter, live record, bounded log
// read), stream_batch_cache.h, stream_internal.h (the bounds above).
//
// Thread-safety: safe for concurrent calls.
#pragma once

#include <cstddef>
#include <memory>

#include "fieldsync/v1/stream_service.grpc.pb.h"
#include "server/service_context.h"

namespace fieldsync::server {

class BatchCache;
class StreamHub;
class StreamReaders;

// Subscribe is served raw (grpc::ByteBuffer in and out): the batches are
// built from the stored records' bytes (server/stream_wire.h), never parsed
// and re-serialized. The request is parsed here.
class StreamServiceImpl final
    : public v1::StreamService::WithRawCallbackMethod_Subscribe<v1::StreamService::Service> {
 public:
  // `context` must outlive the service. Registers a head listener with the
  // store and starts the hub thread and the reader threads; the destructor
  // stops them. Destroy the
  // service only after the gRPC server has shut down (no stream alive).
  explicit StreamServiceImpl(const ServiceContext* context);
  ~StreamServiceImpl() override;

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Subscribe(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request) override;

  // Streams open now (the gauge fieldsync_subscribers_connected).
  size_t subscribers() const;

 private:
  const ServiceContext* ctx_;
  std::unique_ptr<StreamHub> hub_;
  // Catch-up reads (server/stream_readers.h); destroyed before the hub.
  std::unique_ptr<StreamReaders> readers_;
  // Catch-up batches shared by unfiltered streams (32 MiB).
  std::unique_ptr<BatchCache> cache_;
};

}  // namespace fieldsync::server
