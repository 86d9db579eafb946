#include "clients/sdk/bundle.h"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "clients/sdk/event_signing.h"
#include "fieldsync/v1/sync_service.pb.h"

namespace fieldsync::client {
namespace {

constexpr char kMagic[] = "FSBUNDLE1\n";
constexpr size_t kMagicSize = sizeof(kMagic) - 1;

}  // namespace

std::string Sha256(const std::string& bytes) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return std::string(reinterpret_cast<char*>(digest), sizeof digest);
}

absl::Status WriteBundle(const std::string& path, const std::vector<v1::SignedEvent>& events) {
  v1::PushRequest request;
  for (const v1::SignedEvent& event : events) *request.add_events() = event;
  const std::string payload = Deterministic(request);
  std::string file(kMagic, kMagicSize);
  for (int shift = 56; shift >= 0; shift -= 8) {
    file.push_back(static_cast<char>((payload.size() >> shift) & 0xff));
  }
  file += payload;
  file += Sha256(payload);

  const std::string temp = path + ".tmp";
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write bundle ", temp, ": ", std::strerror(errno)));
  }
  size_t written = 0;
  while (written < file.size()) {
    ssize_t n = ::write(fd, file.data() + written, file.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(temp.c_str());
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot write bundle ", temp, ": ", std::strerror(err)));
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(temp.c_str());
    return absl::InternalError(absl::StrCat("cannot sync bundle ", temp, ": ", std::strerror(err)));
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(temp.c_str());
    return absl::InternalError(
        absl::StrCat("cannot rename bundle to ", path, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::SignedEvent>> ReadBundle(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read bundle ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string file = buffer.str();
  auto damaged = [&](absl::string_view why) {
    return absl::DataLossError(
        absl::StrCat("bundle ", path, " is damaged (", why, "): copy it from the phone again"));
  };
  if (file.size() < kMagicSize + 8 + 32 || file.compare(0, kMagicSize, kMagic) != 0) {
    return damaged("not a fieldsync bundle");
  }
  uint64_t length = 0;
  for (size_t i = 0; i < 8; ++i) {
    length = (length << 8) | static_cast<unsigned char>(file[kMagicSize + i]);
  }
  if (length != file.size() - kMagicSize - 8 - 32) return damaged("length mismatch");
  const std::string payload = file.substr(kMagicSize + 8, length);
  if (Sha256(payload) != file.substr(kMagicSize + 8 + length)) return damaged("checksum mismatch");
  v1::PushRequest request;
  if (!request.ParseFromString(payload)) return damaged("payload does not parse");
  return std::vector<v1::SignedEvent>(request.events().begin(), request.events().end());
}

}  // namespace fieldsync::client
