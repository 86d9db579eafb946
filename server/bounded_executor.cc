#include "server/bounded_executor.h"

#include <algorithm>
#include <utility>

namespace fieldsync::server {

BoundedExecutor::BoundedExecutor(size_t threads, size_t queue_capacity)
    : capacity_(std::max<size_t>(queue_capacity, 1)) {
  const size_t count = std::max<size_t>(threads, 1);
  threads_.reserve(count);
  for (size_t i = 0; i < count; ++i) threads_.emplace_back([this] { Loop(); });
}

BoundedExecutor::~BoundedExecutor() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& thread : threads_) thread.join();
}

bool BoundedExecutor::TrySchedule(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  if (tasks_.size() >= capacity_) return false;
  tasks_.push_back(std::move(task));
  return true;
}

size_t BoundedExecutor::queued() const {
  absl::MutexLock lock(&mu_);
  return tasks_.size();
}

void BoundedExecutor::Loop() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !tasks_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      // Stopping with nothing queued: every accepted task has run.
      if (tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace fieldsync::server
