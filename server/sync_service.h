// SyncService: the device-facing sync API over the sync engine
// (sync/sync_engine.h, protocol in docs/sync.md).
//
//   - Push: a callback reactor that never waits: the guard and the size
//     limits on the gRPC thread that took the call, then on the read executor
//     (server/offload.h; a full queue answers RESOURCE_EXHAUSTED naming
//     limits.read_queue_depth) the caller's PushContext (actor, role and
//     device from the token; scope from the directory; relayed events checked
//     against their signer's scope too) and SyncEngine::PushAsync, whose
//     checks (signatures, point reads: CPU work of at most
//     limits.max_push_events events) run there too; its callback finishes the
//     call from the store's writer thread once the batch is durable. Over a
//     limit: RESOURCE_EXHAUSTED naming the setting. A device_seq gap:
//     FAILED_PRECONDITION naming the next expected number, with the
//     serialized v1.SequenceGap in the trailer `fieldsync-sequence-gap-bin`.
//   - Pull: on the read executor, the caller's scope, computed on the
//     server, then SyncEngine::Pull (reads bounded by limits.max_pull_events
//     and max_pull_bytes returned and limits.max_examined_records examined;
//     never a wait on a commit).
//   - UploadBlob: a client-streaming reactor, one read in flight at a time:
//     a header, then chunks from GetBlobStatus.received_bytes on. Each chunk
//     is a synced write (milliseconds), so it runs on the context's blob
//     worker, never on a gRPC thread; the next read starts when it is done,
//     which is the upload's back-pressure. Before the first chunk is written
//     BlobUploads::Begin (server/blob_uploads.h) decides scope, ownership and
//     the device's allowance; before every chunk BlobUploads::BeforeChunk
//     re-reads the device and its user (a revoked device's upload ends
//     UNAUTHENTICATED at its next chunk) and charges the hourly allowance.
//     Errors: INVALID_ARGUMENT (no header first, bad sha256, size or content
//     type, an empty chunk or one running past total_size),
//     RESOURCE_EXHAUSTED (total_size over limits.max_blob_bytes, a chunk over
//     limits.max_message_bytes, over the device's unfinished or hourly
//     allowance), FAILED_PRECONDITION (a chunk not at the expected offset,
//     named in the message; no event in the caller's scope names the blob),
//     ALREADY_EXISTS (another device's upload of the blob is in progress),
//     UNAUTHENTICATED (revoked or disabled since the call began); and
//     INVALID_ARGUMENT when the bytes do not hash to sha256 (the client's
//     error, not DATA_LOSS: the upload is discarded and a warning logged).
//   - GetBlobStatus: how much of a blob is stored for the caller (its own
//     partial upload, or the complete blob): two point reads, on the gRPC
//     thread.
//   - Enroll: a device with a one-time code.
//   - GetSchema: the registry's field schema (domain/field_schema.h
//     PublishedFieldSchema), its version (SchemaVersion) and the limits of
//     the live configuration; no reads, on the gRPC thread.
//
// Thread-safety: safe for concurrent calls.
#pragma once

#include "fieldsync/v1/sync_service.grpc.pb.h"
#include "server/service_context.h"

namespace fieldsync::server {

// The trailing metadata key of a sequence gap (a serialized v1.SequenceGap).
inline constexpr char kSequenceGapTrailer[] = "fieldsync-sequence-gap-bin";

// The schema_version of a published schema: hex SHA-256 of its
// deterministic serialization (stable across restarts and builds of the same
// schema; any change of a name, type, bound or enum value changes it).
std::string SchemaVersion(const v1::FieldSchemaSet& schema);

class SyncServiceImpl final : public v1::SyncService::CallbackService {
 public:
  // `context` must outlive the service.
  explicit SyncServiceImpl(const ServiceContext* context) : ctx_(context) {}

  grpc::ServerUnaryReactor* Push(grpc::CallbackServerContext* context,
                                 const v1::PushRequest* request,
                                 v1::PushResponse* response) override;
  grpc::ServerUnaryReactor* Pull(grpc::CallbackServerContext* context,
                                 const v1::PullRequest* request,
                                 v1::PullResponse* response) override;
  grpc::ServerReadReactor<v1::UploadBlobRequest>* UploadBlob(
      grpc::CallbackServerContext* context, v1::UploadBlobResponse* response) override;
  grpc::ServerUnaryReactor* GetBlobStatus(grpc::CallbackServerContext* context,
                                          const v1::GetBlobStatusRequest* request,
                                          v1::GetBlobStatusResponse* response) override;
  grpc::ServerUnaryReactor* Enroll(grpc::CallbackServerContext* context,
                                   const v1::EnrollRequest* request,
                                   v1::EnrollResponse* response) override;
  grpc::ServerUnaryReactor* GetSchema(grpc::CallbackServerContext* context,
                                      const v1::GetSchemaRequest* request,
                                      v1::GetSchemaResponse* response) override;

 private:
  const ServiceContext* ctx_;
};

}  // namespace fieldsync::server
