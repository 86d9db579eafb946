// ReportService's information service (ListFeedback: FeedbackFiled by county,
// kind, filing order; group-leader units marked) and inspection findings
// (ListInspections: by subject), paged and scoped.
#include "gtest/gtest.h"
#include "tests/server/report_world.h"

namespace fieldsync::testing {
namespace {

class ReportInfoTest : public ReportWorld {
 public:
  v1::Event Feedback(TestDevice& device, const std::string& village, v1::FeedbackKind kind,
                     const std::string& title) {
    v1::SubjectRef subject;
    subject.set_kind(v1::SUBJECT_KIND_VILLAGE);
    subject.set_id(village);
    return device.Make(subject, village, [&](v1::Event& e) {
      v1::FeedbackFiled* f = e.mutable_feedback_filed();
      f->set_from_unit_id("U1");
      f->set_kind(kind);
      f->set_title(title);
      f->set_content("需要修路");
    });
  }
  v1::Event Inspection(TestDevice& device, const std::string& hh, const std::string& village) {
    v1::SubjectRef subject;
    subject.set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
    subject.set_id(hh);
    return device.Make(subject, village, [&](v1::Event& e) {
      v1::InspectionRecorded* i = e.mutable_inspection_recorded();
      i->set_inspector_name("督查組");
      i->set_findings("走訪記錄與實際不符");
      i->add_flags(v1::INSPECTION_FLAG_VISIT_DENIED);
      i->set_result(v1::INSPECTION_RESULT_ISSUES_FOUND);
    });
  }
  grpc::Status ListFeedback(const std::string& token, const v1::ListFeedbackRequest& request,
                            v1::ListFeedbackResponse* response) {
    auto context = ServiceHarness::Context(token);
    return report().ListFeedback(context.get(), request, response);
  }
  grpc::Status ListInspections(const std::string& token, const v1::ListInspectionsRequest& request,
                               v1::ListInspectionsResponse* response) {
    auto context = ServiceHarness::Context(token);
    return report().ListInspections(context.get(), request, response);
  }
};

TEST_F(ReportInfoTest, FeedbackIsListedByCountyAndKindWithGroupLeaderUnitsMarked) {
  v1::User office;
  office.set_id("office1");
  office.set_name("office1");
  // Field roles push; the unit's county office files for both counties.
  office.set_role(v1::ROLE_COUNTY_STAFF);
  office.set_unit_id("U1");
  office.add_scope_area_codes("620102");
  office.add_scope_area_codes("620103");
  ASSERT_TRUE(UpsertUser(*harness().channel(), admin_token(), office).ok());
  TestDevice device(DeviceClock());
  ASSERT_TRUE(device.Enroll(*harness().channel(), admin_token(), "office1").ok());
  ASSERT_TRUE(LinkOn("L-g1", "U1", v1::SUBJECT_KIND_AREA, "620102000000",
                     v1::LINK_ROLE_GROUP_LEADER_UNIT, D(2024, 1, 1), true)
                  .ok());
  MustPush(device, {Feedback(device, kV4, v1::FEEDBACK_KIND_PROJECT_NEED, "四村項目"),
                    Feedback(device, kV1, v1::FEEDBACK_KIND_PROBLEM, "一村問題"),
                    Feedback(device, kV1, v1::FEEDBACK_KIND_PROJECT_NEED, "一村項目")});
  v1::ListFeedbackRequest request;
  request.set_scope_prefix("62");
  v1::ListFeedbackResponse all;
  ASSERT_TRUE(ListFeedback(hq_token(), request, &all).ok());
  ASSERT_EQ(all.entries_size(), 3) << all.DebugString();
  // County 620102 first (PROJECT_NEED 1 before PROBLEM 3), then 620103.
  EXPECT_EQ(all.entries(0).title(), "一村項目");
  EXPECT_EQ(all.entries(1).title(), "一村問題");
  EXPECT_EQ(all.entries(2).title(), "四村項目");
  EXPECT_TRUE(all.entries(0).from_group_leader_unit());
  EXPECT_FALSE(all.entries(2).from_group_leader_unit());
  EXPECT_EQ(all.entries(0).county_code(), "620102");
  EXPECT_EQ(all.entries(0).actor(), "office1");

  request.set_group_leader_units_only(true);
  request.set_page_size(1);
  v1::ListFeedbackResponse page;
  ASSERT_TRUE(ListFeedback(hq_token(), request, &page).ok());
  ASSERT_EQ(page.entries_size(), 1);
  ASSERT_FALSE(page.next_page_token().empty());
  request.set_page_token(page.next_page_token());
  v1::ListFeedbackResponse second;
  ASSERT_TRUE(ListFeedback(hq_token(), request, &second).ok());
  ASSERT_EQ(second.entries_size(), 1);
  EXPECT_EQ(second.entries(0).title(), "一村問題");
  EXPECT_TRUE(second.next_page_token().empty());

  v1::ListFeedbackRequest county_b;
  county_b.set_scope_prefix("620103");
  v1::ListFeedbackResponse denied;
  EXPECT_EQ(ListFeedback(county().token(), county_b, &denied).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ListFeedback(phone().token(), county_b, &denied).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::ListFeedbackRequest own;
  own.set_scope_prefix(kCountyA);
  v1::ListFeedbackResponse mine;
  ASSERT_TRUE(ListFeedback(county().token(), own, &mine).ok());
  EXPECT_EQ(mine.entries_size(), 2);
}

TEST_F(ReportInfoTest, InspectionsAreListedBySubject) {
  // County staff record the inspections of their counties.
  MustPush(county(), {Inspection(county(), kH2, kV1), Inspection(county(), kH1, kV1)});
  MustPush(county_b(), {Inspection(county_b(), kH4, kV4)});
  v1::ListInspectionsRequest request;
  request.set_scope_prefix(kCountyA);
  v1::ListInspectionsResponse r;
  ASSERT_TRUE(ListInspections(hq_token(), request, &r).ok());
  ASSERT_EQ(r.entries_size(), 2) << r.DebugString();
  EXPECT_EQ(r.entries(0).subject().id(), kH1);
  EXPECT_EQ(r.entries(1).subject().id(), kH2);
  EXPECT_EQ(r.entries(0).result(), v1::INSPECTION_RESULT_ISSUES_FOUND);
  ASSERT_EQ(r.entries(0).flags_size(), 1);
  *request.mutable_subject() = Household(kH2);
  ASSERT_TRUE(ListInspections(hq_token(), request, &r).ok());
  ASSERT_EQ(r.entries_size(), 1);
  EXPECT_EQ(r.entries(0).subject().id(), kH2);
  v1::ListInspectionsRequest other;
  other.set_scope_prefix("620103");
  EXPECT_EQ(ListInspections(county().token(), other, &r).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

}  // namespace
}  // namespace fieldsync::testing
