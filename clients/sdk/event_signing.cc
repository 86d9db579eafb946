#include "clients/sdk/event_signing.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <sodium.h>

#include "absl/strings/str_cat.h"
#include "base/uuid.h"

namespace fieldsync::client {
namespace {

bool SodiumReady() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}

}  // namespace

std::string Deterministic(const google::protobuf::Message& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

absl::StatusOr<DeviceKey> MakeDeviceKey() {
  if (!SodiumReady()) return absl::InternalError("libsodium failed to initialise");
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  DeviceKey key;
  key.public_key.assign(reinterpret_cast<char*>(pk), sizeof pk);
  key.secret_key.assign(reinterpret_cast<char*>(sk), sizeof sk);
  sodium_memzero(sk, sizeof sk);
  return key;
}

absl::StatusOr<v1::SignedEvent> SignEvent(const std::string& secret_key, const v1::Event& event) {
  if (!SodiumReady()) return absl::InternalError("libsodium failed to initialise");
  if (secret_key.size() != crypto_sign_SECRETKEYBYTES) {
    return absl::InvalidArgumentError(absl::StrCat("device secret key has ", secret_key.size(),
                                                   " bytes, want ", crypto_sign_SECRETKEYBYTES));
  }
  v1::SignedEvent out;
  // Encoded once: these bytes are what is signed, stored, sent and resent.
  out.set_event(event.SerializeAsString());
  const std::string& bytes = out.event();
  unsigned char signature[crypto_sign_BYTES];
  crypto_sign_detached(signature, nullptr, reinterpret_cast<const unsigned char*>(bytes.data()),
                       bytes.size(), reinterpret_cast<const unsigned char*>(secret_key.data()));
  out.set_signature(std::string(reinterpret_cast<char*>(signature), sizeof signature));
  return out;
}

absl::StatusOr<v1::Event> EventOf(const v1::SignedEvent& event) {
  v1::Event out;
  if (!out.ParseFromString(event.event())) {
    return absl::DataLossError("a signed event's bytes do not parse");
  }
  return out;
}

bool VerifyEvent(const std::string& public_key, const v1::SignedEvent& event) {
  if (!SodiumReady() || public_key.size() != crypto_sign_PUBLICKEYBYTES ||
      event.signature().size() != crypto_sign_BYTES) {
    return false;
  }
  const std::string& bytes = event.event();
  return crypto_sign_verify_detached(
             reinterpret_cast<const unsigned char*>(event.signature().data()),
             reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
             reinterpret_cast<const unsigned char*>(public_key.data())) == 0;
}

std::string NewUuid() {
  (void)SodiumReady();  // randombytes_buf initialises on its own if needed.
  unsigned char bytes[16];
  randombytes_buf(bytes, sizeof bytes);
  return base::UuidV4(bytes);
}

}  // namespace fieldsync::client
