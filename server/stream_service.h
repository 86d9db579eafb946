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
// How it runs (the shape of etcd's watchers):
//   - Each call is a SubscribeReactor with one write in flight at most; the
//     next write starts from OnWriteDone (or from the hub, for live events),
//     so a consumer that reads slowly slows its own stream down.
//   - Catch-up is pulled from the log by the reactor itself, one bounded read
//     when its previous messages are written (the scope index serves 6-, 9-
//     and 12-digit prefixes): a consumer far behind costs no memory.
//   - Once a reactor reaches the head it becomes live: the StreamHub thread,
//     woken by the store's head listener (never blocking the committer),
//     reads every newly committed record once and queues the matching ones
//     on each live reactor. A reactor whose queue grows past
//     limits.subscriber_buffer_bytes is cut with RESOURCE_EXHAUSTED naming the
//     offset to resume from, rather than buffering without bound.
//   - The hub also ticks every 100 ms (real time): heartbeats are due by the
//     server's (injected) clock, and when the server starts draining every
//     stream ends with UNAVAILABLE, so shutdown never waits for consumers.
//   - At most limits.max_concurrent_streams streams, and at most
//     limits.max_streams_per_user of one user (default a quarter of the
//     cap), so no user can lock the others out; one more is
//     RESOURCE_EXHAUSTED naming the setting. Streams that are ending hold
//     no slot.
//   - A consumer that stopped reading is cut: a write that has waited for it
//     limits.stream_idle_timeout_ms (HTTP/2 flow control completes a write
//     only as the consumer reads) ends the stream with RESOURCE_EXHAUSTED
//     naming the offset sent through; checked at every tick and before a
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
// Thread-safety: safe for concurrent calls.
#pragma once

#include <cstddef>
#include <memory>

#include "fieldsync/v1/stream_service.grpc.pb.h"
#include "server/service_context.h"

namespace fieldsync::server {

class StreamHub;

class StreamServiceImpl final : public v1::StreamService::CallbackService {
 public:
  // `context` must outlive the service. Registers a head listener with the
  // store and starts the hub thread; the destructor stops both. Destroy the
  // service only after the gRPC server has shut down (no stream alive).
  explicit StreamServiceImpl(const ServiceContext* context);
  ~StreamServiceImpl() override;

  grpc::ServerWriteReactor<v1::SubscribeResponse>* Subscribe(
      grpc::CallbackServerContext* context, const v1::SubscribeRequest* request) override;

  // Streams open now (the gauge fieldsync_subscribers_connected).
  size_t subscribers() const;

 private:
  const ServiceContext* ctx_;
  std::unique_ptr<StreamHub> hub_;
};

}  // namespace fieldsync::server
