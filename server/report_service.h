// ReportService: assessment and evidence reports by scope and year (county
// staff, HQ analysts and admins, within scope). The guard and the scope checks
// are in place; the reports come with the domain module and answer
// UNIMPLEMENTED until then.
//
// Thread-safety: safe for concurrent calls.
#pragma once

#include "fieldsync/v1/report_service.grpc.pb.h"
#include "server/service_context.h"

namespace fieldsync::server {

class ReportServiceImpl final : public v1::ReportService::CallbackService {
 public:
  // `context` must outlive the service.
  explicit ReportServiceImpl(const ServiceContext* context) : ctx_(context) {}

  grpc::ServerUnaryReactor* GetAssessment(grpc::CallbackServerContext* context,
                                          const v1::GetAssessmentRequest* request,
                                          v1::GetAssessmentResponse* response) override;
  grpc::ServerUnaryReactor* GetEvidenceReport(grpc::CallbackServerContext* context,
                                              const v1::GetEvidenceReportRequest* request,
                                              v1::GetEvidenceReportResponse* response) override;

 private:
  const ServiceContext* ctx_;
};

}  // namespace fieldsync::server
