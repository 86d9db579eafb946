// The one place of the SDK that knows how an event is encoded for its
// signature and how it is signed (event.proto, Event.signature): the
// deterministic protobuf serialization of the Event with `signature`
// cleared, signed with the device's Ed25519 key (libsodium). When the
// contract changes the signed bytes (issue 9), only this file changes.
//
// Also the device's identity material: key pairs and event ids. Thread-safe
// (stateless; libsodium is initialised once).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "fieldsync/v1/event.pb.h"

namespace fieldsync::client {

// A device key pair: public 32 bytes, secret 64 bytes (libsodium layout).
struct DeviceKey {
  std::string public_key;
  std::string secret_key;
};

// A fresh Ed25519 key pair. INTERNAL if libsodium cannot initialise.
absl::StatusOr<DeviceKey> MakeDeviceKey();

// The bytes the signature covers: `event` serialized deterministically with
// `signature` cleared.
std::string SignedBytes(const v1::Event& event);

// Sets event.signature with `secret_key` (64 bytes) over SignedBytes(event).
// INVALID_ARGUMENT if the key has the wrong size.
absl::Status SignEvent(const std::string& secret_key, v1::Event& event);

// True if event.signature verifies with `public_key` (for bundle imports).
bool VerifyEvent(const std::string& public_key, const v1::Event& event);

// A lowercase random RFC 4122 version 4 UUID (event ids, household ids).
std::string NewUuid();

// Deterministic serialization of any message (bundles, fingerprints).
std::string Deterministic(const google::protobuf::Message& message);

}  // namespace fieldsync::client
