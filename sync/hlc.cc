#include "sync/hlc.h"

#include <algorithm>
#include <utility>

namespace fieldsync::sync {

uint64_t HlcAt(absl::Time time) {
  const int64_t ms = absl::ToUnixMillis(time);
  return ms <= 0 ? 0 : HlcOf(static_cast<uint64_t>(ms), 0);
}

HybridClock::HybridClock(std::function<absl::Time()> now) : now_(std::move(now)) {}

uint64_t HybridClock::Tick() {
  const uint64_t wall = HlcAt(now_());
  absl::MutexLock lock(&mu_);
  last_ = std::max(wall, last_ + 1);
  return last_;
}

void HybridClock::Observe(uint64_t hlc) {
  absl::MutexLock lock(&mu_);
  last_ = std::max(last_, hlc);
}

}  // namespace fieldsync::sync
