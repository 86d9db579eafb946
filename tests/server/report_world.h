// ReportWorld: SyncWorld (tests/server/sync_world.h) with helpers for the
// assessment and evidence tests: visits at given times and places, links on
// given dates, plans, area imports, and the two ReportService calls.
// Times are China Standard Time (the default assessment.time_zone).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/civil_time.h"
#include "fieldsync/v1/report_service.grpc.pb.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {

struct Fix {
  double lat = 0;
  double lng = 0;
};

class ReportWorld : public SyncWorld {
 protected:
  void SetUp() override {
    SyncWorld::SetUp();
    report_ = v1::ReportService::NewStub(harness().channel());
  }

 public:
  static absl::Time Cst(int y, int m, int d, int hh = 0, int mm = 0) {
    return absl::FromCivil(absl::CivilSecond(y, m, d, hh, mm, 0), absl::FixedTimeZone(8 * 3600));
  }
  static v1::Date D(int y, int m, int d) {
    v1::Date out;
    out.set_year(y);
    out.set_month(m);
    out.set_day(d);
    return out;
  }
  static google::protobuf::Timestamp Ts(absl::Time t) {
    google::protobuf::Timestamp out;
    out.set_seconds(absl::ToUnixSeconds(t));
    return out;
  }

  // A visit by `device` to household `hh` in `village`.
  v1::Event VisitAt(TestDevice& device, const std::string& hh, const std::string& village,
                    absl::Time start, absl::Time end, std::optional<Fix> fix = Fix{36.06, 103.83},
                    std::vector<std::string> photos = {}, v1::SubjectKind kind = v1::SUBJECT_KIND_HOUSEHOLD) {
    v1::SubjectRef subject;
    subject.set_kind(kind);
    subject.set_id(hh);
    v1::Event event = device.Make(subject, village, [&](v1::Event& e) {
      v1::VisitRecorded* v = e.mutable_visit_recorded();
      *v->mutable_start_time() = Ts(start);
      *v->mutable_end_time() = Ts(end);
      v->set_purpose(v1::VISIT_PURPOSE_ROUTINE);
      for (const std::string& p : photos) v->add_photo_sha256(p);
      if (fix) {
        e.mutable_location()->set_lat(fix->lat);
        e.mutable_location()->set_lng(fix->lng);
      }
    });
    return event;
  }

  v1::Event Correct(TestDevice& device, const std::string& hh, const std::string& village,
                    const std::string& original, std::optional<std::pair<absl::Time, absl::Time>> times,
                    bool withdrawn) {
    v1::SubjectRef subject;
    subject.set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
    subject.set_id(hh);
    return device.Make(subject, village, [&](v1::Event& e) {
      v1::VisitCorrected* c = e.mutable_visit_corrected();
      c->set_original_event_id(original);
      c->set_reason("記錯了時間");
      c->set_withdrawn(withdrawn);
      if (times) {
        v1::VisitRecorded* v = c->mutable_corrected();
        *v->mutable_start_time() = Ts(times->first);
        *v->mutable_end_time() = Ts(times->second);
        v->set_purpose(v1::VISIT_PURPOSE_ROUTINE);
      }
    });
  }

  v1::Event Plan(TestDevice& device, const std::string& hh, const std::string& village, int year,
                 int items, uint64_t base) {
    v1::SubjectRef subject;
    subject.set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
    subject.set_id(hh);
    return device.Make(subject, village, [&](v1::Event& e) {
      v1::PlanRevised* p = e.mutable_plan_revised();
      p->set_plan_id(hh + "/" + std::to_string(year));
      p->set_kind(v1::PLAN_KIND_HOUSEHOLD_EXIT);
      p->set_year(year);
      p->set_base_version(base);
      for (int i = 0; i < items; ++i) {
        v1::PlanItem* item = p->add_items();
        item->set_item_id("i" + std::to_string(i));
        item->set_category(static_cast<v1::MeasureCategory>(1));
        item->set_content("養殖");
        item->set_year(year);
      }
    });
  }

  // A household registered with a dwelling location.
  v1::Event RegisterAt(TestDevice& device, const std::string& hh, const std::string& village,
                       const std::string& number, Fix where) {
    v1::Event event = device.Register(hh, village, number);
    event.mutable_household_registered()->mutable_location()->set_lat(where.lat);
    event.mutable_household_registered()->mutable_location()->set_lng(where.lng);
    device.Sign(event);
    return event;
  }

  grpc::Status LinkOn(const std::string& link_id, const std::string& cadre_id,
                      v1::SubjectKind kind, const std::string& target, v1::LinkRole role,
                      v1::Date from, bool unit = false) {
    v1::StartLinkRequest request;
    request.set_link_id(link_id);
    if (unit) {
      request.set_unit_id(cadre_id);
    } else {
      request.set_cadre_id(cadre_id);
    }
    request.mutable_target()->set_kind(kind);
    request.mutable_target()->set_id(target);
    request.set_role(role);
    *request.mutable_valid_from() = from;
    v1::StartLinkResponse response;
    auto context = ServiceHarness::Context(admin_token());
    return admin().StartLink(context.get(), request, &response);
  }
  grpc::Status EndOn(const std::string& link_id, v1::Date to) {
    v1::EndLinkRequest request;
    request.set_link_id(link_id);
    request.set_reason(v1::LINK_END_REASON_ENTERED_IN_ERROR);
    *request.mutable_valid_to() = to;
    v1::EndLinkResponse response;
    auto context = ServiceHarness::Context(admin_token());
    return admin().EndLink(context.get(), request, &response);
  }
  grpc::Status ImportCsv(const std::string& csv) {
    v1::ImportAreasRequest request;
    request.set_csv(csv);
    v1::ImportAreasResponse response;
    auto context = ServiceHarness::Context(admin_token());
    grpc::Status status = admin().ImportAreas(context.get(), request, &response);
    if (status.ok() && response.errors_size() > 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, response.DebugString());
    }
    return status;
  }
  grpc::Status User(const std::string& id, v1::CadreRank rank, const std::string& unit = "U1") {
    v1::User u;
    u.set_id(id);
    u.set_name(id);
    u.set_role(v1::ROLE_CADRE);
    u.set_rank(rank);
    u.set_unit_id(unit);
    auto upserted = UpsertUser(*harness().channel(), admin_token(), u);
    return upserted.ok() ? grpc::Status::OK
                         : grpc::Status(grpc::StatusCode::INTERNAL, upserted.status().ToString());
  }

  // A push with PushRequest.device_time = server time + `clock_offset`.
  v1::PushResponse PushWithClock(TestDevice& device, const std::vector<v1::Event>& events,
                                 absl::Duration clock_offset) {
    v1::PushRequest request;
    for (const v1::Event& e : events) *request.add_events() = SealForPush(e);
    *request.mutable_device_time() = Ts(harness().clock().Now() + clock_offset);
    v1::PushResponse response;
    auto context = ServiceHarness::Context(device.token());
    grpc::Status status = sync().Push(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    for (const v1::PushResult& r : response.results()) {
      EXPECT_TRUE(r.has_accepted()) << r.ShortDebugString();
    }
    return response;
  }

  grpc::Status Assess(const std::string& token, const std::string& prefix, int year,
                      v1::GetAssessmentResponse* response, uint32_t page_size = 0,
                      const std::string& page_token = "") {
    v1::GetAssessmentRequest request;
    request.set_scope_prefix(prefix);
    request.set_year(year);
    request.set_page_size(page_size);
    request.set_page_token(page_token);
    auto context = ServiceHarness::Context(token);
    return report_->GetAssessment(context.get(), request, response);
  }
  v1::GetAssessmentResponse MustAssess(const std::string& prefix, int year) {
    v1::GetAssessmentResponse response;
    grpc::Status status = Assess(hq_token(), prefix, year, &response, 1000);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
  grpc::Status EvidenceOf(const std::string& token, const v1::GetEvidenceReportRequest& request,
                          v1::GetEvidenceReportResponse* response) {
    auto context = ServiceHarness::Context(token);
    return report_->GetEvidenceReport(context.get(), request, response);
  }
  v1::GetEvidenceReportResponse MustEvidence(const std::string& prefix, int year) {
    v1::GetEvidenceReportRequest request;
    request.set_scope_prefix(prefix);
    request.set_year(year);
    request.set_page_size(1000);
    v1::GetEvidenceReportResponse response;
    grpc::Status status = EvidenceOf(hq_token(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
  static const v1::CadreAssessment* CadreIn(const v1::GetAssessmentResponse& r,
                                            const std::string& id) {
    for (const auto& c : r.cadres()) {
      if (c.user_id() == id) return &c;
    }
    return nullptr;
  }
  // A pointer into `r`, kept past the statement: never into a temporary
  // (ASan found two such uses of GapOf and CadreIn).
  static const v1::CoverageGap* GapOf(v1::GetAssessmentResponse&&, const std::string&) = delete;
  static const v1::CoverageGap* GapOf(const v1::GetAssessmentResponse& r, const std::string& id) {
    for (const auto& g : r.coverage_gaps()) {
      if (g.subject().id() == id) return &g;
    }
    return nullptr;
  }

  v1::ReportService::Stub& report() { return *report_; }

 private:
  std::unique_ptr<v1::ReportService::Stub> report_;
};

}  // namespace fieldsync::testing
