// Issue 9 point 8: no existence oracle. A subject a caller names by id that exists outside
// its scope and one that does not exist at all answer alike: the same code (PERMISSION_DENIED)
// and the same message with only the asked id differing (docs/authorization.md "No existence
// oracle"). Callers who see everything (scope all) are told NOT_FOUND: nothing is hidden from
// them. Through QueryService (GetHousehold by id and by number, GetHistory, ListRejections by
// device) over the real server.
#include <string>

#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

constexpr char kNobody[] = "11111111-1111-4111-8111-0000000000ee";

struct Answer {
  grpc::StatusCode code;
  std::string message;
};

class ExistenceOracleTest : public SyncWorld {
 protected:
  Answer GetById(const std::string& token, const std::string& id) {
    v1::GetHouseholdRequest request;
    request.set_id(id);
    v1::GetHouseholdResponse response;
    auto context = ServiceHarness::Context(token);
    grpc::Status status = query().GetHousehold(context.get(), request, &response);
    return {status.error_code(), status.error_message()};
  }
  Answer GetByNumber(const std::string& token, const std::string& number) {
    v1::GetHouseholdRequest request;
    request.set_household_number(number);
    v1::GetHouseholdResponse response;
    auto context = ServiceHarness::Context(token);
    grpc::Status status = query().GetHousehold(context.get(), request, &response);
    return {status.error_code(), status.error_message()};
  }
  Answer History(const std::string& token, const std::string& id) {
    v1::GetHistoryRequest request;
    request.mutable_subject()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
    request.mutable_subject()->set_id(id);
    v1::GetHistoryResponse response;
    auto context = ServiceHarness::Context(token);
    grpc::Status status = query().GetHistory(context.get(), request, &response);
    return {status.error_code(), status.error_message()};
  }
  Answer DeviceRejections(const std::string& token, const std::string& device_id) {
    v1::ListRejectionsRequest request;
    request.set_device_id(device_id);
    v1::ListRejectionsResponse response;
    auto context = ServiceHarness::Context(token);
    grpc::Status status = query().ListRejections(context.get(), request, &response);
    return {status.error_code(), status.error_message()};
  }

  // The two answers are alike: same code, PERMISSION_DENIED, and the same message once each
  // asked id is replaced by a placeholder.
  static void ExpectAlike(const Answer& existing, const std::string& existing_id,
                          const Answer& missing, const std::string& missing_id) {
    EXPECT_EQ(existing.code, grpc::StatusCode::PERMISSION_DENIED) << existing.message;
    EXPECT_EQ(missing.code, existing.code) << "out of scope: " << existing.message
                                           << "\nnonexistent: " << missing.message;
    EXPECT_EQ(absl::StrReplaceAll(missing.message, {{missing_id, "<id>"}}),
              absl::StrReplaceAll(existing.message, {{existing_id, "<id>"}}));
  }
};

TEST_F(ExistenceOracleTest, ACadreCannotTellAnOutOfScopeHouseholdFromNoneById) {
  // kH2 is registered in kV1, but not linked to cadre1.
  ExpectAlike(GetById(phone().token(), kH2), kH2, GetById(phone().token(), kNobody), kNobody);
}

TEST_F(ExistenceOracleTest, ACadreCannotTellAnOutOfScopeHouseholdNumberFromNone) {
  const Answer existing = GetByNumber(phone().token(), "N-2");
  const Answer missing = GetByNumber(phone().token(), "N-404");
  ExpectAlike(existing, "N-2", missing, "N-404");
  // Nor does the answer give away the id a number belongs to.
  EXPECT_EQ(existing.message.find(kH2), std::string::npos) << existing.message;
}

TEST_F(ExistenceOracleTest, TownshipStaffCannotTellAnotherCountysHouseholdFromNone) {
  ExpectAlike(GetById(tablet().token(), kH4), kH4, GetById(tablet().token(), kNobody), kNobody);
}

TEST_F(ExistenceOracleTest, HistoryOfAnOutOfScopeHouseholdAndOfNoneAnswerAlike) {
  ExpectAlike(History(phone().token(), kH2), kH2, History(phone().token(), kNobody), kNobody);
}

TEST_F(ExistenceOracleTest, AnotherUsersDeviceAndNoDeviceAnswerAlike) {
  ExpectAlike(DeviceRejections(phone().token(), tablet().id()), tablet().id(),
              DeviceRejections(phone().token(), "dev-404"), "dev-404");
}

TEST_F(ExistenceOracleTest, InScopeHouseholdsStayReadable) {
  EXPECT_EQ(GetById(phone().token(), kH1).code, grpc::StatusCode::OK);
  EXPECT_EQ(History(phone().token(), kH1).code, grpc::StatusCode::OK);
}

TEST_F(ExistenceOracleTest, CallersWhoSeeEverythingAreToldNotFound) {
  EXPECT_EQ(GetById(hq_token(), kNobody).code, grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GetByNumber(hq_token(), "N-404").code, grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(History(hq_token(), kNobody).code, grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(DeviceRejections(hq_token(), "dev-404").code, grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GetById(hq_token(), kH4).code, grpc::StatusCode::OK);
}

}  // namespace
}  // namespace fieldsync::testing
