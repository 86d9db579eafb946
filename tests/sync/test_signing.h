// How tests carry a device's signature with an Event until it is pushed.
//
// The wire carries SignedEvent{event bytes, signature} (event.proto). Tests
// build, change and re-sign parsed Events, so until an event is pushed its
// test signature rides inside it as an unknown field with the number Event
// reserved for it (9), which no server ever accepts inside event bytes:
//   SignForTest   signs the event's bytes (deterministic, without field 9)
//                 and attaches the signature;
//   SealForPush   makes the SignedEvent: the same bytes, and the signature.
// So an event changed after signing fails BAD_SIGNATURE exactly as a device's
// tampered bytes would. Header-only: used by tests/sync and tests/server.
#pragma once

#include <sodium.h>

#include <string>
#include <vector>

#include "fieldsync/v1/event.pb.h"
#include "google/protobuf/unknown_field_set.h"
#include "gtest/gtest.h"
#include "sync/event_codec.h"

namespace fieldsync::testsig {

inline constexpr int kTestSignatureField = 9;

// The signature a test attached to `event` ("" if none).
inline std::string TestSignature(const v1::Event& event) {
  const google::protobuf::UnknownFieldSet& unknown = event.GetReflection()->GetUnknownFields(event);
  for (int i = 0; i < unknown.field_count(); ++i) {
    const google::protobuf::UnknownField& field = unknown.field(i);
    if (field.number() == kTestSignatureField &&
        field.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      return field.length_delimited();
    }
  }
  return "";
}

// The event without its test signature.
inline v1::Event WithoutTestSignature(const v1::Event& event) {
  v1::Event copy = event;
  google::protobuf::UnknownFieldSet* unknown = copy.GetReflection()->MutableUnknownFields(&copy);
  google::protobuf::UnknownFieldSet kept;
  for (int i = 0; i < unknown->field_count(); ++i) {
    if (unknown->field(i).number() != kTestSignatureField) kept.AddField(unknown->field(i));
  }
  unknown->Clear();
  unknown->MergeFrom(kept);
  return copy;
}

// Attaches `signature` (any bytes: tests of bad signatures set their own).
inline void SetTestSignature(v1::Event& event, const std::string& signature) {
  event = WithoutTestSignature(event);
  event.GetReflection()->MutableUnknownFields(&event)->AddLengthDelimited(kTestSignatureField,
                                                                          signature);
}

// The bytes a test device signs and pushes for `event`.
inline std::string TestEventBytes(const v1::Event& event) {
  return sync::DeterministicBytes(WithoutTestSignature(event));
}

// Signs `event` with `secret_key` (64 bytes of libsodium) over TestEventBytes.
inline void SignForTest(const std::string& secret_key, v1::Event& event) {
  const std::string bytes = TestEventBytes(event);
  unsigned char signature[crypto_sign_BYTES];
  crypto_sign_detached(signature, nullptr, reinterpret_cast<const unsigned char*>(bytes.data()),
                       bytes.size(), reinterpret_cast<const unsigned char*>(secret_key.data()));
  SetTestSignature(event, std::string(reinterpret_cast<char*>(signature), sizeof signature));
}

// The SignedEvent a device pushes for `event`.
inline v1::SignedEvent SealForPush(const v1::Event& event) {
  v1::SignedEvent out;
  out.set_event(TestEventBytes(event));
  out.set_signature(TestSignature(event));
  return out;
}
inline std::vector<v1::SignedEvent> SealForPush(const std::vector<v1::Event>& events) {
  std::vector<v1::SignedEvent> out;
  out.reserve(events.size());
  for (const v1::Event& event : events) out.push_back(SealForPush(event));
  return out;
}

// The Event inside a SignedEvent (an empty one, and a test failure, if its
// bytes do not parse).
inline v1::Event EventOf(const v1::SignedEvent& event) {
  v1::Event out;
  EXPECT_TRUE(out.ParseFromString(event.event()));
  return out;
}

// A received LogEntry, decoded (a test failure, and an empty value, if it
// does not parse).
inline sync::LoggedEvent Decoded(const v1::LogEntry& entry) {
  absl::StatusOr<sync::LoggedEvent> decoded = sync::DecodeLogEntry(entry);
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  return decoded.ok() ? *std::move(decoded) : sync::LoggedEvent{};
}
inline std::vector<sync::LoggedEvent> Decoded(
    const google::protobuf::RepeatedPtrField<v1::LogEntry>& entries) {
  std::vector<sync::LoggedEvent> out;
  out.reserve(entries.size());
  for (const v1::LogEntry& entry : entries) out.push_back(Decoded(entry));
  return out;
}

}  // namespace fieldsync::testsig
