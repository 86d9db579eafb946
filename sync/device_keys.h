// DeviceKeys: how the sync engine learns who a device is.
//
// Every pushed event names the device that made and signed it; the engine asks
// DeviceKeys for that device's enrolled Ed25519 key, the user it is bound to,
// that user's role and whether the device was revoked. The server implements
// it over its identity records; tests use an in-memory map.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "fieldsync/v1/common.pb.h"

namespace fieldsync::sync {

struct DeviceInfo {
  // The device's Ed25519 public key: exactly 32 bytes.
  std::string public_key;
  // The user the device is enrolled to: the actor of the events it signs
  // when another device relays them.
  std::string user_id;
  // That user's role, for the events it signs when relayed.
  v1::Role role = v1::ROLE_UNSPECIFIED;
  // That user's unit (User.unit_id), empty if none: the Author::unit_id of
  // the events it signs when relayed.
  std::string unit_id;
  // True once revoked: its new events are rejected (DEVICE_REVOKED).
  bool revoked = false;
};

// Implementations must be safe for concurrent use from any number of threads.
class DeviceKeys {
 public:
  virtual ~DeviceKeys() = default;
  // The device with id `device_id`, or nullopt if no such device was ever
  // enrolled. An error status fails the whole push that asked (it is not the
  // device's fault), so return one only for real failures (storage errors).
  virtual absl::StatusOr<std::optional<DeviceInfo>> Lookup(std::string_view device_id) const = 0;
};

}  // namespace fieldsync::sync
