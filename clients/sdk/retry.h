// RetryPolicy: exponential back-off with jitter for calls that failed
// UNAVAILABLE or RESOURCE_EXHAUSTED (the server's "retry the call" codes),
// honouring a server's `retry-after-ms` trailer. Thread-compatible value type.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/time/time.h"

namespace fieldsync::client {

struct RetryPolicy {
  // Attempts in all, the first included; 1 = no retry.
  int max_attempts = 6;
  // Wait ceiling before the second attempt; doubles each retry up to `max_backoff`.
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(30);
  // How to wait (tests inject one that records instead of sleeping).
  std::function<void(absl::Duration)> sleep;
};

// True for the codes a client retries: UNAVAILABLE, RESOURCE_EXHAUSTED.
bool Retryable(const grpc::Status& status);

// The wait before retry number `retry` (1-based): with c = min(max_backoff,
// initial_backoff * 2^(retry-1)), a uniform random time in [c/2, c] ("equal
// jitter": devices that failed together spread out, and every retry still
// waits at least half its step, so a run of retries always spans at least
// half the sum of the steps), never less than `retry_after` (the server's
// hint; zero when none).
absl::Duration Backoff(const RetryPolicy& policy, int retry, absl::Duration retry_after);

// The `retry-after-ms` trailer of a finished call, zero when absent.
absl::Duration RetryAfter(const grpc::ClientContext& context);

// Waits per `policy` (its sleep, else the thread sleeps).
void Wait(const RetryPolicy& policy, absl::Duration duration);

}  // namespace fieldsync::client
