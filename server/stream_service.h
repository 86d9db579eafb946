// StreamService: the live log stream for HQ analytics (HQ analysts and
// admins). The guard and the request checks are in place; the stream comes
// with the sync engine and answers UNIMPLEMENTED until then.
//
// Thread-safety: safe for concurrent calls.
#pragma once

#include "fieldsync/v1/stream_service.grpc.pb.h"
#include "server/service_context.h"

namespace fieldsync::server {

class StreamServiceImpl final : public v1::StreamService::CallbackService {
 public:
  // `context` must outlive the service.
  explicit StreamServiceImpl(const ServiceContext* context) : ctx_(context) {}

  grpc::ServerWriteReactor<v1::SubscribeResponse>* Subscribe(
      grpc::CallbackServerContext* context, const v1::SubscribeRequest* request) override;

 private:
  const ServiceContext* ctx_;
};

}  // namespace fieldsync::server
