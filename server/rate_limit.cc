#include "server/rate_limit.h"

#include <algorithm>
#include <iterator>
#include <optional>
#include <utility>

namespace fieldsync::server {

RateLimiter::RateLimiter(double per_second, double burst, std::function<absl::Time()> clock,
                         size_t max_buckets)
    : per_second_(per_second),
      burst_(std::max(burst, 1.0)),
      max_buckets_(std::max<size_t>(max_buckets, 1)),
      clock_(std::move(clock)) {}

bool RateLimiter::Allow(const std::string& key) { return Take(key) == absl::ZeroDuration(); }

double RateLimiter::TokensAt(const Bucket& bucket, absl::Time now) const {
  if (now <= bucket.last || per_second_ <= 0) return bucket.tokens;
  return std::min(burst_, bucket.tokens + absl::ToDoubleSeconds(now - bucket.last) * per_second_);
}

absl::Duration RateLimiter::Take(const std::string& key) {
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  size_t examined = 1;
  // The caller's bucket, if it has one (a list iterator: stable while other
  // buckets are erased).
  std::optional<Order::iterator> own;
  if (auto it = index_.find(key); it != index_.end()) own = it->second;
  // A new key past the cap: the least recently used bucket makes room.
  if (!own && index_.size() >= max_buckets_) {
    ++examined;
    index_.erase(order_.front().key);
    order_.pop_front();
  }
  // Forget up to kMaxEvictionsPerCall least recently used buckets that are
  // full again: each equals a new bucket, so forgetting it changes nothing.
  // The front is the one left alone longest; once it is not full, stop (any
  // bucket left alone for burst / per_second is full, so the set never holds
  // more than the keys of one such period for long).
  for (size_t i = 0; i < kMaxEvictionsPerCall && !order_.empty(); ++i) {
    Bucket& oldest = order_.front();
    if (own && &oldest == &**own) break;  // The caller's own.
    ++examined;
    if (TokensAt(oldest, now) < burst_) break;
    index_.erase(oldest.key);
    order_.pop_front();
  }
  last_examined_ = examined;

  Bucket* bucket = nullptr;
  if (own) {
    // Most recently used goes last.
    order_.splice(order_.end(), order_, *own);
    bucket = &**own;
    bucket->tokens = TokensAt(*bucket, now);
    bucket->last = std::max(bucket->last, now);
  } else {
    order_.push_back(Bucket{key, burst_, now});
    index_.emplace(key, std::prev(order_.end()));
    bucket = &order_.back();
  }
  if (bucket->tokens < 1.0) {
    if (per_second_ <= 0) return absl::InfiniteDuration();
    return absl::Seconds((1.0 - bucket->tokens) / per_second_);
  }
  bucket->tokens -= 1.0;
  return absl::ZeroDuration();
}

size_t RateLimiter::buckets() const {
  absl::MutexLock lock(&mu_);
  return index_.size();
}

size_t RateLimiter::last_examined() const {
  absl::MutexLock lock(&mu_);
  return last_examined_;
}

}  // namespace fieldsync::server
