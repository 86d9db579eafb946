#include "sync/sync_keys.h"

#include "absl/strings/str_cat.h"
#include "base/big_endian.h"

namespace fieldsync::sync::sync_keys {
namespace {

std::string Join(std::string_view a, std::string_view b) {
  std::string out;
  out.reserve(a.size() + b.size());
  out.append(a);
  out.append(b);
  return out;
}

}  // namespace

std::string Device(std::string_view device_id) { return Join(kDevicePrefix, device_id); }
std::string Subject(std::string_view subject_key) { return Join(kSubjectPrefix, subject_key); }

std::string Area(std::string_view area_code, std::string_view subject_key) {
  std::string out = Join(kAreaPrefix, area_code);
  out.push_back('\0');
  out.append(subject_key);
  return out;
}

std::string AreaScan(std::string_view area_prefix) { return Join(kAreaPrefix, area_prefix); }

std::string Rejection(uint64_t offset) { return Join(kRejectionPrefix, base::Be64(offset)); }

std::string RejectionHash(std::string_view content_hash) {
  return Join(kRejectionHashPrefix, content_hash);
}

std::string RejectionDevicePrefix(std::string_view device_id) {
  std::string out = Join(kRejectionDevicePrefix, device_id);
  out.push_back('\0');
  return out;
}

std::string RejectionDevice(std::string_view device_id, uint64_t offset) {
  return RejectionDevicePrefix(device_id) + base::Be64(~offset);
}

std::string RejectionAreaPrefix(std::string_view area_prefix) {
  std::string out = Join(kRejectionAreaPrefix, area_prefix);
  out.push_back('\0');
  return out;
}

std::string RejectionArea(std::string_view area_prefix, uint64_t offset) {
  return RejectionAreaPrefix(area_prefix) + base::Be64(~offset);
}

std::string RejectionAll(uint64_t offset) { return Join(kRejectionAllPrefix, base::Be64(~offset)); }

std::string PendingBlob(std::string_view sha256, uint64_t offset) {
  std::string out = Join(kPendingBlobPrefix, sha256);
  out.push_back('\0');
  out.append(base::Be64(offset));
  return out;
}

std::string PendingEvent(std::string_view event_id, uint64_t offset) {
  std::string out = Join(kPendingEventPrefix, event_id);
  out.push_back('\0');
  out.append(base::Be64(offset));
  return out;
}

std::string EventIdPrefix(std::string_view event_id) {
  std::string out = Join(kEventIdPrefix, event_id);
  out.push_back('\0');
  return out;
}

std::string EventId(std::string_view event_id, std::string_view device_id) {
  return EventIdPrefix(event_id) + std::string(device_id);
}

uint64_t TrailingOffset(std::string_view key, bool complemented) {
  if (key.size() < 8) return 0;
  const uint64_t value = base::ParseBe64(key.substr(key.size() - 8)).value_or(0);
  return complemented ? ~value : value;
}

}  // namespace fieldsync::sync::sync_keys
