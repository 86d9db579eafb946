// ReportService: assessment and evidence reports by scope and year (county
// staff, HQ analysts and admins, within scope; the guard refuses every other
// role PERMISSION_DENIED). The reports read the aggregates the domain keeps
// at commit (domain/assessment/), never the log.
//
// Thread-safety: safe for concurrent calls.
#pragma once

#include "domain/assessment/rules.h"
#include "fieldsync/v1/report_service.grpc.pb.h"
#include "server/service_context.h"

namespace fieldsync::server {

class ReportServiceImpl final : public v1::ReportService::CallbackService {
 public:
  // `context` must outlive the service; `options` are the domain's
  // (DomainOptions::assessment) so that reports and aggregates agree.
  ReportServiceImpl(const ServiceContext* context, domain::assessment::AssessmentOptions options)
      : ctx_(context), options_(options) {}

  grpc::ServerUnaryReactor* GetAssessment(grpc::CallbackServerContext* context,
                                          const v1::GetAssessmentRequest* request,
                                          v1::GetAssessmentResponse* response) override;
  grpc::ServerUnaryReactor* GetEvidenceReport(grpc::CallbackServerContext* context,
                                              const v1::GetEvidenceReportRequest* request,
                                              v1::GetEvidenceReportResponse* response) override;
  grpc::ServerUnaryReactor* ListFeedback(grpc::CallbackServerContext* context,
                                         const v1::ListFeedbackRequest* request,
                                         v1::ListFeedbackResponse* response) override;
  grpc::ServerUnaryReactor* ListInspections(grpc::CallbackServerContext* context,
                                            const v1::ListInspectionsRequest* request,
                                            v1::ListInspectionsResponse* response) override;

 private:
  const ServiceContext* ctx_;
  const domain::assessment::AssessmentOptions options_;
};

}  // namespace fieldsync::server
