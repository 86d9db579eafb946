#include "server/stream_readers.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

namespace fieldsync::server {

StreamReaders::StreamReaders(int threads) {
  for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { Run(); });
}

StreamReaders::~StreamReaders() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& thread : threads_) thread.join();
}

void StreamReaders::Submit(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(task));
}

void StreamReaders::Run() {
  pthread_setname_np(pthread_self(), "stream-reader");  // For top -H and perf.
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !queue_.empty() || stopping_;
      };
      mu_.Await(absl::Condition(&ready));
      // Stopping drains what is queued first: a task holds a stream that
      // only the task lets go of.
      if (queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

}  // namespace fieldsync::server
