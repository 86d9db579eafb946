// BoundedExecutor: a fixed pool of threads with a bounded queue, for the
// reads and checks that must not run on gRPC's callback threads (Pull, the
// QueryService reads, the push pre-checks: scope, signatures, point reads).
//
// gRPC's callback threads are few and shared by every call; a handler that
// scans the log on one of them stalls unrelated calls. Handlers hand such work
// to this pool instead. The queue is bounded so that a burst of slow reads
// cannot queue without limit: TrySchedule refuses once `queue_capacity` tasks
// wait, and the handler answers RESOURCE_EXHAUSTED (the client retries later).
//
// Thread-safety: safe for concurrent use. The destructor runs every task
// still queued (each finishes its call), then joins the threads.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fieldsync::server {

class BoundedExecutor {
 public:
  // `threads` workers (at least 1) and at most `queue_capacity` tasks waiting
  // (at least 1) besides those running.
  BoundedExecutor(size_t threads, size_t queue_capacity);
  ~BoundedExecutor();
  BoundedExecutor(const BoundedExecutor&) = delete;
  BoundedExecutor& operator=(const BoundedExecutor&) = delete;

  // Queues `task` to run on a pool thread; false (and `task` dropped without
  // running) when `queue_capacity` tasks are waiting already. A task must not
  // block on another task of this pool.
  [[nodiscard]] bool TrySchedule(std::function<void()> task);

  size_t threads() const { return threads_.size(); }
  size_t queue_capacity() const { return capacity_; }
  // Tasks waiting now (not those running); for tests and metrics.
  size_t queued() const;

 private:
  void Loop();

  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace fieldsync::server
