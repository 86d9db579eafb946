#include "clients/sdk/retry.h"

#include <algorithm>
#include <random>

#include "absl/strings/numbers.h"

namespace fieldsync::client {

bool Retryable(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

absl::Duration Backoff(const RetryPolicy& policy, int retry, absl::Duration retry_after) {
  absl::Duration ceiling = policy.initial_backoff;
  for (int i = 1; i < retry && ceiling < policy.max_backoff; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, policy.max_backoff);
  thread_local std::mt19937_64 random{std::random_device{}()};
  const int64_t top = std::max<int64_t>(0, absl::ToInt64Microseconds(ceiling));
  std::uniform_int_distribution<int64_t> pick(top / 2, top);
  absl::Duration jittered = absl::Microseconds(pick(random));
  return std::max(jittered, retry_after);
}

absl::Duration RetryAfter(const grpc::ClientContext& context) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find("retry-after-ms");
  if (it == trailers.end()) return absl::ZeroDuration();
  int64_t ms = 0;
  if (!absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &ms) || ms < 0) {
    return absl::ZeroDuration();
  }
  return absl::Milliseconds(std::min<int64_t>(ms, 3600 * 1000));
}

void Wait(const RetryPolicy& policy, absl::Duration duration) {
  if (policy.sleep) {
    policy.sleep(duration);
  } else {
    absl::SleepFor(duration);
  }
}

}  // namespace fieldsync::client
