// The relay bundle: a phone's unsettled events in a file a township tablet
// carries to the server (USB, Bluetooth). The events stay the phone's: they
// keep its signed bytes and signature, untouched, and the server sequences and
// scopes them as the phone's (docs/sync.md "Relays").
//
// Format (docs/client.md "Relay bundles"), all integers big-endian:
//   magic      10 bytes  "FSBUNDLE1\n"
//   length      8 bytes  size of payload
//   payload              a fieldsync.v1.PushRequest, deterministic serialization;
//                        SignedEvents of one device, in device_seq order
//   checksum   32 bytes  SHA-256 of payload
// A file whose magic, length or checksum does not match is DATA_LOSS: a
// truncated copy is refused whole, never half-imported.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fieldsync/v1/event.pb.h"

namespace fieldsync::client {

// Writes `events` to `path` atomically (a temp file fsynced, then renamed).
absl::Status WriteBundle(const std::string& path, const std::vector<v1::SignedEvent>& events);
// Reads a bundle; DATA_LOSS if damaged, NOT_FOUND if missing.
absl::StatusOr<std::vector<v1::SignedEvent>> ReadBundle(const std::string& path);

// SHA-256 of `bytes` (32 bytes).
std::string Sha256(const std::string& bytes);

}  // namespace fieldsync::client
