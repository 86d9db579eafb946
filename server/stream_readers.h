// StreamReaders: the bounded executor on which Subscribe streams read the
// log for their catch-up, so that no gRPC callback thread ever waits for
// RocksDB (issue 8, "no blocking work on gRPC callback threads").
//
// A fixed number of threads run submitted tasks in submission order. The
// queue is bounded by its users, not here: each Subscribe stream has at most
// one read task queued or running (server/stream_reactor.cc), so the queue
// holds at most limits.max_concurrent_streams tasks. A task must not block
// on anything but the store's reads, and bounds its own work (one step of
// at most a few thousand records examined) so that streams take turns.
//
// Thread-safety: Submit is safe from any thread.
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fieldsync::server {

class StreamReaders {
 public:
  // Starts `threads` (at least 1) threads.
  explicit StreamReaders(int threads);
  // Runs the tasks still queued, then joins the threads.
  ~StreamReaders();

  StreamReaders(const StreamReaders&) = delete;
  StreamReaders& operator=(const StreamReaders&) = delete;

  void Submit(std::function<void()> task) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run();

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace fieldsync::server
