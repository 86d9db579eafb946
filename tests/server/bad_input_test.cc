// Bad input through gRPC, as a table: every case names its expected gRPC
// status (or, for Push, the per-event outcome), and every case checks that
// nothing was written that should not be: the log head and every projection
// for refused calls; for a refused event, no new event in the log, no change
// of domain state ("dom/"), exactly one new rejection record.
#include <functional>
#include <map>

#include "absl/strings/str_cat.h"
#include "base/time.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "storage/sha256.h"
#include "sync/event_codec.h"
#include "sync/hlc.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

class GrpcBadInputTest : public SyncWorld {
 protected:
  void Configure(v1::ServerConfig& config) override {
    v1::LimitsConfig* limits = config.mutable_limits();
    limits->set_max_push_events(20);
    limits->set_max_push_bytes(64 << 10);
    limits->set_max_event_bytes(8 << 10);
    limits->set_max_blob_bytes(1 << 20);
    limits->set_max_message_bytes(512 << 10);
  }

 public:  // For the table's lambdas.
  std::map<std::string, std::string> Projections(const std::string& prefix) {
    std::map<std::string, std::string> out;
    std::string position;
    while (true) {
      auto batch = harness().store().ScanProjections(prefix, position, 1000);
      EXPECT_TRUE(batch.ok()) << batch.status();
      if (!batch.ok()) return out;
      for (auto& [key, value] : *batch) {
        position = key;
        out.emplace(key, value);
      }
      if (batch->size() < 1000) return out;
    }
  }

  // Events of the log that are events (rejection markers left out).
  size_t LoggedEvents() {
    size_t n = 0;
    for (const v1::StoredEvent& event : harness().ReadLog()) {
      if (!sync::IsRejectionMarker(event)) ++n;
    }
    return n;
  }

  // Puts every device's counter where the server expects it (a refused
  // event of unproven origin does not take its number).
  void Resync(TestDevice& device) {
    v1::PushResponse response;
    ASSERT_TRUE(Push(device, {}, &response).ok());
    device.set_next_seq(response.next_expected_seq().at(device.id()));
  }

  v1::Household ReadHousehold(const std::string& id) {
    v1::GetHouseholdRequest request;
    request.set_id(id);
    v1::GetHouseholdResponse response;
    auto context = ServiceHarness::Context(county().token());
    grpc::Status status = query().GetHousehold(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.household();
  }

  // An extra device of cadre1, enrolled then revoked.
  std::unique_ptr<TestDevice> RevokedDevice() {
    auto device = std::make_unique<TestDevice>(DeviceClock());
    EXPECT_TRUE(device->Enroll(*harness().channel(), admin_token(), "cadre1").ok());
    v1::RevokeDeviceRequest revoke;
    revoke.set_device_id(device->id());
    revoke.set_reason("lost");
    v1::RevokeDeviceResponse revoked;
    auto context = ServiceHarness::Context(admin_token());
    EXPECT_TRUE(admin().RevokeDevice(context.get(), revoke, &revoked).ok());
    return device;
  }
};

// What a push case sends.
struct PushCall {
  PushCall(TestDevice* as, std::vector<v1::Event> events,
           std::optional<std::string> token = std::nullopt)
      : as(as), events(std::move(events)), token(std::move(token)) {}
  TestDevice* as;
  std::vector<v1::Event> events;
  // When set, the token sent instead of `as`'s ("" = none).
  std::optional<std::string> token;
};

struct PushCase {
  PushCase(std::string name, std::function<PushCall(GrpcBadInputTest&)> prepare,
           grpc::StatusCode code, std::string outcome = "",
           std::function<void(GrpcBadInputTest&, const v1::PushResponse&)> verify = nullptr)
      : name(std::move(name)),
        prepare(std::move(prepare)),
        code(code),
        outcome(std::move(outcome)),
        verify(std::move(verify)) {}
  std::string name;
  // Sets up what the case needs (it may push good events first) and returns
  // the bad call. State is compared from after this point.
  std::function<PushCall(GrpcBadInputTest&)> prepare;
  grpc::StatusCode code;
  // With OK: the outcome of the last result (OutcomeOf).
  std::string outcome;
  // Extra checks on what was stored.
  std::function<void(GrpcBadInputTest&, const v1::PushResponse&)> verify;
};

TEST_F(GrpcBadInputTest, PushRefusesBadInputAndWritesNothingItShouldNot) {
  std::unique_ptr<TestDevice> revoked = RevokedDevice();
  const std::string missing_blob = storage::DigestBytes(storage::Sha256({"never uploaded"}));

  auto visit = [](GrpcBadInputTest& t, const std::function<void(v1::Event&)>& change) {
    v1::Event event = t.phone().Visit(kH1, kV1);
    change(event);
    t.phone().Sign(event);
    return PushCall{&t.phone(), {event}};
  };
  auto visit_body = [](GrpcBadInputTest& t, const std::function<void(v1::VisitRecorded&)>& change) {
    v1::Event event = t.phone().Visit(kH1, kV1);
    change(*event.mutable_visit_recorded());
    t.phone().Sign(event);
    return PushCall{&t.phone(), {event}};
  };

  std::vector<PushCase> cases = {
      {"too many events for limits.max_push_events",
       [](GrpcBadInputTest& t) {
         PushCall call{&t.phone(), {}};
         for (int i = 0; i < 21; ++i) call.events.push_back(t.phone().Visit(kH1, kV1));
         return call;
       },
       grpc::StatusCode::RESOURCE_EXHAUSTED},
      {"too many bytes for limits.max_push_bytes",
       [](GrpcBadInputTest& t) {
         PushCall call{&t.phone(), {}};
         for (int i = 0; i < 10; ++i) {
           call.events.push_back(t.phone().Visit(kH1, kV1, std::string(7000, 'x')));
         }
         return call;
       },
       grpc::StatusCode::RESOURCE_EXHAUSTED},
      {"sequence gap",
       [](GrpcBadInputTest& t) {
         t.phone().set_next_seq(t.phone().next_seq() + 3);
         return PushCall{&t.phone(), {t.phone().Visit(kH1, kV1)}};
       },
       grpc::StatusCode::FAILED_PRECONDITION},
      {"no token",
       [](GrpcBadInputTest& t) {
         return PushCall{&t.phone(), {t.phone().Visit(kH1, kV1)}, ""};
       },
       grpc::StatusCode::UNAUTHENTICATED},
      {"malformed token",
       [](GrpcBadInputTest& t) {
         return PushCall{&t.phone(), {t.phone().Visit(kH1, kV1)}, "fst_short"};
       },
       grpc::StatusCode::UNAUTHENTICATED},
      {"revoked device's token",
       [&revoked](GrpcBadInputTest& t) {
         return PushCall{revoked.get(), {t.phone().Visit(kH1, kV1)}};
       },
       grpc::StatusCode::UNAUTHENTICATED},
      {"role that may not push (HQ analyst)",
       [](GrpcBadInputTest& t) {
         return PushCall{&t.phone(), {t.phone().Visit(kH1, kV1)}, t.hq_token()};
       },
       grpc::StatusCode::PERMISSION_DENIED},
      {"malformed event_id",
       [&](GrpcBadInputTest& t) {
         return visit(t, [](v1::Event& e) { e.set_event_id("Not-A-UUID"); });
       },
       grpc::StatusCode::OK, "REJECTION_CODE_MALFORMED"},
      {"device_seq 0",
       [&](GrpcBadInputTest& t) { return visit(t, [](v1::Event& e) { e.set_device_seq(0); }); },
       grpc::StatusCode::OK, "REJECTION_CODE_MALFORMED"},
      {"unknown device",
       [&](GrpcBadInputTest& t) {
         return visit(t, [](v1::Event& e) { e.set_device_id("dev-never-enrolled"); });
       },
       grpc::StatusCode::OK, "REJECTION_CODE_UNKNOWN_DEVICE"},
      {"bad signature (changed after signing)",
       [](GrpcBadInputTest& t) {
         v1::Event event = t.phone().Visit(kH1, kV1);
         event.mutable_visit_recorded()->set_notes("changed on the way");
         return PushCall{&t.phone(), {event}};
       },
       grpc::StatusCode::OK, "REJECTION_CODE_BAD_SIGNATURE"},
      {"foreign device: another device's id without its key",
       [&](GrpcBadInputTest& t) {
         return visit(t, [&t](v1::Event& e) { e.set_device_id(t.tablet().id()); });
       },
       grpc::StatusCode::OK, "REJECTION_CODE_BAD_SIGNATURE"},
      {"revoked device's signed event, relayed",
       [&revoked](GrpcBadInputTest& t) {
         revoked->set_next_seq(1);
         return PushCall{&t.phone(), {revoked->Visit(kH1, kV1)}};
       },
       grpc::StatusCode::OK, "REJECTION_CODE_DEVICE_REVOKED"},
      {"out of scope",
       [](GrpcBadInputTest& t) {
         return PushCall{&t.phone(), {t.phone().Visit(kH3, kV2)}};
       },
       grpc::StatusCode::OK, "REJECTION_CODE_OUT_OF_SCOPE"},
      {"event over limits.max_event_bytes",
       [&](GrpcBadInputTest& t) {
         return visit_body(t, [](v1::VisitRecorded& v) { v.set_notes(std::string(9000, 'x')); });
       },
       grpc::StatusCode::OK, "REJECTION_CODE_TOO_LARGE"},
      {"unknown enum value",
       [&](GrpcBadInputTest& t) {
         return visit_body(
             t, [](v1::VisitRecorded& v) { v.set_purpose(static_cast<v1::VisitPurpose>(99)); });
       },
       grpc::StatusCode::OK, "REJECTION_CODE_INVALID_VALUE"},
      {"no body",
       [&](GrpcBadInputTest& t) {
         return visit(t, [](v1::Event& e) { e.clear_visit_recorded(); });
       },
       grpc::StatusCode::OK, "REJECTION_CODE_MALFORMED"},
      {"a field this server does not know",
       [&](GrpcBadInputTest& t) {
         return visit(t, [](v1::Event& e) {
           e.GetReflection()->MutableUnknownFields(&e)->AddVarint(999, 1);
         });
       },
       grpc::StatusCode::OK, "REJECTION_CODE_MALFORMED"},
      {"area code not 12 digits",
       [&](GrpcBadInputTest& t) {
         return visit(t, [](v1::Event& e) { e.set_area_code("62010200"); });
       },
       grpc::StatusCode::OK, "REJECTION_CODE_INVALID_VALUE"},
      {"latitude out of range",
       [&](GrpcBadInputTest& t) {
         return visit(t, [](v1::Event& e) {
           e.mutable_location()->set_lat(95);
           e.mutable_location()->set_lng(103.8);
         });
       },
       grpc::StatusCode::OK, "REJECTION_CODE_INVALID_VALUE"},
      {"visit ends before it starts",
       [&](GrpcBadInputTest& t) {
         return visit_body(t, [](v1::VisitRecorded& v) {
           std::swap(*v.mutable_start_time(), *v.mutable_end_time());
         });
       },
       grpc::StatusCode::OK, "REJECTION_CODE_INVALID_VALUE"},
      {"visit longer than 72 hours",
       [&](GrpcBadInputTest& t) {
         return visit_body(t, [&t](v1::VisitRecorded& v) {
           *v.mutable_start_time() = base::ToTimestamp(t.harness().clock().Now() - absl::Hours(80));
         });
       },
       grpc::StatusCode::OK, "REJECTION_CODE_INVALID_VALUE"},
      {"same event_id, other content",
       [&](GrpcBadInputTest& t) {
         v1::Event first = t.phone().Visit(kH1, kV1);
         t.MustPush(t.phone(), {first});
         return visit(t, [&first](v1::Event& e) { e.set_event_id(first.event_id()); });
       },
       grpc::StatusCode::OK, "REJECTION_CODE_EVENT_ID_REUSED"},
      {"device_seq already used, new event_id",
       [](GrpcBadInputTest& t) {
         t.MustPush(t.phone(), {t.phone().Visit(kH1, kV1)});
         t.phone().set_next_seq(t.phone().next_seq() - 1);
         return PushCall{&t.phone(), {t.phone().Visit(kH1, kV1)}};
       },
       grpc::StatusCode::OK, "REJECTION_CODE_SEQUENCE_REUSED"},
      {"field patch of a household nobody registered",
       [](GrpcBadInputTest& t) {
         return PushCall{&t.tablet(),
                         {t.tablet().SetField("11111111-1111-4111-8111-0000000000ff", kV1, "phone",
                                              Text("1"), 0)}};
       },
       grpc::StatusCode::OK, "REJECTION_CODE_UNKNOWN_SUBJECT"},
      {"household registered twice",
       [](GrpcBadInputTest& t) {
         return PushCall{&t.tablet(), {t.tablet().Register(kH2, kV1, "N-9")}};
       },
       grpc::StatusCode::OK, "REJECTION_CODE_SUBJECT_EXISTS"},
      {"field this schema does not have",
       [](GrpcBadInputTest& t) {
         return PushCall{&t.tablet(),
                         {t.tablet().SetField(kH1, kV1, "favourite_colour", Text("red"), 0)}};
       },
       grpc::StatusCode::OK, "REJECTION_CODE_UNKNOWN_FIELD"},
      {"invalid resident ID number",
       [](GrpcBadInputTest& t) {
         v1::Event event = t.tablet().Register("11111111-1111-4111-8111-0000000000aa", kV1, "N-10");
         event.mutable_household_registered()->set_head_id_number("620102199001011230");
         t.tablet().Sign(event);
         return PushCall{&t.tablet(), {event}};
       },
       grpc::StatusCode::OK, "REJECTION_CODE_INVALID_VALUE"},
      {"correction of a visit that is not in the log",
       [](GrpcBadInputTest& t) {
         v1::Event event = t.phone().Make(Household(kH1), kV1, [&](v1::Event& e) {
           v1::VisitCorrected* c = e.mutable_visit_corrected();
           c->set_original_event_id(RandomUuid());
           c->set_withdrawn(true);
           c->set_reason("entered twice");
         });
         return PushCall{&t.phone(), {event}};
       },
       grpc::StatusCode::OK, "REJECTION_CODE_UNKNOWN_REFERENCE"},
      {"an admin body, which only the server makes",
       [&](GrpcBadInputTest& t) {
         return visit(
             t, [](v1::Event& e) { e.mutable_unit_upserted()->mutable_unit()->set_id("U9"); });
       },
       grpc::StatusCode::OK, "REJECTION_CODE_PERMISSION_DENIED"},
      {"status confirmation by the wrong role: a conflict, the status stays",
       [](GrpcBadInputTest& t) {
         v1::Event proposal = t.phone().Propose(kH1, kV1, v1::HOUSEHOLD_STATUS_IDENTIFIED,
                                                v1::HOUSEHOLD_STATUS_NOT_EXITED);
         t.MustPush(t.phone(), {proposal});
         return PushCall{&t.phone(),
                         {t.phone().Confirm(
                             kH1, kV1, proposal.event_id(), v1::HOUSEHOLD_STATUS_IDENTIFIED,
                             v1::HOUSEHOLD_STATUS_NOT_EXITED, v1::REVIEW_STAGE_COUNTY_DECISION)}};
       },
       grpc::StatusCode::OK, "conflict",
       [](GrpcBadInputTest& t, const v1::PushResponse& response) {
         EXPECT_EQ(t.ReadHousehold(kH1).status(), v1::HOUSEHOLD_STATUS_IDENTIFIED);
         v1::ListConflictsRequest request;
         request.set_scope_prefix(kV1);
         request.set_open_only(true);
         v1::ListConflictsResponse conflicts;
         auto context = ServiceHarness::Context(t.county().token());
         ASSERT_TRUE(t.query().ListConflicts(context.get(), request, &conflicts).ok());
         const std::string& id = response.results(0).conflict_recorded().conflict_ids(0);
         bool found = false;
         for (const v1::Conflict& conflict : conflicts.conflicts()) {
           if (conflict.id() != id) continue;
           found = true;
           EXPECT_EQ(conflict.kind(), v1::CONFLICT_KIND_STATUS_WRONG_ROLE);
         }
         EXPECT_TRUE(found) << conflicts.DebugString();
       }},
      {"clock far ahead of the server: kept as evidence, not adopted",
       [&](GrpcBadInputTest& t) {
         return visit(t, [&t](v1::Event& e) {
           e.set_hlc(sync::HlcAt(t.harness().clock().Now() + absl::Hours(3)));
         });
       },
       grpc::StatusCode::OK, "accepted",
       [](GrpcBadInputTest& t, const v1::PushResponse& response) {
         v1::StoredEvent stored = t.harness().ReadLog().back();
         EXPECT_EQ(stored.offset(), response.results(0).accepted().offset());
         EXPECT_TRUE(stored.hlc_flagged());
         EXPECT_LT(stored.adopted_hlc(), stored.event().hlc());
         EXPECT_LE(stored.adopted_hlc(), sync::HlcAt(t.harness().clock().Now() + absl::Seconds(1)));
       }},
      {"photo not uploaded yet: accepted, marked pending",
       [&](GrpcBadInputTest& t) {
         return visit_body(t, [&](v1::VisitRecorded& v) { v.add_photo_sha256(missing_blob); });
       },
       grpc::StatusCode::OK, "accepted",
       [&](GrpcBadInputTest& t, const v1::PushResponse&) {
         EXPECT_EQ(t.Projections(absl::StrCat("sync/pend/b/", missing_blob)).size(), 1u);
       }},
  };
  ASSERT_GE(cases.size(), 25u);

  for (const PushCase& c : cases) {
    SCOPED_TRACE(c.name);
    for (TestDevice* device : {&phone(), &tablet(), &county()}) Resync(*device);
    PushCall call = c.prepare(*this);
    const uint64_t head = Head();
    const size_t logged = LoggedEvents();
    const auto all = Projections("");
    const auto domain = Projections("dom/");
    const size_t rejections = Projections("sync/rej/r/").size();

    v1::PushRequest request;
    for (const v1::Event& event : call.events) *request.add_events() = event;
    v1::PushResponse response;
    auto context = ServiceHarness::Context(call.token.value_or(call.as->token()));
    grpc::Status status = sync().Push(context.get(), request, &response);
    ASSERT_EQ(status.error_code(), c.code) << status.error_message();

    if (c.code != grpc::StatusCode::OK) {
      EXPECT_FALSE(status.error_message().empty());
      EXPECT_EQ(Head(), head);
      EXPECT_TRUE(Projections("") == all) << "a refused call wrote projections";
      continue;
    }
    ASSERT_EQ(response.results_size(), static_cast<int>(call.events.size()));
    const v1::PushResult& result = response.results(response.results_size() - 1);
    EXPECT_EQ(OutcomeOf(result), c.outcome) << result.ShortDebugString();
    if (result.has_rejected()) {
      EXPECT_FALSE(result.rejected().message().empty());
      EXPECT_EQ(LoggedEvents(), logged) << "a rejected event reached the log";
      EXPECT_TRUE(Projections("dom/") == domain) << "a rejected event changed domain state";
      EXPECT_LE(Head(), head + 1);  // At most its rejection marker.
      EXPECT_EQ(Projections("sync/rej/r/").size(), rejections + 1) << "no rejection record";
    } else {
      EXPECT_EQ(LoggedEvents(), logged + 1);
    }
    if (c.verify) c.verify(*this, response);
  }
}

// What a call of another RPC returns.
struct CallCase {
  std::string name;
  std::function<grpc::Status(GrpcBadInputTest&)> call;
  grpc::StatusCode code;
};

grpc::Status Upload(GrpcBadInputTest& t, const TestDevice& device,
                    const std::vector<v1::UploadBlobRequest>& messages,
                    v1::UploadBlobResponse* response = nullptr) {
  v1::UploadBlobResponse ignored;
  auto context = ServiceHarness::Context(device.token());
  auto writer = t.sync().UploadBlob(context.get(), response ? response : &ignored);
  for (const v1::UploadBlobRequest& message : messages) {
    if (!writer->Write(message)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

v1::UploadBlobRequest Header(const std::string& content, uint64_t total) {
  v1::UploadBlobRequest request;
  request.mutable_header()->set_sha256(storage::DigestBytes(storage::Sha256({content})));
  request.mutable_header()->set_total_size(total);
  request.mutable_header()->set_content_type("image/jpeg");
  return request;
}

v1::UploadBlobRequest Chunk(uint64_t offset, std::string data) {
  v1::UploadBlobRequest request;
  request.mutable_chunk()->set_offset(offset);
  request.mutable_chunk()->set_data(std::move(data));
  return request;
}

grpc::Status Subscribe(GrpcBadInputTest& t, const std::string& token,
                       v1::SubscribeRequest request) {
  auto context = ServiceHarness::Context(token);
  auto reader = t.stream().Subscribe(context.get(), request);
  v1::SubscribeResponse response;
  // A refused stream ends before its first message.
  EXPECT_FALSE(reader->Read(&response)) << response.ShortDebugString();
  return reader->Finish();
}

TEST_F(GrpcBadInputTest, OtherRpcsRefuseBadInputAndWriteNothing) {
  std::vector<CallCase> cases = {
      {"pull with a cursor this server never issued: RESET",
       [](GrpcBadInputTest& t) {
         v1::PullRequest request;
         request.mutable_cursor()->set_offset(3);
         request.mutable_cursor()->set_scope_digest(std::string(32, 'z'));
         request.mutable_cursor()->set_snapshot_token("garbage");
         v1::PullResponse response;
         grpc::Status status = t.Pull(t.phone().token(), request, &response);
         EXPECT_EQ(response.reset().reason(), v1::RESET_REASON_UNKNOWN_CURSOR);
         return status;
       },
       grpc::StatusCode::OK},
      {"list households with a bad page token",
       [](GrpcBadInputTest& t) {
         v1::ListHouseholdsRequest request;
         request.set_scope_prefix(kCountyA);
         request.set_page_token("%%% not base64 %%%");
         v1::ListHouseholdsResponse response;
         auto context = ServiceHarness::Context(t.county().token());
         return t.query().ListHouseholds(context.get(), request, &response);
       },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"list households with a malformed prefix",
       [](GrpcBadInputTest& t) {
         v1::ListHouseholdsRequest request;
         request.set_scope_prefix("62x");
         v1::ListHouseholdsResponse response;
         auto context = ServiceHarness::Context(t.county().token());
         return t.query().ListHouseholds(context.get(), request, &response);
       },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"list households of another county",
       [](GrpcBadInputTest& t) {
         v1::ListHouseholdsRequest request;
         request.set_scope_prefix("620103");
         v1::ListHouseholdsResponse response;
         auto context = ServiceHarness::Context(t.county().token());
         return t.query().ListHouseholds(context.get(), request, &response);
       },
       grpc::StatusCode::PERMISSION_DENIED},
      {"list households with an unknown status",
       [](GrpcBadInputTest& t) {
         v1::ListHouseholdsRequest request;
         request.set_scope_prefix(kCountyA);
         request.add_statuses(static_cast<v1::HouseholdStatus>(77));
         v1::ListHouseholdsResponse response;
         auto context = ServiceHarness::Context(t.county().token());
         return t.query().ListHouseholds(context.get(), request, &response);
       },
       grpc::StatusCode::INVALID_ARGUMENT},
      // As an out-of-scope one (no existence oracle, docs/authorization.md): county staff
      // cannot tell it from a household of another county.
      {"household nobody registered",
       [](GrpcBadInputTest& t) {
         v1::GetHouseholdRequest request;
         request.set_id("11111111-1111-4111-8111-0000000000ee");
         v1::GetHouseholdResponse response;
         auto context = ServiceHarness::Context(t.county().token());
         return t.query().GetHousehold(context.get(), request, &response);
       },
       grpc::StatusCode::PERMISSION_DENIED},
      {"household outside the cadre's links",
       [](GrpcBadInputTest& t) {
         v1::GetHouseholdRequest request;
         request.set_id(kH2);
         v1::GetHouseholdResponse response;
         auto context = ServiceHarness::Context(t.phone().token());
         return t.query().GetHousehold(context.get(), request, &response);
       },
       grpc::StatusCode::PERMISSION_DENIED},
      {"history without a subject",
       [](GrpcBadInputTest& t) {
         v1::GetHistoryRequest request;
         v1::GetHistoryResponse response;
         auto context = ServiceHarness::Context(t.county().token());
         return t.query().GetHistory(context.get(), request, &response);
       },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"conflicts of another county",
       [](GrpcBadInputTest& t) {
         v1::ListConflictsRequest request;
         request.set_scope_prefix("620103");
         v1::ListConflictsResponse response;
         auto context = ServiceHarness::Context(t.county().token());
         return t.query().ListConflicts(context.get(), request, &response);
       },
       grpc::StatusCode::PERMISSION_DENIED},
      {"rejections of a device that is not the caller's",
       [](GrpcBadInputTest& t) {
         v1::ListRejectionsRequest request;
         request.set_device_id(t.tablet().id());
         v1::ListRejectionsResponse response;
         auto context = ServiceHarness::Context(t.phone().token());
         return t.query().ListRejections(context.get(), request, &response);
       },
       grpc::StatusCode::PERMISSION_DENIED},
      {"blob upload without a header",
       [](GrpcBadInputTest& t) { return Upload(t, t.phone(), {Chunk(0, "abc")}); },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"blob header with a short sha256",
       [](GrpcBadInputTest& t) {
         v1::UploadBlobRequest header = Header("abc", 3);
         header.mutable_header()->set_sha256("short");
         return Upload(t, t.phone(), {header, Chunk(0, "abc")});
       },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"blob over limits.max_blob_bytes",
       [](GrpcBadInputTest& t) { return Upload(t, t.phone(), {Header("big", 2 << 20)}); },
       grpc::StatusCode::RESOURCE_EXHAUSTED},
      {"blob chunk over limits.max_message_bytes",
       [](GrpcBadInputTest& t) {
         std::string content(600 << 10, 'p');
         return Upload(t, t.phone(), {Header(content, content.size()), Chunk(0, content)});
       },
       grpc::StatusCode::RESOURCE_EXHAUSTED},
      {"blob chunk running past total_size",
       [](GrpcBadInputTest& t) {
         return Upload(t, t.phone(), {Header("abc", 3), Chunk(0, "abcd")});
       },
       grpc::StatusCode::INVALID_ARGUMENT},
      // A chunk at the wrong offset: blob_input_test.cc (it needs an event
      // naming the blob first, or the answer is the scope's
      // FAILED_PRECONDITION, not the offset's).
      {"blob no event in scope names",
       [](GrpcBadInputTest& t) {
         return Upload(t, t.phone(), {Header("abcdef", 6), Chunk(0, "abcdef")});
       },
       grpc::StatusCode::FAILED_PRECONDITION},
      {"blob status of a short sha256",
       [](GrpcBadInputTest& t) {
         v1::GetBlobStatusRequest request;
         request.set_sha256("short");
         v1::GetBlobStatusResponse response;
         auto context = ServiceHarness::Context(t.phone().token());
         return t.sync().GetBlobStatus(context.get(), request, &response);
       },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"subscribe to an unknown kind",
       [](GrpcBadInputTest& t) {
         v1::SubscribeRequest request;
         request.add_kinds(static_cast<v1::EventKind>(99));
         return Subscribe(t, t.hq_token(), request);
       },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"subscribe with a malformed prefix",
       [](GrpcBadInputTest& t) {
         v1::SubscribeRequest request;
         request.add_scope_prefixes("62-01");
         return Subscribe(t, t.hq_token(), request);
       },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"subscribe from past the log head",
       [](GrpcBadInputTest& t) {
         v1::SubscribeRequest request;
         request.set_from_offset(t.Head() + 10);
         return Subscribe(t, t.hq_token(), request);
       },
       grpc::StatusCode::OUT_OF_RANGE},
      {"subscribe as a cadre",
       [](GrpcBadInputTest& t) { return Subscribe(t, t.phone().token(), {}); },
       grpc::StatusCode::PERMISSION_DENIED},
  };
  for (const CallCase& c : cases) {
    SCOPED_TRACE(c.name);
    const uint64_t head = Head();
    const auto all = Projections("");
    grpc::Status status = c.call(*this);
    EXPECT_EQ(status.error_code(), c.code) << status.error_message();
    EXPECT_EQ(Head(), head);
    EXPECT_TRUE(Projections("") == all) << "a refused call wrote projections";
  }
  // No blob of the refused uploads was stored.
  for (const std::string& content : {std::string("abc"), std::string("abcdef")}) {
    auto blob = harness().store().GetBlobStatus(storage::DigestBytes(storage::Sha256({content})));
    ASSERT_TRUE(blob.ok());
    EXPECT_EQ(blob->received_bytes, 0u) << content;
    EXPECT_FALSE(blob->complete) << content;
  }
}

}  // namespace
}  // namespace fieldsync::testing
