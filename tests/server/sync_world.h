// SyncWorld: a GoogleTest fixture with a real server (ServiceHarness) and a
// small Gansu world made through the real API, for the end-to-end tests of
// SyncService, QueryService and StreamService.
//
// Areas (AdminService.ImportAreas): county A 620102 with township 620102001
// (villages kV1, kV2) and township 620102002 (village kV3); county B 620103
// with township 620103001 (village kV4).
// Users and their devices (real Ed25519 keys, enrolled with one-time codes):
//   cadre1  (cadre, linked to household kH1 by StartLink)  phone()
//   town1   (township staff of 620102001)                   tablet()
//   county1 (county staff of 620102)                        county()
//   county2 (county staff of 620103)                        county_b()
//   hq1     (HQ analyst)                                    hq_token()
// Households, registered by pushes: kH1, kH2 in kV1, kH3 in kV2 (by the
// tablet), kH4 in kV4 (by county_b()).
//
// Not thread-safe (a test fixture).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "fieldsync/v1/query_service.grpc.pb.h"
#include "fieldsync/v1/stream_service.grpc.pb.h"
#include "fieldsync/v1/sync_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/server/service_harness.h"

namespace fieldsync::testing {

inline constexpr char kCountyA[] = "620102";
inline constexpr char kTownA1[] = "620102001";
inline constexpr char kV1[] = "620102001001";
inline constexpr char kV2[] = "620102001002";
inline constexpr char kV3[] = "620102002001";
inline constexpr char kV4[] = "620103001001";
inline constexpr char kH1[] = "11111111-1111-4111-8111-000000000001";
inline constexpr char kH2[] = "11111111-1111-4111-8111-000000000002";
inline constexpr char kH3[] = "11111111-1111-4111-8111-000000000003";
inline constexpr char kH4[] = "11111111-1111-4111-8111-000000000004";

class SyncWorld : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

 public:  // For the table-driven tests' lambdas.
  // Adjusts the config the world's server starts with (by default: no rate
  // limit in the way). Fixtures override it to set other limits.
  virtual void Configure(v1::ServerConfig&) {}
  // Stops the server and starts it again on the same data directory.
  void Restart();

  ServiceHarness& harness() { return *harness_; }
  // The clock of the devices: the current harness's, across Restart (a
  // device outlives the harness it was made under, so it must never hold
  // that harness's FakeClock).
  server::Clock DeviceClock() {
    return [this] { return harness_->clock().Now(); };
  }
  TestDevice& phone() { return *phone_; }
  TestDevice& tablet() { return *tablet_; }
  TestDevice& county() { return *county_; }
  TestDevice& county_b() { return *county_b_; }
  const std::string& hq_token() const { return hq_token_; }
  const std::string& admin_token() const { return admin_token_; }

  v1::SyncService::Stub& sync() { return *sync_; }
  v1::QueryService::Stub& query() { return *query_; }
  v1::StreamService::Stub& stream() { return *stream_; }
  v1::AdminService::Stub& admin() { return *admin_; }

  // Push as `device` (its token), each event sealed as its signer signed it
  // (SealForPush). `trailers` receives the trailing metadata.
  grpc::Status Push(const TestDevice& device, const std::vector<v1::Event>& events,
                    v1::PushResponse* response,
                    std::multimap<std::string, std::string>* trailers = nullptr);
  // The same with SignedEvents as they are (tests of the bytes themselves).
  grpc::Status PushSigned(const TestDevice& device, const std::vector<v1::SignedEvent>& events,
                          v1::PushResponse* response);
  // Push that must succeed; returns the response (test failure otherwise).
  v1::PushResponse MustPush(const TestDevice& device, const std::vector<v1::Event>& events);
  grpc::Status Pull(const std::string& token, const v1::PullRequest& request,
                    v1::PullResponse* response);
  // Pulls until `more` is false, from `cursor` (empty: first sync); returns
  // every page.
  std::vector<v1::PullResponse> PullAll(const std::string& token, v1::Checkpoint cursor);

  grpc::Status StartLink(const std::string& link_id, const std::string& cadre_id,
                         v1::SubjectKind kind, const std::string& target, v1::LinkRole role);
  grpc::Status EndLink(const std::string& link_id);

  // The log head now.
  uint64_t Head() { return harness_->store().Head(); }

  v1::ServerConfig config_;
  std::string dir_;

 protected:
  void MakeStubs();
  void BuildWorld();

 private:
  std::unique_ptr<ServiceHarness> harness_;
  std::string admin_token_;
  std::string hq_token_;
  std::unique_ptr<TestDevice> phone_, tablet_, county_, county_b_;
  std::unique_ptr<v1::SyncService::Stub> sync_;
  std::unique_ptr<v1::QueryService::Stub> query_;
  std::unique_ptr<v1::StreamService::Stub> stream_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

// The outcome of a PushResult as a short word, for test messages:
// "accepted", "duplicate", "conflict", or the rejection code's name.
std::string OutcomeOf(const v1::PushResult& result);

// The v1.ErrorDetail a finished call carried in its trailer fieldsync-error-bin
// (docs/protocol.md); nullopt if none, or if it does not parse.
std::optional<v1::ErrorDetail> ErrorDetailIn(const grpc::ClientContext& context);
// The same from trailers as Push returns them.
std::optional<v1::ErrorDetail> ErrorDetailIn(
    const std::multimap<std::string, std::string>& trailers);

}  // namespace fieldsync::testing
