// QueryService: online reads of households, history, conflicts and
// rejections, limited to the caller's scope (docs/authorization.md): the
// guard, the request checks and the scope rule of the policy table, then the
// domain's queries (domain/queries.h: GetHousehold, ListHouseholds,
// ListConflicts) or the sync engine's (GetHistory, ListRejections), which
// check the same scope again. Every call runs on the read executor
// (server/offload.h), never on a gRPC callback thread, and every read is
// bounded: pages capped by limits.max_page_size returned and
// limits.max_examined_records examined (GetHousehold reads one household's
// records), never a wait on a commit.
//
// Thread-safety: safe for concurrent calls.
#pragma once

#include "fieldsync/v1/query_service.grpc.pb.h"
#include "server/service_context.h"

namespace fieldsync::server {

class QueryServiceImpl final : public v1::QueryService::CallbackService {
 public:
  // `context` must outlive the service.
  explicit QueryServiceImpl(const ServiceContext* context) : ctx_(context) {}

  grpc::ServerUnaryReactor* GetHousehold(grpc::CallbackServerContext* context,
                                         const v1::GetHouseholdRequest* request,
                                         v1::GetHouseholdResponse* response) override;
  grpc::ServerUnaryReactor* ListHouseholds(grpc::CallbackServerContext* context,
                                           const v1::ListHouseholdsRequest* request,
                                           v1::ListHouseholdsResponse* response) override;
  grpc::ServerUnaryReactor* GetHistory(grpc::CallbackServerContext* context,
                                       const v1::GetHistoryRequest* request,
                                       v1::GetHistoryResponse* response) override;
  grpc::ServerUnaryReactor* ListConflicts(grpc::CallbackServerContext* context,
                                          const v1::ListConflictsRequest* request,
                                          v1::ListConflictsResponse* response) override;
  grpc::ServerUnaryReactor* ListRejections(grpc::CallbackServerContext* context,
                                           const v1::ListRejectionsRequest* request,
                                           v1::ListRejectionsResponse* response) override;

 private:
  const ServiceContext* ctx_;
};

// Whether `principal` may read `subject`'s history: their own user, cadre
// and device records always; otherwise the subject must be in `scope` (the
// principal's, as the call's admission carries it).
// NotFound for an unknown subject, InvalidArgument for a kind that has no
// history of its own, PermissionDenied out of scope.
absl::Status CheckSubjectReadable(const Directory& directory, const Principal& principal,
                                  const Scope& scope,
                                  const v1::SubjectRef& subject);

}  // namespace fieldsync::server
