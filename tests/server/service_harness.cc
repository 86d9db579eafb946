#include "tests/server/service_harness.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <sodium.h>

#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "base/uuid.h"
#include "base/time.h"
#include "domain/field_schema.h"
#include "domain/shuanglian_policy.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/identity.h"
#include "sync/event_codec.h"
#include "sync/hlc.h"

namespace fieldsync::testing {

absl::StatusOr<std::unique_ptr<ServiceHarness>> ServiceHarness::Start(const std::string& data_dir,
                                                                      v1::ServerConfig config) {
  std::filesystem::create_directories(data_dir);
  auto harness = std::unique_ptr<ServiceHarness>(new ServiceHarness());
  config.set_data_dir(data_dir);
  harness->config_ = std::move(config);
  // The store runs with the options fieldsyncd derives from the same config.
  ASSIGN_OR_RETURN(harness->store_, storage::OpenEventStore(
                                        data_dir + "/db", server::StoreOptionsFrom(harness->config_)));
  server::ServiceDeps deps;
  deps.store = harness->store_.get();
  deps.config = &harness->config_;
  deps.state = &harness->state_;
  deps.metrics = &harness->metrics_;
  deps.clock = harness->clock_.AsClock();
  ASSIGN_OR_RETURN(harness->services_, server::CreateServices(deps));
  harness->admin_token_ = harness->services_->first_admin_token().value_or("");

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  if (harness->config_.limits().max_message_bytes() > 0) {
    builder.SetMaxReceiveMessageSize(
        static_cast<int>(harness->config_.limits().max_message_bytes()));
    builder.SetMaxSendMessageSize(static_cast<int>(harness->config_.limits().max_message_bytes()));
  }
  // As fieldsyncd: a request that does not parse is INVALID_ARGUMENT naming the field.
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(server::NewMalformedRequestFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  for (grpc::Service* service : harness->services_->services()) builder.RegisterService(service);
  harness->server_ = builder.BuildAndStart();
  if (harness->server_ == nullptr || port == 0) {
    return absl::UnavailableError("cannot listen on 127.0.0.1:0");
  }
  harness->server_->GetHealthCheckService()->SetServingStatus(true);
  harness->address_ = absl::StrCat("127.0.0.1:", port);
  harness->channel_ = grpc::CreateChannel(harness->address_, grpc::InsecureChannelCredentials());
  return harness;
}

ServiceHarness::~ServiceHarness() {
  state_.BeginDrain();
  state_.WaitIdle(absl::Now() + absl::Seconds(10));
  if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  services_.reset();
  store_.reset();
}

std::unique_ptr<grpc::ClientContext> ServiceHarness::Context(const std::string& token) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return context;
}

std::vector<sync::LoggedEvent> ServiceHarness::ReadLog() {
  std::vector<sync::LoggedEvent> events;
  uint64_t after = 0;
  while (true) {
    absl::StatusOr<std::vector<storage::LogRecord>> records =
        store_->ReadAfter(after, storage::ReadLimits{});
    if (!records.ok() || records->empty()) break;
    for (const storage::LogRecord& record : *records) {
      absl::StatusOr<sync::LoggedEvent> event = sync::DecodeRecord(record);
      if (event.ok()) events.push_back(*std::move(event));
      after = record.offset;
    }
  }
  return events;
}

absl::Status ServiceHarness::RegisterHousehold(const std::string& id, const std::string& number,
                                               const std::string& village_code) {
  v1::Event event;
  event.mutable_subject()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
  event.mutable_subject()->set_id(id);
  event.set_area_code(village_code);
  v1::HouseholdRegistered* body = event.mutable_household_registered();
  body->set_household_number(number);
  body->set_head_name("戶主");
  body->set_head_id_number("620102199001011234");
  // A server-made event through the engine's entry (signed by the node), as
  // a township registry clerk's: the domain's merge and the subject index
  // run as for a push.
  server::ServerChange change;
  change.event = std::move(event);
  change.actor_role = v1::ROLE_TOWNSHIP_STAFF;
  std::vector<server::ServerChange> changes;
  changes.push_back(std::move(change));
  return services_->identity().Append("test-registry", std::move(changes)).status();
}

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

absl::StatusOr<v1::User> UpsertUser(grpc::Channel& channel, const std::string& admin_token,
                                    const v1::User& user) {
  auto stub = v1::AdminService::NewStub(std::shared_ptr<grpc::Channel>(&channel, [](auto*) {}));
  v1::UpsertUserRequest request;
  *request.mutable_user() = user;
  v1::UpsertUserResponse response;
  auto context = ServiceHarness::Context(admin_token);
  RETURN_IF_ERROR(FromGrpc(stub->UpsertUser(context.get(), request, &response)));
  return response.user();
}

absl::StatusOr<EnrolledDevice> EnrollDevice(grpc::Channel& channel, const std::string& admin_token,
                                            const std::string& user_id) {
  return EnrollDevice(channel, admin_token, user_id, std::string(32, '\x07'));
}

absl::StatusOr<EnrolledDevice> EnrollDevice(grpc::Channel& channel, const std::string& admin_token,
                                            const std::string& user_id,
                                            const std::string& public_key) {
  std::shared_ptr<grpc::Channel> shared(&channel, [](auto*) {});
  auto admin = v1::AdminService::NewStub(shared);
  v1::IssueEnrollmentCodeRequest issue;
  issue.set_user_id(user_id);
  v1::IssueEnrollmentCodeResponse code;
  auto context = ServiceHarness::Context(admin_token);
  RETURN_IF_ERROR(FromGrpc(admin->IssueEnrollmentCode(context.get(), issue, &code)));
  auto sync = v1::SyncService::NewStub(shared);
  v1::EnrollRequest enroll;
  enroll.set_code(code.code());
  enroll.set_ed25519_public_key(public_key);
  enroll.set_device_model("test phone");
  v1::EnrollResponse enrolled;
  context = ServiceHarness::Context("");
  RETURN_IF_ERROR(FromGrpc(sync->Enroll(context.get(), enroll, &enrolled)));
  return EnrolledDevice{enrolled.device_id(), enrolled.token()};
}

// --- TestDevice ----------------------------------------------------------------------

TestDevice::TestDevice(std::function<absl::Time()> clock) : clock_(std::move(clock)) {
  if (sodium_init() < 0) {
    // Ignored on purpose: key generation and signing work without it.
  }
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  public_key_.assign(reinterpret_cast<char*>(pk), sizeof pk);
  secret_key_.assign(reinterpret_cast<char*>(sk), sizeof sk);
}

absl::Status TestDevice::Enroll(grpc::Channel& channel, const std::string& admin_token,
                                const std::string& user_id) {
  ASSIGN_OR_RETURN(EnrolledDevice enrolled,
                   EnrollDevice(channel, admin_token, user_id, public_key_));
  id_ = enrolled.device_id;
  token_ = enrolled.token;
  user_id_ = user_id;
  return absl::OkStatus();
}

void TestDevice::Sign(v1::Event& event) const { testsig::SignForTest(secret_key_, event); }

v1::SignedEvent TestDevice::SignBytes(std::string bytes) const {
  v1::SignedEvent out;
  out.set_event(std::move(bytes));
  unsigned char signature[crypto_sign_BYTES];
  crypto_sign_detached(
      signature, nullptr, reinterpret_cast<const unsigned char*>(out.event().data()),
      out.event().size(), reinterpret_cast<const unsigned char*>(secret_key_.data()));
  out.set_signature(std::string(reinterpret_cast<char*>(signature), sizeof signature));
  return out;
}

v1::Event TestDevice::Make(const v1::SubjectRef& subject, const std::string& area_code,
                           const std::function<void(v1::Event&)>& body) {
  hlc_ = std::max(hlc_ + 1, sync::HlcAt(clock_()));
  v1::Event event;
  event.set_event_id(RandomUuid());
  event.set_device_id(id_);
  event.set_device_seq(next_seq_++);
  event.set_hlc(hlc_);
  *event.mutable_device_time() = base::ToTimestamp(clock_());
  *event.mutable_subject() = subject;
  event.set_area_code(area_code);
  body(event);
  Sign(event);
  return event;
}

v1::Event TestDevice::Register(const std::string& household_id, const std::string& village,
                               const std::string& number) {
  return Make(Household(household_id), village, [&](v1::Event& e) {
    v1::HouseholdRegistered* r = e.mutable_household_registered();
    r->set_household_number(number);
    r->set_head_name(absl::StrCat("戶主", number));
    r->set_head_id_number(ResidentId(std::hash<std::string>()(number)));
    r->set_initial_status(v1::HOUSEHOLD_STATUS_IDENTIFIED);
  });
}

v1::Event TestDevice::SetField(const std::string& household_id, const std::string& village,
                               const std::string& field, const v1::FieldValue& value,
                               uint64_t base) {
  return Make(Household(household_id), village, [&](v1::Event& e) {
    v1::FieldPatch* p = e.mutable_household_fields_set()->add_patches();
    p->set_field(field);
    *p->mutable_value() = value;
    p->set_base_version(base);
  });
}

v1::Event TestDevice::Visit(const std::string& household_id, const std::string& village,
                            const std::string& notes) {
  return Make(Household(household_id), village, [&](v1::Event& e) {
    v1::VisitRecorded* v = e.mutable_visit_recorded();
    *v->mutable_start_time() = base::ToTimestamp(clock_() - absl::Hours(1));
    *v->mutable_end_time() = base::ToTimestamp(clock_());
    v->set_purpose(v1::VISIT_PURPOSE_ROUTINE);
    v->set_notes(notes);
  });
}

v1::Event TestDevice::Propose(const std::string& household_id, const std::string& village,
                              v1::HouseholdStatus from, v1::HouseholdStatus to) {
  return Make(Household(household_id), village, [&](v1::Event& e) {
    v1::StatusChangeProposed* p = e.mutable_status_change_proposed();
    p->set_from_status(from);
    p->set_to_status(to);
    p->set_reason("收入達標");
  });
}

v1::Event TestDevice::Confirm(const std::string& household_id, const std::string& village,
                              const std::string& proposal_id, v1::HouseholdStatus from,
                              v1::HouseholdStatus to, v1::ReviewStage stage) {
  return Make(Household(household_id), village, [&](v1::Event& e) {
    v1::StatusChangeConfirmed* c = e.mutable_status_change_confirmed();
    c->set_proposal_event_id(proposal_id);
    c->set_from_status(from);
    c->set_to_status(to);
    c->set_stage(stage);
    c->set_decision(v1::REVIEW_DECISION_APPROVE);
  });
}

std::string RandomUuid() {
  unsigned char bytes[16];
  randombytes_buf(bytes, sizeof bytes);
  return base::UuidV4(bytes);
}

std::string ResidentId(uint64_t n) {
  std::string first17 = absl::StrFormat("620102%011d", n % 100000000000ULL);
  return first17 + domain::ResidentIdCheckChar(first17);
}

v1::SubjectRef Household(const std::string& id) {
  v1::SubjectRef ref;
  ref.set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
  ref.set_id(id);
  return ref;
}

v1::FieldValue Text(const std::string& s) {
  v1::FieldValue value;
  value.set_string_value(s);
  return value;
}

}  // namespace fieldsync::testing
