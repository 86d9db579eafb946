// Who may read which ReportService report: cadres and township staff are
// refused, county staff see only their county, HQ sees everything; malformed
// requests answer INVALID_ARGUMENT.
#include "gtest/gtest.h"
#include "tests/server/report_world.h"

namespace fieldsync::testing {
namespace {

class ReportAccessTest : public ReportWorld {};

TEST_F(ReportAccessTest, CadresAndTownshipStaffAreRefused) {
  v1::GetAssessmentResponse r;
  EXPECT_EQ(Assess(phone().token(), kCountyA, 2024, &r).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Assess(tablet().token(), kTownA1, 2024, &r).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::GetEvidenceReportRequest request;
  request.set_scope_prefix(kCountyA);
  request.set_year(2024);
  v1::GetEvidenceReportResponse e;
  EXPECT_EQ(EvidenceOf(phone().token(), request, &e).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(ReportAccessTest, CountyStaffSeeTheirCountyOnly) {
  v1::GetAssessmentResponse r;
  EXPECT_TRUE(Assess(county().token(), kCountyA, 2024, &r).ok());
  EXPECT_TRUE(Assess(county().token(), kV1, 2024, &r).ok());
  grpc::Status other = Assess(county().token(), "620103", 2024, &r);
  EXPECT_EQ(other.error_code(), grpc::StatusCode::PERMISSION_DENIED) << other.error_message();
  EXPECT_EQ(Assess(county().token(), "62", 2024, &r).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::GetEvidenceReportRequest request;
  request.set_scope_prefix("620103");
  request.set_year(2024);
  v1::GetEvidenceReportResponse e;
  EXPECT_EQ(EvidenceOf(county().token(), request, &e).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(ReportAccessTest, HqSeesEveryLevel) {
  for (const char* prefix : {"62", "6201", kCountyA, kTownA1, kV1}) {
    v1::GetAssessmentResponse r;
    grpc::Status status = Assess(hq_token(), prefix, 2024, &r);
    EXPECT_TRUE(status.ok()) << prefix << ": " << status.error_message();
  }
}

TEST_F(ReportAccessTest, MalformedRequestsAreInvalidArgument) {
  v1::GetAssessmentResponse r;
  grpc::Status status = Assess(hq_token(), "620", 2024, &r);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("2, 4, 6, 9 or 12"), std::string::npos)
      << status.error_message();
  EXPECT_EQ(Assess(hq_token(), "", 2024, &r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Assess(hq_token(), "62", 0, &r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  status = Assess(hq_token(), "62", 2025, &r);  // Today is 2024-03-01.
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("not begun"), std::string::npos);
  EXPECT_EQ(Assess(hq_token(), "62", 2024, &r, 0, "junk").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // A token of another report is not a token of this one.
  v1::GetAssessmentResponse first;
  ASSERT_TRUE(Assess(hq_token(), "62", 2024, &first, 1).ok());
  ASSERT_FALSE(first.next_page_token().empty());
  EXPECT_EQ(Assess(hq_token(), kCountyA, 2024, &r, 1, first.next_page_token()).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::GetEvidenceReportRequest request;
  request.set_scope_prefix("62");
  request.set_year(2024);
  request.add_kinds(static_cast<v1::EvidenceFlagKind>(99));
  v1::GetEvidenceReportResponse e;
  EXPECT_EQ(EvidenceOf(hq_token(), request, &e).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace fieldsync::testing
