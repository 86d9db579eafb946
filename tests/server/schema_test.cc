// Issue 9 point 9: SyncService.GetSchema publishes the registry's field schema
// (domain/field_schema.h: names, types, bounds, enum values), a schema_version
// for caching (stable across a restart, different for a different schema),
// and the limits a client must respect, read from the live configuration.
// Any enrolled role may call it.
#include <set>
#include <string>

#include "domain/field_schema.h"
#include "gtest/gtest.h"
#include "server/sync_service.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

class SchemaTest : public SyncWorld {
 protected:
  void Configure(v1::ServerConfig& config) override {
    v1::LimitsConfig* limits = config.mutable_limits();
    limits->set_max_push_events(123);
    limits->set_max_push_bytes(456789);
    limits->set_max_event_bytes(34567);
    limits->set_max_blob_bytes(7654321);
  }

  grpc::Status GetSchema(const std::string& token, v1::GetSchemaResponse* response) {
    auto context = ServiceHarness::Context(token);
    return sync().GetSchema(context.get(), v1::GetSchemaRequest(), response);
  }

  v1::GetSchemaResponse MustGetSchema(const std::string& token) {
    v1::GetSchemaResponse response;
    grpc::Status status = GetSchema(token, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
};

// One published field against the domain's own entry.
void ExpectPublished(const domain::FieldSchema& field, const v1::FieldSpec& spec) {
  SCOPED_TRACE(std::string(field.name));
  EXPECT_EQ(spec.name(), field.name);
  EXPECT_EQ(spec.required(), field.required);
  switch (field.type) {
    case domain::FieldType::kInt:
      EXPECT_EQ(spec.type(), v1::FIELD_TYPE_INT);
      EXPECT_EQ(spec.min(), field.min);
      EXPECT_EQ(spec.max(), field.max);
      break;
    case domain::FieldType::kString:
      EXPECT_EQ(spec.type(), v1::FIELD_TYPE_STRING);
      EXPECT_EQ(spec.max_length(), static_cast<uint32_t>(field.max));
      break;
    case domain::FieldType::kStringList:
      EXPECT_EQ(spec.type(), v1::FIELD_TYPE_STRING_LIST);
      EXPECT_EQ(spec.max_length(), static_cast<uint32_t>(field.max));
      break;
    case domain::FieldType::kEnum:
    case domain::FieldType::kEnumList: {
      EXPECT_EQ(spec.type(), field.type == domain::FieldType::kEnum ? v1::FIELD_TYPE_ENUM
                                                                    : v1::FIELD_TYPE_ENUM_LIST);
      // Exactly the numbers the server accepts, with their names.
      std::set<int> accepted;
      for (int n = -1; n < 1000; ++n) {
        if (field.enum_valid(n)) accepted.insert(n);
      }
      std::set<int> published;
      for (const v1::EnumValue& value : spec.enum_values()) {
        published.insert(value.number());
        EXPECT_FALSE(value.name().empty());
      }
      EXPECT_EQ(published, accepted);
      EXPECT_TRUE(spec.enum_type().starts_with("fieldsync.v1.")) << spec.enum_type();
      break;
    }
    case domain::FieldType::kBool:
      EXPECT_EQ(spec.type(), v1::FIELD_TYPE_BOOL);
      break;
    case domain::FieldType::kDate:
      EXPECT_EQ(spec.type(), v1::FIELD_TYPE_DATE);
      break;
    case domain::FieldType::kLocation:
      EXPECT_EQ(spec.type(), v1::FIELD_TYPE_LOCATION);
      break;
    case domain::FieldType::kIdNumber:
      EXPECT_EQ(spec.type(), v1::FIELD_TYPE_ID_NUMBER);
      break;
  }
}

TEST_F(SchemaTest, TheSchemaIsTheDomainsFieldSchema) {
  const v1::GetSchemaResponse response = MustGetSchema(phone().token());
  const auto& household = domain::HouseholdFields();
  const auto& member = domain::MemberFields();
  ASSERT_EQ(response.schema().household_fields_size(), static_cast<int>(household.size()));
  ASSERT_EQ(response.schema().member_fields_size(), static_cast<int>(member.size()));
  for (size_t i = 0; i < household.size(); ++i) {
    ExpectPublished(household[i], response.schema().household_fields(static_cast<int>(i)));
  }
  for (size_t i = 0; i < member.size(); ++i) {
    ExpectPublished(member[i], response.schema().member_fields(static_cast<int>(i)));
  }
}

TEST_F(SchemaTest, TheLimitsAreTheConfiguredOnes) {
  const v1::ClientLimits limits = MustGetSchema(phone().token()).limits();
  EXPECT_EQ(limits.max_push_events(), 123u);
  EXPECT_EQ(limits.max_push_bytes(), 456789u);
  EXPECT_EQ(limits.max_event_bytes(), 34567u);
  EXPECT_EQ(limits.max_blob_bytes(), 7654321u);
  // SyncWorld's own rate settings.
  EXPECT_EQ(limits.device_requests_per_second(), config_.limits().device_requests_per_second());
  EXPECT_EQ(limits.device_request_burst(), config_.limits().device_request_burst());
  EXPECT_GT(limits.max_message_bytes(), 0u);
}

TEST_F(SchemaTest, TheVersionIsStableAcrossARestartAndFollowsTheSchema) {
  const v1::GetSchemaResponse before = MustGetSchema(phone().token());
  EXPECT_EQ(before.schema_version().size(), 64u) << before.schema_version();
  EXPECT_EQ(before.schema_version(), server::SchemaVersion(before.schema()));
  Restart();
  const v1::GetSchemaResponse after = MustGetSchema(phone().token());
  EXPECT_EQ(after.schema_version(), before.schema_version());

  // Any change of the schema's content changes the version.
  v1::FieldSchemaSet changed = before.schema();
  changed.mutable_household_fields(0)->set_max_length(
      changed.household_fields(0).max_length() + 1);
  EXPECT_NE(server::SchemaVersion(changed), before.schema_version());
  v1::FieldSchemaSet fewer = before.schema();
  fewer.mutable_member_fields()->RemoveLast();
  EXPECT_NE(server::SchemaVersion(fewer), before.schema_version());
}

TEST_F(SchemaTest, EveryEnrolledRoleMayAskAndNobodyWithoutAToken) {
  for (const std::string& token : {phone().token(), tablet().token(), county().token(),
                                   hq_token(), admin_token()}) {
    v1::GetSchemaResponse response;
    EXPECT_TRUE(GetSchema(token, &response).ok());
  }
  v1::GetSchemaResponse response;
  EXPECT_EQ(GetSchema("", &response).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace
}  // namespace fieldsync::testing
