#include "server/blob_uploads.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/auth.h"
#include "storage/sha256.h"
#include "sync/scope.h"

namespace fieldsync::server {
namespace {

// How many referring events one header looks at: a photo is named by a visit
// and perhaps a correction or two, never by thousands.
constexpr size_t kMaxReferences = 64;
// Partial uploads read per store call (quota sums, the reaper).
constexpr size_t kListBatch = 512;

std::string Hex(std::string_view sha256) { return storage::ToHex(sha256); }

}  // namespace

BlobUploads::BlobUploads(storage::EventStore* store, const sync::SyncEngine* engine,
                         const Directory* directory, BlobUploadSettings settings, Clock clock)
    : store_(store),
      engine_(engine),
      directory_(directory),
      settings_(settings),
      clock_(std::move(clock)) {}

BlobUploads::~BlobUploads() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (reaper_.joinable()) reaper_.join();
}

absl::Status BlobUploads::Start() {
  ASSIGN_OR_RETURN(uint64_t freed, ReapExpired());
  if (freed > 0) spdlog::info("blob uploads: {} bytes of expired partial uploads discarded", freed);
  reaper_ = std::thread([this] { ReaperLoop(); });
  return absl::OkStatus();
}

void BlobUploads::ReaperLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    // Real time paces the rounds; the injected clock decides what expired.
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), settings_.reaper_interval);
    if (stopping_) return;
    mu_.Unlock();
    absl::StatusOr<uint64_t> freed = ReapExpired();
    if (!freed.ok()) {
      spdlog::warn("blob uploads: reaping expired partial uploads failed: {}",
                   freed.status().ToString());
    } else if (*freed > 0) {
      spdlog::info("blob uploads: {} bytes of expired partial uploads discarded", *freed);
    }
    mu_.Lock();
  }
}

absl::Time BlobUploads::ExpiresAt(const storage::BlobStatus& partial) const {
  return partial.updated_at + settings_.partial_ttl;
}

absl::StatusOr<uint64_t> BlobUploads::ReapExpired() {
  const absl::Time now = clock_();
  uint64_t freed = 0;
  std::string position;
  while (true) {
    ASSIGN_OR_RETURN(std::vector<storage::BlobUpload> uploads,
                     store_->ListBlobUploads(position, kListBatch));
    for (const storage::BlobUpload& upload : uploads) {
      position = upload.sha256;
      if (ExpiresAt(upload.status) > now) continue;
      // Only if still that owner's: a chunk that arrived meanwhile keeps it.
      ASSIGN_OR_RETURN(uint64_t bytes,
                       store_->DiscardBlobUpload(upload.sha256, upload.status.owner));
      freed += bytes;
    }
    if (uploads.size() < kListBatch) return freed;
  }
}

absl::Status BlobUploads::CheckAllowance(const std::string& device_id, std::string_view sha256,
                                         uint64_t total_size) {
  // The device's unfinished uploads: in the store, and being started on open
  // streams (not written yet), each counted once by its declared size.
  absl::flat_hash_map<std::string, uint64_t> held;
  if (auto it = reserved_.find(device_id); it != reserved_.end()) held = it->second;
  std::string position;
  while (true) {
    ASSIGN_OR_RETURN(std::vector<storage::BlobUpload> uploads,
                     store_->ListBlobUploads(position, kListBatch));
    for (const storage::BlobUpload& upload : uploads) {
      position = upload.sha256;
      if (upload.status.owner == device_id) held[upload.sha256] = upload.status.total_size;
    }
    if (uploads.size() < kListBatch) break;
  }
  held.erase(std::string(sha256));
  uint64_t holding = 0;
  for (const auto& [sha, size] : held) holding += size;
  const uint64_t bound = settings_.max_partial_bytes_per_device;
  constexpr char kLimit[] = "limits.max_partial_blob_bytes_per_device";
  if (total_size > bound) {
    // Never passes, whatever the device finishes first.
    return OverSizeLimit(absl::StrCat("a blob of ", total_size, " bytes is over ", kLimit, "=",
                                      bound, ": it can never be uploaded to this server"),
                         kLimit, bound, total_size);
  }
  if (holding > bound - total_size) {
    return RetryLater(
        absl::StrCat("device ", device_id, " holds ", holding, " bytes in ", held.size(),
                     " unfinished upload(s); a blob of ", total_size, " more bytes would pass ",
                     kLimit, "=", bound,
                     " (finish those uploads, or wait for them to expire after "
                     "limits.partial_blob_ttl_seconds=",
                     absl::ToInt64Seconds(settings_.partial_ttl), ")"),
        kLimit, bound, absl::ZeroDuration());
  }
  return absl::OkStatus();
}

absl::StatusOr<storage::BlobStatus> BlobUploads::Begin(const Principal& caller,
                                                       const sync::Scope& scope,
                                                       std::string_view sha256,
                                                       uint64_t total_size) {
  ASSIGN_OR_RETURN(storage::BlobStatus status, store_->GetBlobStatus(sha256));
  if (status.complete) return status;

  // Scope: an event naming the blob that the caller signed or may read.
  ASSIGN_OR_RETURN(std::vector<sync::BlobReference> references,
                   engine_->BlobReferences(sha256, kMaxReferences));
  bool signer = false;
  bool in_scope = false;
  if (!references.empty()) {
    for (const sync::BlobReference& reference : references) {
      if (reference.device_id == caller.device_id()) signer = true;
    }
    if (!signer) {
      for (const sync::BlobReference& reference : references) {
        if (sync::Contains(scope, reference.area_code, reference.subject_key)) in_scope = true;
      }
    }
  }
  if (!signer && !in_scope) {
    // The same answer whether events outside the scope name it or none does.
    return absl::FailedPreconditionError(
        absl::StrCat("no event in the caller's scope names blob ", Hex(sha256),
                     " as a missing blob; push the event that names it first"));
  }

  const std::string& device = caller.device_id();
  if (status.total_size != 0) {
    const bool mine = status.owner == device;
    bool discard = false;
    if (mine) {
      if (status.total_size == total_size) {
        absl::MutexLock lock(&mu_);
        reserved_[device][std::string(sha256)] = total_size;
        return status;  // Resume.
      }
      discard = true;  // The caller declared another size: start over.
    } else if (ExpiresAt(status) <= clock_()) {
      discard = true;
    } else if (signer) {
      // The photographer takes over from a device that did not sign an event
      // naming the blob.
      bool owner_signed = false;
      for (const sync::BlobReference& reference : references) {
        if (reference.device_id == status.owner) owner_signed = true;
      }
      discard = !owner_signed;
    }
    if (!discard) {
      return absl::AlreadyExistsError(absl::StrCat(
          "another device is uploading blob ", Hex(sha256),
          "; it may be taken over once that upload expires at ",
          absl::FormatTime(absl::RFC3339_sec, ExpiresAt(status), absl::UTCTimeZone()),
          " (limits.partial_blob_ttl_seconds=", absl::ToInt64Seconds(settings_.partial_ttl),
          " after its last chunk)"));
    }
    RETURN_IF_ERROR(store_->DiscardBlobUpload(sha256, status.owner).status());
  }
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(CheckAllowance(device, sha256, total_size));
  reserved_[device][std::string(sha256)] = total_size;
  return storage::BlobStatus{};
}

void BlobUploads::End(std::string_view device_id, std::string_view sha256) {
  absl::MutexLock lock(&mu_);
  auto it = reserved_.find(std::string(device_id));
  if (it == reserved_.end()) return;
  it->second.erase(std::string(sha256));
  if (it->second.empty()) reserved_.erase(it);
}

absl::Status BlobUploads::BeforeChunk(const Principal& caller, uint64_t bytes) {
  // The device and its user as they are now, not as they were when the call
  // was admitted: a revocation ends the upload at its next chunk.
  ASSIGN_OR_RETURN(std::optional<v1::Device> device, directory_->GetDevice(caller.device_id()));
  if (!device.has_value()) {
    return absl::UnauthenticatedError(
        absl::StrCat("device ", caller.device_id(), " is no longer enrolled"));
  }
  if (device->revoked()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "device ", device->id(), " was revoked: the upload ends (", device->revoke_reason(), ")"));
  }
  ASSIGN_OR_RETURN(std::optional<v1::User> user, directory_->GetUser(device->user_id()));
  if (!user.has_value() || user->disabled()) {
    return absl::UnauthenticatedError(
        absl::StrCat("user ", device->user_id(), " is disabled: the upload ends"));
  }

  const double per_hour = static_cast<double>(settings_.upload_bytes_per_device_per_hour);
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  auto [it, added] = buckets_.try_emplace(caller.device_id());
  Bucket& bucket = it->second;
  if (added) {
    bucket.tokens = per_hour;
  } else {
    const double elapsed = std::max(0.0, absl::ToDoubleSeconds(now - bucket.last));
    bucket.tokens = std::min(per_hour, bucket.tokens + elapsed * per_hour / 3600.0);
  }
  bucket.last = now;
  const double needed = static_cast<double>(bytes);
  if (bucket.tokens < needed) {
    const double wait_seconds = std::ceil((needed - bucket.tokens) * 3600.0 / per_hour);
    return RetryLater(
        absl::StrCat("device ", caller.device_id(), " uploaded more than ",
                     "limits.blob_upload_bytes_per_device_per_hour=",
                     settings_.upload_bytes_per_device_per_hour,
                     " bytes in the last hour; retry this chunk in ",
                     static_cast<int64_t>(wait_seconds), " s"),
        "limits.blob_upload_bytes_per_device_per_hour", settings_.upload_bytes_per_device_per_hour,
        absl::Seconds(wait_seconds));
  }
  bucket.tokens -= needed;
  return absl::OkStatus();
}

storage::BlobWriter BlobUploads::WriterFor(const Principal& caller) const {
  return storage::BlobWriter{.owner = caller.device_id(), .now = clock_()};
}

absl::StatusOr<storage::BlobStatus> BlobUploads::StatusFor(std::string_view device_id,
                                                           std::string_view sha256) const {
  ASSIGN_OR_RETURN(storage::BlobStatus status, store_->GetBlobStatus(sha256));
  if (status.complete || status.owner == device_id) return status;
  return storage::BlobStatus{};
}

}  // namespace fieldsync::server
