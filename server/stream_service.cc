#include "server/stream_service.h"

#include <grpcpp/support/proto_buffer_reader.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/open_streams.h"
#include "server/stream_batch_cache.h"
#include "server/stream_hub.h"
#include "server/stream_reactor.h"
#include "server/stream_readers.h"
#include "server/stream_records.h"

namespace fieldsync::server {

StreamServiceImpl::StreamServiceImpl(const ServiceContext* context)
    : ctx_(context),
      hub_(std::make_unique<StreamHub>(context)),
      readers_(std::make_unique<StreamReaders>(kReaderThreads)),
      cache_(std::make_unique<BatchCache>()) {}

StreamServiceImpl::~StreamServiceImpl() {
  // The readers first: their queued steps hold streams and wake the hub.
  readers_.reset();
  hub_.reset();
}

size_t StreamServiceImpl::subscribers() const { return hub_->connected(); }

grpc::ServerWriteReactor<grpc::ByteBuffer>* StreamServiceImpl::Subscribe(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw_request) {
  const std::string& path = FIELDSYNC_METHOD_PATH(StreamService, Subscribe);
  Admission admission = ctx_->guard->Admit(context, path);
  Filter filter;
  v1::SubscribeRequest request_message;
  const v1::SubscribeRequest* request = &request_message;
  absl::Status status = admission.status;
  if (status.ok()) status = ParseRawRequest(*raw_request, request_message);
  if (status.ok()) {
    status = [&]() -> absl::Status {
      for (int kind : request->kinds()) {
        if (!v1::EventKind_IsValid(kind) || kind == v1::EVENT_KIND_UNSPECIFIED) {
          return absl::InvalidArgumentError(absl::StrCat("kinds: ", kind, " is not an EventKind"));
        }
        filter.kinds.insert(kind);
      }
      const Scope& scope = *admission.scope;
      Scope wanted;
      for (const std::string& prefix : request->scope_prefixes()) {
        RETURN_IF_ERROR(ValidatePrefix("scope_prefixes", prefix, false));
        if (!sync::CoversPrefix(scope, prefix)) {
          return OutOfScope(*admission.principal, absl::StrCat("scope prefix ", prefix));
        }
        wanted.area_prefixes.push_back(prefix);
      }
      filter.prefixes = sync::Normalize(wanted).area_prefixes;
      filter.scope = sync::Normalize(scope);
      filter.indexed =
          !filter.prefixes.empty() && filter.prefixes.size() <= kMaxIndexedPrefixes &&
          std::all_of(filter.prefixes.begin(), filter.prefixes.end(), [](const std::string& p) {
            return p.size() == 6 || p.size() == 9 || p.size() == 12;
          });
      const uint64_t head = ctx_->store->Head();
      if (request->from_offset() > head) {
        return absl::OutOfRangeError(absl::StrCat(
            "from_offset ", request->from_offset(), " is past the log head ", head,
            " (a consumer of another or a restored server): resubscribe from at most ", head));
      }
      return absl::OkStatus();
    }();
  }
  if (!status.ok()) {
    return new FinishedWriter<grpc::ByteBuffer>(ctx_->guard, std::move(admission), status);
  }
  uint32_t heartbeat_ms = request->heartbeat_interval_ms() == 0 ? kDefaultHeartbeatMs
                                                                : request->heartbeat_interval_ms();
  heartbeat_ms = std::clamp(heartbeat_ms, kMinHeartbeatMs, kMaxHeartbeatMs);
  SubscribeReactor::Options options;
  options.heartbeat = absl::Milliseconds(heartbeat_ms);
  options.batch_events =
      request->max_batch_events() == 0
          ? kDefaultBatchEvents
          : std::clamp<uint32_t>(request->max_batch_events(), 1, kMaxBatchEvents);
  options.batch_bytes =
      request->max_batch_bytes() == 0
          ? kDefaultBatchBytes
          : std::clamp<uint32_t>(request->max_batch_bytes(), kMinBatchBytes, kMaxBatchBytes);
  const Principal principal = *admission.principal;
  auto* reactor = new SubscribeReactor(hub_.get(), readers_.get(), cache_.get(), ctx_, context,
                                       std::move(admission), std::move(filter),
                                       request->from_offset(), options);
  // Registered first, checked second: a revocation that committed since the
  // guard admitted the call is seen by the check, a later one by the registry.
  StreamHub* hub = hub_.get();
  reactor->Register(ctx_->identity->open_streams().Register(
      principal.user_id(), principal.device_id(), [reactor, hub](const absl::Status& why) {
        reactor->RequestFinish(why);
        hub->Wake();
      }));
  if (absl::Status still = ctx_->identity->Recheck(principal); !still.ok()) {
    reactor->RequestFinish(still);
  } else if (absl::Status added = hub_->TryAdd(reactor); !added.ok()) {
    reactor->RequestFinish(added);
  }
  reactor->Drive();
  return reactor;
}

}  // namespace fieldsync::server
