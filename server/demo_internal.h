// Pieces shared by the demo loaders (server/demo.cc: the county;
// server/demo_province.cc: the province): the retrying call through the
// served API, the generated ids and places, and the demo devices that sign
// and push events. Not an API of fieldsyncd; only the loaders include it.
//
// Thread-safety: the free functions are; a DemoDevice is used by one thread
// at a time (its sequence and HLC are its own state).
#pragma once

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "fieldsync/v1/sync_service.grpc.pb.h"

namespace fieldsync::server::demo_internal {

inline absl::Status FromGrpc(const grpc::Status& status, absl::string_view what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat("demo: ", what, ": ", status.error_message()));
}

// Calls `rpc` with `token`, waiting out RESOURCE_EXHAUSTED as the server
// asks (retry-after-ms): the demo is many calls in a few seconds, under the
// same rate limits as any client.
template <typename Stub, typename Request, typename Response>
absl::Status Call(Stub& stub,
                  grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Request&, Response*),
                  const std::string& token, const Request& request, Response* response,
                  absl::string_view what) {
  for (int attempt = 0;; ++attempt) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
    grpc::Status status = (stub.*rpc)(&context, request, response);
    if (status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED || attempt >= 100) {
      return FromGrpc(status, what);
    }
    int64_t wait_ms = 200;
    auto trailers = context.GetServerTrailingMetadata();
    if (auto it = trailers.find("retry-after-ms"); it != trailers.end()) {
      int64_t parsed = 0;
      if (absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &parsed)) {
        wait_ms = std::clamp<int64_t>(parsed, 10, 60'000);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
  }
}

// A random version-4 UUID in text form.
std::string Uuid();

// A valid 18-character resident ID number in the county `county6`.
std::string ResidentId(const std::string& county6, uint64_t n);

// A GPS fix.
v1::Location At(double lat, double lng, float accuracy_m, absl::Time when);

// A demo device (server/demo.cc): an Ed25519 key, enrolled for one user,
// that signs events as a phone's app would.
class DemoDevice;
struct DemoDeviceDeleter {
  void operator()(DemoDevice* device) const;
};
using DemoDevicePtr = std::unique_ptr<DemoDevice, DemoDeviceDeleter>;

// A new device with a fresh key (not enrolled yet).
DemoDevicePtr NewDemoDevice();

// Issues a code for `user_id` as the admin and enrolls `device` with it.
absl::Status EnrollDemoDevice(DemoDevice& device, v1::AdminService::Stub& admin,
                              v1::SyncService::Stub& sync, const std::string& admin_token,
                              const std::string& user_id);

// The bearer token of an enrolled device.
const std::string& DemoDeviceToken(const DemoDevice& device);

// One event to make: on household `household_id` in `village` at `at`, its
// body filled by `body`.
struct DemoEventSpec {
  std::string household_id;
  std::string village;
  absl::Time at;
  std::function<void(v1::Event&)> body;
};

// Makes, signs and pushes `specs` in order as `device` (batches of 50);
// every result must be a recorded conflict if `want_conflict`, else
// accepted; INTERNAL naming the result otherwise.
absl::Status PushDemoEvents(v1::SyncService::Stub& sync, DemoDevice& device,
                            const std::vector<DemoEventSpec>& specs, bool want_conflict,
                            absl::string_view what);

}  // namespace fieldsync::server::demo_internal
