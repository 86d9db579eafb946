// ServerState: whether fieldsyncd takes calls, and how many are in flight.
// The shutdown sequence drains through it: BeginDrain() makes every new call
// answer UNAVAILABLE, WaitIdle() waits for the calls already running.
//
// Thread-safe.
#pragma once

#include <cstdint>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fieldsync::server {

class ServerState {
 public:
  // Registers a new call. Returns false (and registers nothing) once draining:
  // the caller must answer UNAVAILABLE.
  bool TryStartCall() {
    absl::MutexLock lock(&mu_);
    if (draining_) return false;
    ++in_flight_;
    return true;
  }

  // Ends a call registered by a successful TryStartCall.
  void FinishCall() {
    absl::MutexLock lock(&mu_);
    --in_flight_;
  }

  // From now on TryStartCall answers false. Idempotent.
  void BeginDrain() {
    absl::MutexLock lock(&mu_);
    draining_ = true;
  }

  bool draining() const {
    absl::MutexLock lock(&mu_);
    return draining_;
  }

  int64_t in_flight() const {
    absl::MutexLock lock(&mu_);
    return in_flight_;
  }

  // Blocks until no call is in flight or `deadline` passes; true if idle.
  bool WaitIdle(absl::Time deadline) const {
    absl::MutexLock lock(&mu_);
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
    return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
  }

 private:
  mutable absl::Mutex mu_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fieldsync::server
