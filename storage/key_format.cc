#include "storage/key_format.h"

#include "base/big_endian.h"

namespace fieldsync::storage::keys {

std::string LogKey(uint64_t offset) {
  std::string key;
  base::AppendBe64(&key, offset);
  return key;
}

std::optional<uint64_t> ParseLogKey(std::string_view key) {
  if (key.size() != 8) return std::nullopt;
  return base::ReadBe64Prefix(key);
}

std::string OffsetValue(uint64_t offset) { return LogKey(offset); }

std::string SubjectPrefix(std::string_view subject) {
  std::string key;
  key.reserve(2 + subject.size() + 8);
  key.push_back(static_cast<char>((subject.size() >> 8) & 0xff));
  key.push_back(static_cast<char>(subject.size() & 0xff));
  key.append(subject);
  return key;
}

std::string SubjectKey(std::string_view subject, uint64_t offset) {
  std::string key = SubjectPrefix(subject);
  base::AppendBe64(&key, offset);
  return key;
}

std::string ScopePrefix(std::string_view area_prefix) {
  std::string key;
  key.reserve(1 + area_prefix.size() + 8);
  key.push_back(static_cast<char>(area_prefix.size()));
  key.append(area_prefix);
  return key;
}

std::string ScopeKey(std::string_view area_prefix, uint64_t offset) {
  std::string key = ScopePrefix(area_prefix);
  base::AppendBe64(&key, offset);
  return key;
}

uint64_t IndexKeyOffset(std::string_view key) {
  return base::ReadBe64Prefix(key.substr(key.size() - 8));
}

namespace {
std::string Tagged(char tag, std::string_view sha256) {
  std::string key(1, tag);
  key.append(sha256);
  return key;
}
}  // namespace

std::string BlobContentKey(std::string_view sha256) { return Tagged(kBlobContentTag, sha256); }
std::string BlobUploadKey(std::string_view sha256) { return Tagged(kBlobUploadTag, sha256); }
std::string BlobChunkPrefix(std::string_view sha256) { return Tagged(kBlobChunkTag, sha256); }
std::string BlobChunkKey(std::string_view sha256, uint64_t offset) {
  std::string key = BlobChunkPrefix(sha256);
  base::AppendBe64(&key, offset);
  return key;
}

}  // namespace fieldsync::storage::keys
