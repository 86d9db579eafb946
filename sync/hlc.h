// Hybrid logical clocks (common.proto): hlc = (unix_ms << 16) | counter.
//
// HybridClock is the server's HLC: it never goes backwards, stays at or after
// the wall clock it is given, and folds in every HLC it adopts, so an HLC it
// hands out orders after everything the server has seen. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fieldsync::sync {

inline constexpr uint64_t HlcOf(uint64_t unix_ms, uint16_t counter) {
  return (unix_ms << 16) | counter;
}
inline constexpr uint64_t HlcMillis(uint64_t hlc) { return hlc >> 16; }
inline constexpr uint16_t HlcCounter(uint64_t hlc) { return static_cast<uint16_t>(hlc & 0xffff); }
// The HLC of a wall-clock instant, counter 0 (0 before the epoch).
uint64_t HlcAt(absl::Time time);

class HybridClock {
 public:
  // `now` is the wall clock; it must be callable from any thread.
  explicit HybridClock(std::function<absl::Time()> now);

  // A fresh HLC: greater than every HLC returned or observed before, and at
  // least the wall clock's.
  uint64_t Tick();
  // Folds `hlc` in (an adopted client HLC), so later ticks order after it.
  void Observe(uint64_t hlc);
  // The wall clock.
  absl::Time WallTime() const { return now_(); }

 private:
  std::function<absl::Time()> now_;
  absl::Mutex mu_;
  uint64_t last_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fieldsync::sync
