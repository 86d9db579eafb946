// BlobUploads: the server's policy over the store's blob uploads
// (docs/sync.md "Blobs"): who may upload which blob, how many bytes a device
// may hold unfinished and upload per hour, and when an abandoned partial
// upload expires and gives its disk back.
//
//   - Scope: a blob is accepted only while it is missing and an event that
//     names it (a pending-blob marker of the sync engine) was signed by the
//     caller's device or lies in the caller's scope. A complete blob answers
//     "complete" to anyone, idempotently.
//   - Ownership: a partial upload belongs to the device that wrote its first
//     chunk (the store records the owner and the time of its last chunk).
//     Another device gets ALREADY_EXISTS until the owner's partial expires,
//     except a device that signed an event naming the blob: it takes over a
//     partial of a device that did not (the photographer is never locked out
//     of its own photo). A header with another total_size restarts the
//     caller's own partial; it never touches anyone else's.
//   - Bounds: the declared sizes of a device's partial uploads (in the store
//     and being started on open streams) stay within
//     limits.max_partial_blob_bytes_per_device; the bytes it uploads within
//     limits.blob_upload_bytes_per_device_per_hour (a token bucket, in memory:
//     a restart refills it).
//   - Expiry: a partial with no chunk for limits.partial_blob_ttl_seconds is
//     discarded by the reaper, once at Start and then every
//     limits.blob_reaper_interval_ms, with the injected clock.
//   - Revocation: every chunk first reads the device and its user; a revoked
//     device or a disabled user ends the upload UNAUTHENTICATED.
//
// Thread-safety: safe for concurrent use.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/directory.h"
#include "server/identity.h"
#include "storage/event_store.h"
#include "sync/sync_engine.h"

namespace fieldsync::server {

// Settings, from LimitsConfig (defaults there and in ServiceSettings).
struct BlobUploadSettings {
  uint64_t max_partial_bytes_per_device = 256 << 20;
  absl::Duration partial_ttl = absl::Hours(24);
  uint64_t upload_bytes_per_device_per_hour = 512 << 20;
  absl::Duration reaper_interval = absl::Minutes(10);
};

class BlobUploads {
 public:
  // Borrowed pointers must outlive this object. The reaper starts in Start.
  BlobUploads(storage::EventStore* store, const sync::SyncEngine* engine,
              const Directory* directory, BlobUploadSettings settings, Clock clock);
  // Stops the reaper (waits for a round in progress).
  ~BlobUploads();
  BlobUploads(const BlobUploads&) = delete;
  BlobUploads& operator=(const BlobUploads&) = delete;

  // Reaps expired partial uploads once, then starts the reaper thread.
  // Errors: the store's (nothing is started).
  absl::Status Start();

  // Decides whether `caller` (whose scope is `scope`, as the call's
  // admission carries it) may upload `sha256` (32 bytes) of `total_size`
  // bytes, and returns the blob as the caller is to continue it: complete,
  // the caller's own partial (resume at received_bytes), or a fresh start
  // (received_bytes 0; another device's expired or overridable partial was
  // discarded). A fresh start reserves `total_size` of the caller's allowance
  // until End. Errors: FAILED_PRECONDITION (no event in the caller's scope
  // names the blob, or it names nothing: push the event first);
  // ALREADY_EXISTS (another device's partial, with the time it expires);
  // RESOURCE_EXHAUSTED (over max_partial_blob_bytes_per_device); the store's.
  // May write (a takeover is a synced delete): call off the gRPC threads.
  absl::StatusOr<storage::BlobStatus> Begin(const Principal& caller, const sync::Scope& scope,
                                            std::string_view sha256, uint64_t total_size);
  // Releases what Begin reserved for `device_id` and `sha256` (the stream
  // ended). Safe to call when nothing was reserved.
  void End(std::string_view device_id, std::string_view sha256);

  // Before a chunk of `bytes` is written for `caller`: UNAUTHENTICATED if
  // its device was revoked or its user disabled since the call began;
  // RESOURCE_EXHAUSTED over blob_upload_bytes_per_device_per_hour (nothing is
  // charged then).
  absl::Status BeforeChunk(const Principal& caller, uint64_t bytes);

  // The writer tag of `caller`'s chunks (its device, now).
  storage::BlobWriter WriterFor(const Principal& caller) const;

  // `sha256` as `device_id` sees it: complete, its own partial, or nothing
  // (another device's partial is not the caller's progress).
  absl::StatusOr<storage::BlobStatus> StatusFor(std::string_view device_id,
                                                std::string_view sha256) const;

  // Discards every partial upload idle for partial_ttl. Returns the bytes
  // given back. Errors: the store's (what was discarded stays discarded).
  absl::StatusOr<uint64_t> ReapExpired();

 private:
  void ReaperLoop();
  absl::Time ExpiresAt(const storage::BlobStatus& partial) const;
  absl::Status CheckAllowance(const std::string& device_id, std::string_view sha256,
                              uint64_t total_size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  storage::EventStore* const store_;
  const sync::SyncEngine* const engine_;
  const Directory* const directory_;
  const BlobUploadSettings settings_;
  const Clock clock_;

  absl::Mutex mu_;
  // Blobs being started on open streams, by device: sha256 -> total_size.
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, uint64_t>> reserved_
      ABSL_GUARDED_BY(mu_);
  struct Bucket {
    double tokens = 0;
    absl::Time last;
  };
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reaper_;
};

}  // namespace fieldsync::server
