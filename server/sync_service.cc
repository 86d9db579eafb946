#include "server/sync_service.h"

#include <spdlog/spdlog.h>

#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "base/status_macros.h"
#include "base/text.h"
#include "base/time.h"
#include "domain/field_schema.h"
#include "server/offload.h"
#include "storage/sha256.h"

namespace fieldsync::server {
namespace {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

// The longest content type of a blob header.
constexpr size_t kMaxContentTypeBytes = 255;

// One UploadBlob call. Reads run one at a time: the next starts only after
// the previous message was handled (the header's policy checks and each
// chunk's synced write run on the blob worker). Finish is called exactly
// once, from OnReadDone or from the worker, never while a read or a write is
// in flight, so nothing touches the reactor after OnDone.
class UploadBlobReactor final : public grpc::ServerReadReactor<v1::UploadBlobRequest> {
 public:
  UploadBlobReactor(const ServiceContext* ctx, grpc::CallbackServerContext* context,
                    Admission admission, v1::UploadBlobResponse* response)
      : ctx_(ctx), context_(context), admission_(std::move(admission)), response_(response) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client half-closed (or the call was cancelled): answer what is
      // stored now.
      if (!have_header_) {
        Fail(Invalid("an upload starts with a header (sha256, total_size, content_type)"));
        return;
      }
      if (!begun_) {
        // A header alone asks how far the caller's upload is (a point read).
        absl::StatusOr<storage::BlobStatus> status =
            ctx_->blob_uploads->StatusFor(principal().device_id(), sha256_);
        if (!status.ok()) return Fail(status.status());
        status_ = *status;
      }
      response_->set_sha256(sha256_);
      response_->set_received_bytes(status_.received_bytes);
      response_->set_complete(status_.complete);
      Finish(grpc::Status::OK);
      return;
    }
    switch (request_.part_case()) {
      case v1::UploadBlobRequest::kHeader:
        OnHeader();
        return;
      case v1::UploadBlobRequest::kChunk:
        OnChunk();
        return;
      default:
        Fail(Invalid("each message needs a header or a chunk"));
        return;
    }
  }

  void OnDone() override {
    if (begun_) ctx_->blob_uploads->End(principal().device_id(), sha256_);
    ctx_->guard->Release(admission_);
    delete this;
  }

 private:
  void Fail(const absl::Status& status) {
    AddErrorTrailers(context_, status);
    Finish(ToGrpc(status));
  }

  // UploadBlob is for field roles only: the guard authenticated the caller.
  const Principal& principal() const { return *admission_.principal; }

  void OnHeader() {
    const v1::BlobHeader& header = request_.header();
    auto check = [&]() -> absl::Status {
      if (have_header_) return Invalid("the header comes once, first");
      if (header.sha256().size() != storage::kSha256Size) {
        return Invalid(
            absl::StrCat("header.sha256 must be 32 bytes, got ", header.sha256().size()));
      }
      if (header.total_size() == 0) return Invalid("header.total_size is required");
      if (header.total_size() > ctx_->settings.max_blob_bytes) {
        return OverSizeLimit(
            absl::StrCat("a blob of ", header.total_size(),
                         " bytes is over limits.max_blob_bytes=", ctx_->settings.max_blob_bytes),
            "limits.max_blob_bytes", ctx_->settings.max_blob_bytes, header.total_size());
      }
      if (!base::IsCleanText(header.content_type(), kMaxContentTypeBytes)) {
        return Invalid("header.content_type is required (e.g. \"image/jpeg\")");
      }
      return absl::OkStatus();
    };
    absl::Status status = check();
    if (!status.ok()) return Fail(status);
    sha256_ = header.sha256();
    total_size_ = header.total_size();
    have_header_ = true;
    StartRead(&request_);
  }

  void OnChunk() {
    v1::BlobChunk* chunk = request_.mutable_chunk();
    const uint64_t offset = chunk->offset();
    const uint64_t size = chunk->data().size();
    auto check = [&]() -> absl::Status {
      if (!have_header_) return Invalid("an upload starts with a header, then chunks");
      if (size == 0) return Invalid("chunk.data is empty");
      if (size > ctx_->settings.max_message_bytes) {
        return OverSizeLimit(
            absl::StrCat("a chunk of ", size,
                         " bytes is over limits.max_message_bytes=",
                         ctx_->settings.max_message_bytes),
            "limits.max_message_bytes", ctx_->settings.max_message_bytes, size);
      }
      if (offset > total_size_ || size > total_size_ - offset) {
        return Invalid(absl::StrCat("chunk [", offset, ", ", offset + size,
                                    ") runs past the blob's total_size ", total_size_));
      }
      return absl::OkStatus();
    };
    absl::Status status = check();
    if (!status.ok()) return Fail(status);
    // A complete blob: chunks sent again are accepted and ignored.
    if (status_.complete) return StartRead(&request_);
    // The synced write runs on the blob worker; the next read starts there.
    // The first chunk's policy checks (scope, ownership, allowance: reads,
    // perhaps a synced takeover) run there too, after the checks above.
    ctx_->blob_worker->Run([this, offset, data = std::move(*chunk->mutable_data())] {
      if (!begun_) {
        absl::StatusOr<storage::BlobStatus> begun =
            ctx_->blob_uploads->Begin(principal(), *admission_.scope, sha256_, total_size_);
        if (!begun.ok()) return Fail(begun.status());
        begun_ = true;
        status_ = *begun;
        // Complete already: this chunk and any more are ignored.
        if (status_.complete) return StartRead(&request_);
      }
      if (absl::Status allowed = ctx_->blob_uploads->BeforeChunk(principal(), data.size());
          !allowed.ok()) {
        return Fail(allowed);
      }
      const bool last = offset + data.size() == total_size_;
      absl::StatusOr<storage::BlobStatus> stored = ctx_->store->PutBlobChunk(
          sha256_, total_size_, offset, data, ctx_->blob_uploads->WriterFor(principal()));
      if (!stored.ok()) {
        if (absl::IsAlreadyExists(stored.status())) {
          // Another device's first chunk won the race since the header.
          return Fail(absl::AlreadyExistsError(absl::StrCat("another device is uploading blob ",
                                                            storage::ToHex(sha256_),
                                                            "; ask GetBlobStatus later")));
        }
        // Everything else a last chunk could be refused for was checked
        // above: an InvalidArgument now is the hash (the upload is gone).
        // The client sent bytes that do not hash to the sha256 it declared:
        // its error, so INVALID_ARGUMENT (DATA_LOSS is for corruption on
        // our side), logged at warning: a phone with a bad camera roll or a
        // bug, worth seeing, not a server fault.
        if (last && absl::IsInvalidArgument(stored.status())) {
          spdlog::warn("blob upload from device {}: {}",
                       principal().device_id(), std::string(stored.status().message()));
        }
        return Fail(stored.status());
      }
      status_ = *stored;
      StartRead(&request_);
    });
  }

  const ServiceContext* ctx_;
  grpc::CallbackServerContext* context_;
  Admission admission_;
  v1::UploadBlobResponse* response_;
  v1::UploadBlobRequest request_;
  bool have_header_ = false;
  bool begun_ = false;  // Begin passed (and reserved an allowance: End it in OnDone).
  std::string sha256_;
  uint64_t total_size_ = 0;
  storage::BlobStatus status_;
};

}  // namespace

namespace {

// Push and Pull answers travel compressed when the device accepts it: a
// phone on 2G pays for every acknowledgement and pulled event. A compression
// *level* (not an algorithm) lets gRPC pick among the encodings the caller
// listed in grpc-accept-encoding, so a client that accepts none gets plain
// messages. Subscribe (HQ, on a LAN) stays uncompressed: it is CPU-bound.
void CompressAnswerIfAccepted(grpc::CallbackServerContext* context) {
  context->set_compression_level(GRPC_COMPRESS_LEVEL_HIGH);
}

}  // namespace

grpc::ServerUnaryReactor* SyncServiceImpl::Push(grpc::CallbackServerContext* context,
                                                const v1::PushRequest* request,
                                                v1::PushResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(SyncService, Push);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  CompressAnswerIfAccepted(context);
  const ServiceSettings& settings = ctx_->settings;
  // The engine checks these too; here the answer names the settings.
  if (static_cast<size_t>(request->events_size()) > settings.max_push_events) {
    call->Finish(OverSizeLimit(
        absl::StrCat("a push of ", request->events_size(),
                     " events is over limits.max_push_events=", settings.max_push_events,
                     "; split the batch"),
        "limits.max_push_events", settings.max_push_events,
        static_cast<uint64_t>(request->events_size())));
    return call;
  }
  size_t bytes = 0;
  for (const v1::SignedEvent& event : request->events()) bytes += event.event().size();
  if (bytes > settings.max_push_bytes) {
    call->Finish(OverSizeLimit(
        absl::StrCat("a push of ", bytes, " bytes of events is over limits.max_push_bytes=",
                     settings.max_push_bytes, "; split the batch"),
        "limits.max_push_bytes", settings.max_push_bytes, bytes));
    return call;
  }
  // The rest (the scope, the engine's signature checks and point reads) runs
  // on the read executor, never on this callback thread; the engine's
  // callback then finishes the call from the committer thread.
  const ServiceContext* ctx = ctx_;
  Offload(*ctx_, call, context, [ctx, call, request, response] {
    const Principal& principal = call->principal();
    absl::StatusOr<std::string> area = ctx->directory->AreaOfUser(principal.user);
    if (!area.ok()) return call->Finish(area.status());
    sync::PushContext push;
    push.actor = principal.user_id();
    push.role = principal.role();
    push.unit_id = principal.user.unit_id();
    push.device_id = principal.device_id();
    push.scope = call->scope();
    push.area_code = *std::move(area);
    push.now = ctx->clock();
    // The device's clock at sending: the assessment's DEVICE_TIME_SKEW evidence.
    if (request->has_device_time()) {
      push.device_time = absl::FromUnixSeconds(request->device_time().seconds()) +
                         absl::Nanoseconds(request->device_time().nanos());
    }
    // A relayed event is judged as its signer's: in the scope of the user its
    // signing device is enrolled to (never the relay's), and its signer's role
    // must be one this very row lets push (one rule for direct and relayed
    // events). The policy table is static, so the row outlives the push.
    const PolicyRow* row = &call->policy();
    push.may_push = [row](v1::Role role) { return row->Allows(role); };
    const sync::ScopeResolver* scopes = &ctx->directory->scopes();
    push.scope_of_user = [scopes](std::string_view user_id) -> absl::StatusOr<Scope> {
      return scopes->ScopeOfUser(user_id);
    };
    std::vector<v1::SignedEvent> events(request->events().begin(), request->events().end());
    ctx->engine->PushAsync(std::move(push), std::move(events),
                           [call, response](absl::StatusOr<sync::PushOutcome> outcome) {
                             if (!outcome.ok()) {
                               call->Finish(outcome.status());
                               return;
                             }
                             *response = std::move(outcome->response);
                             call->Finish(absl::OkStatus());
                           });
  });
  return call;
}

grpc::ServerUnaryReactor* SyncServiceImpl::Pull(grpc::CallbackServerContext* context,
                                                const v1::PullRequest* request,
                                                v1::PullResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(SyncService, Pull);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  CompressAnswerIfAccepted(context);
  // Pull serves exactly the caller's scope, computed on the server by the
  // guard for this call, read on the read executor (the reads are bounded by limits.max_examined_records).
  const ServiceContext* ctx = ctx_;
  FinishOffloaded(*ctx_, call, context, [ctx, call, request, response]() -> absl::Status {
    ASSIGN_OR_RETURN(*response, ctx->engine->Pull(call->scope(), *request));
    return absl::OkStatus();
  });
  return call;
}

grpc::ServerReadReactor<v1::UploadBlobRequest>* SyncServiceImpl::UploadBlob(
    grpc::CallbackServerContext* context, v1::UploadBlobResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(SyncService, UploadBlob);
  Admission admission = ctx_->guard->Admit(context, path);
  if (!admission.status.ok()) {
    absl::Status status = admission.status;
    return new FinishedReader<v1::UploadBlobRequest>(ctx_->guard, std::move(admission), status);
  }
  return new UploadBlobReactor(ctx_, context, std::move(admission), response);
}

grpc::ServerUnaryReactor* SyncServiceImpl::GetBlobStatus(grpc::CallbackServerContext* context,
                                                         const v1::GetBlobStatusRequest* request,
                                                         v1::GetBlobStatusResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(SyncService, GetBlobStatus);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  auto status = [&]() -> absl::Status {
    if (request->sha256().size() != storage::kSha256Size) {
      return Invalid(absl::StrCat("sha256 must be 32 bytes, got ", request->sha256().size()));
    }
    // The caller's own progress: another device's partial upload is not a
    // place this device can resume from.
    ASSIGN_OR_RETURN(
        storage::BlobStatus blob,
        ctx_->blob_uploads->StatusFor(call->principal().device_id(), request->sha256()));
    response->set_sha256(request->sha256());
    response->set_received_bytes(blob.received_bytes);
    response->set_complete(blob.complete);
    response->set_total_size(blob.total_size);
    return absl::OkStatus();
  };
  call->Finish(status());
  return call;
}

grpc::ServerUnaryReactor* SyncServiceImpl::Enroll(grpc::CallbackServerContext* context,
                                                  const v1::EnrollRequest* request,
                                                  v1::EnrollResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(SyncService, Enroll);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  Clock clock = ctx_->clock;
  ctx_->identity->Enroll(*request, [call, response, clock](absl::StatusOr<Enrollment> enrolled) {
    if (!enrolled.ok()) return call->Finish(enrolled.status());
    response->set_device_id(enrolled->device.id());
    response->set_token(enrolled->token);
    response->set_user_id(enrolled->user.id());
    response->set_role(enrolled->user.role());
    response->set_user_name(enrolled->user.name());
    *response->mutable_server_time() = base::ToTimestamp(clock());
    call->Finish(absl::OkStatus());
  });
  return call;
}

std::string SchemaVersion(const v1::FieldSchemaSet& schema) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream out(&stream);
    out.SetSerializationDeterministic(true);
    schema.SerializeToCodedStream(&out);
  }
  return absl::BytesToHexString(storage::DigestBytes(storage::Sha256({bytes})));
}

grpc::ServerUnaryReactor* SyncServiceImpl::GetSchema(grpc::CallbackServerContext* context,
                                                     const v1::GetSchemaRequest* /*request*/,
                                                     v1::GetSchemaResponse* response) {
  const std::string& path = FIELDSYNC_METHOD_PATH(SyncService, GetSchema);
  auto* call = new GuardedUnary(ctx_->guard, context, path);
  if (!call->admitted()) return call;
  // Built once: the schema is compiled in, so are its version's inputs.
  static const auto* published = [] {
    auto* response = new v1::GetSchemaResponse;
    *response->mutable_schema() = domain::PublishedFieldSchema();
    response->set_schema_version(SchemaVersion(response->schema()));
    return response;
  }();
  *response = *published;
  const ServiceSettings& settings = ctx_->settings;
  v1::ClientLimits* limits = response->mutable_limits();
  limits->set_max_push_events(settings.max_push_events);
  limits->set_max_push_bytes(settings.max_push_bytes);
  limits->set_max_event_bytes(settings.max_event_bytes);
  limits->set_device_requests_per_second(
      static_cast<uint32_t>(settings.device_requests_per_second));
  limits->set_device_request_burst(static_cast<uint32_t>(settings.device_request_burst));
  limits->set_max_message_bytes(settings.max_message_bytes);
  limits->set_max_blob_bytes(settings.max_blob_bytes);
  call->Finish(absl::OkStatus());
  return call;
}

}  // namespace fieldsync::server
