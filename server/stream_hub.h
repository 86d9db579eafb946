// StreamHub: the registry of the open Subscribe streams, the one reader of
// newly committed records for the live ones, and the ticker of heartbeats,
// idle consumers and draining. Internal to the stream service
// (server/stream_*.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/service_context.h"
#include "server/stream_records.h"

namespace fieldsync::server {

class SubscribeReactor;

// The hub: the registry of streams, the one reader of newly committed records
// for live streams (woken by the store's head listener, which the committer
// calls after every group), and the ticker of heartbeats, idle consumers and
// draining. It never holds mu_ across a store read: a pass takes a snapshot
// of the streams (each held), reads, then hands records to each stream under
// that stream's own lock. Lock order: mu_ before a reactor's; wake_mu_ is a
// leaf.
class StreamHub {
 public:
  explicit StreamHub(const ServiceContext* ctx);
  ~StreamHub();

  // Registers a stream, first cutting the streams whose consumer has not
  // read for limits.stream_idle_timeout_ms (their slots come back at once).
  // RESOURCE_EXHAUSTED, registering nothing, when the server holds
  // limits.max_concurrent_streams streams or the stream's user holds
  // limits.max_streams_per_user. Streams that are ending hold no slot.
  absl::Status TryAdd(SubscribeReactor* reactor) ABSL_LOCKS_EXCLUDED(mu_);
  // Unregisters it (a no-op if it is not registered); the hub never touches
  // it afterwards.
  void Remove(SubscribeReactor* reactor) ABSL_LOCKS_EXCLUDED(mu_);
  // Wakes the hub thread. Never blocks for long: callable from the
  // committer thread and under a reactor's lock.
  void Wake() ABSL_LOCKS_EXCLUDED(wake_mu_);
  size_t connected() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop();
  // One pass: dispatch new records, move streams to live, tick. True if
  // records are left to dispatch.
  bool Pass() ABSL_LOCKS_EXCLUDED(mu_);

  const ServiceContext* ctx_;
  mutable absl::Mutex mu_;
  std::set<SubscribeReactor*> reactors_ ABSL_GUARDED_BY(mu_);
  // Every record up to here was offered to the live streams. Only the hub
  // thread moves it.
  uint64_t dispatched_ ABSL_GUARDED_BY(mu_) = 0;
  // The records in (recent_from_, dispatched_], markers included.
  std::deque<std::shared_ptr<const LiveRecord>> recent_ ABSL_GUARDED_BY(mu_);
  size_t recent_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t recent_from_ ABSL_GUARDED_BY(mu_) = 0;

  absl::Mutex wake_mu_;
  bool woken_ ABSL_GUARDED_BY(wake_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(wake_mu_) = false;

  uint64_t listener_id_ = 0;
  std::thread thread_;
};

}  // namespace fieldsync::server
