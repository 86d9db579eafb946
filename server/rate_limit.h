// RateLimiter: a token bucket per key (a device id, a peer address), O(1) per
// call however many keys there are.
//
// A bucket refills lazily: its tokens are brought up to date only when its key
// calls. A bucket left alone long enough to refill completely (burst /
// per_second seconds) is indistinguishable from a new one, so it may be
// forgotten; that is how memory stays bounded. The buckets are kept in the
// order they were last used, and each call examines at most
// kMaxEvictionsPerCall of the least recently used ones and forgets those that
// are full again: never a sweep of all buckets (at 400,000 devices one sweep
// under the mutex stalled every call). Each call adds at most one bucket and
// may forget up to two, so the set shrinks back to the keys active within one
// refill period.
//
// Past `max_buckets` (a flood of distinct keys faster than they refill), the
// least recently used bucket is forgotten even if not yet full: that key is
// then limited from a full burst again. Lenient on purpose, for memory's sake;
// with the default (1,048,576) it takes over a million distinct keys inside
// one refill period.
//
// Thread-safety: safe for concurrent use (one mutex, held for O(1) work).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fieldsync::server {

class RateLimiter {
 public:
  // Most buckets one call examines for eviction, besides its own.
  static constexpr size_t kMaxEvictionsPerCall = 2;
  static constexpr size_t kDefaultMaxBuckets = size_t{1} << 20;

  // `per_second` tokens a second sustained (<= 0: no refill), `burst` at once
  // (at least 1). `clock` is the time source (tests inject one).
  RateLimiter(double per_second, double burst, std::function<absl::Time()> clock,
              size_t max_buckets = kDefaultMaxBuckets);

  // Takes one token from `key`'s bucket; false if it is empty.
  bool Allow(const std::string& key);
  // As Allow: zero if a token was taken, else how long until one is there
  // (InfiniteDuration without refill).
  absl::Duration Take(const std::string& key);

  // Buckets held now.
  size_t buckets() const;
  // Buckets the last call looked at: its own plus those it considered for
  // eviction (at most 2 + kMaxEvictionsPerCall: one more for the cap). Tests
  // assert on it.
  size_t last_examined() const;

 private:
  struct Bucket {
    std::string key;
    double tokens = 0;
    absl::Time last;
  };
  using Order = std::list<Bucket>;

  // A bucket's tokens at `now` (capped at burst).
  double TokensAt(const Bucket& bucket, absl::Time now) const;

  const double per_second_;
  const double burst_;
  const size_t max_buckets_;
  std::function<absl::Time()> clock_;
  mutable absl::Mutex mu_;
  // Least recently used first.
  Order order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Order::iterator> index_ ABSL_GUARDED_BY(mu_);
  size_t last_examined_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fieldsync::server
