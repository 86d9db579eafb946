// The one place of the SDK that knows how an event is encoded for its
// signature and how it is signed (event.proto, SignedEvent): the Event is
// encoded once, those bytes are signed with the device's Ed25519 key
// (libsodium) and kept, bytes and signature, in a SignedEvent: the outbox
// stores it and every resend sends the same bytes. Nothing is re-encoded.
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

// Encodes `event` once and signs those bytes with `secret_key` (64 bytes).
// INVALID_ARGUMENT if the key has the wrong size.
absl::StatusOr<v1::SignedEvent> SignEvent(const std::string& secret_key, const v1::Event& event);

// True if the signature verifies over the event bytes with `public_key`.
bool VerifyEvent(const std::string& public_key, const v1::SignedEvent& event);

// The Event inside a SignedEvent; DATA_LOSS if its bytes do not parse.
absl::StatusOr<v1::Event> EventOf(const v1::SignedEvent& event);

// A lowercase random RFC 4122 version 4 UUID (event ids, household ids).
std::string NewUuid();

// Deterministic serialization of any message (bundles, fingerprints).
std::string Deterministic(const google::protobuf::Message& message);

}  // namespace fieldsync::client
