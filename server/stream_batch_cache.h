// BatchCache: the catch-up batches that unfiltered Subscribe streams share
// (32 MiB). Internal to the stream service (server/stream_*.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <tuple>

#include <grpcpp/support/byte_buffer.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fieldsync::server {

// The catch-up batches of unfiltered streams, shared: streams that read the
// same stretch of the log with the same bounds (HQ consumers replaying from
// the start together) read it once. A batch made from `after` stays right
// forever (the log is append-only), even if a later read would reach
// further. Bounded by kCacheBytes, oldest insertion out first. A leaf lock.
// Thread-safe.
class BatchCache {
 public:
  struct Key {
    uint64_t after = 0;
    size_t batch_events = 0;
    size_t batch_bytes = 0;
    bool operator<(const Key& other) const {
      return std::tie(after, batch_events, batch_bytes) <
             std::tie(other.after, other.batch_events, other.batch_bytes);
    }
  };
  struct Batch {
    grpc::ByteBuffer buffer;  // Shares its slice with every copy.
    uint64_t through = 0;
    size_t bytes = 0;
  };

  std::optional<Batch> Find(const Key& key) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = batches_.find(key);
    if (it == batches_.end()) return std::nullopt;
    return it->second;
  }

  void Insert(const Key& key, Batch batch) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (batch.bytes > kCacheBytes / 4) return;
    auto [it, inserted] = batches_.emplace(key, std::move(batch));
    if (!inserted) return;
    bytes_ += it->second.bytes;
    order_.push_back(key);
    while (bytes_ > kCacheBytes && !order_.empty()) {
      auto oldest = batches_.find(order_.front());
      bytes_ -= oldest->second.bytes;
      batches_.erase(oldest);
      order_.pop_front();
    }
  }

 private:
  static constexpr size_t kCacheBytes = 32 << 20;
  absl::Mutex mu_;
  std::map<Key, Batch> batches_ ABSL_GUARDED_BY(mu_);
  std::deque<Key> order_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fieldsync::server
