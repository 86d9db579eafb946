// The authorization table of docs/authorization.md, checked against a running
// server: for every RPC of every fieldsync.v1 service the server exposes
// (found through reflection and the service descriptors, so a new RPC without
// a row fails here), each role calls it in scope and, where the role's scope
// is not everything, out of scope. Allowed means any answer but
// PERMISSION_DENIED or UNAUTHENTICATED (bodies still to come answer
// UNIMPLEMENTED); denied means PERMISSION_DENIED. Users are made through
// AdminService, their tokens through IssueEnrollmentCode and Enroll.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/generic/generic_stub.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "fieldsync/v1/query_service.pb.h"
#include "gtest/gtest.h"
#include "server/auth.h"
#include "tests/server/service_harness.h"

namespace fieldsync {
namespace {

using ::fieldsync::testing::ServiceHarness;
namespace pb = ::google::protobuf;

// --- Calls by method path, whatever the method's streaming kind --------------------

struct CallResult {
  grpc::Status status;
  std::vector<std::string> responses;
};

// Writes `requests`, half-closes, reads every response, finishes. On the wire
// a unary or server-streaming call is exactly this, so one helper calls all.
CallResult CallByPath(const std::shared_ptr<grpc::Channel>& channel, const std::string& path,
                      const std::vector<std::string>& requests, const std::string& token) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  grpc::CompletionQueue cq;
  auto wait = [&cq] {
    void* tag;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    return ok;
  };
  CallResult result;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
      stub.PrepareCall(&context, path, &cq);
  call->StartCall(nullptr);
  if (wait()) {
    bool open = true;
    for (const std::string& request : requests) {
      grpc::Slice slice(request);
      grpc::ByteBuffer buffer(&slice, 1);
      call->Write(buffer, nullptr);
      if (!wait()) {
        open = false;
        break;
      }
    }
    if (open) {
      call->WritesDone(nullptr);
      wait();
    }
    while (true) {
      grpc::ByteBuffer buffer;
      call->Read(&buffer, nullptr);
      if (!wait()) break;
      std::vector<grpc::Slice> slices;
      EXPECT_TRUE(buffer.Dump(&slices).ok());
      std::string bytes;
      for (const grpc::Slice& s : slices) bytes.append(s.begin(), s.end());
      result.responses.push_back(std::move(bytes));
      // A live stream (StreamService.Subscribe) never ends by itself: its
      // first message shows the call was admitted.
      if (absl::EndsWith(path, "/Subscribe")) context.TryCancel();
    }
  }
  call->Finish(&result.status, nullptr);
  wait();
  return result;
}

// The services the server lists through reflection (grpc.reflection.v1alpha),
// decoded without its generated classes: ServerReflectionRequest.list_services
// is field 7; the response's list_services_response is field 6, holding
// repeated ServiceResponse (1) with name (1).
std::vector<std::string> ListServicesByReflection(const std::shared_ptr<grpc::Channel>& channel) {
  CallResult result =
      CallByPath(channel, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                 {std::string("\x3a\x00", 2)}, "");
  EXPECT_TRUE(result.status.ok()) << result.status.error_message();
  std::vector<std::string> names;
  for (const std::string& bytes : result.responses) {
    pb::UnknownFieldSet response;
    EXPECT_TRUE(response.ParseFromString(bytes));
    for (int i = 0; i < response.field_count(); ++i) {
      if (response.field(i).number() != 6) continue;
      pb::UnknownFieldSet list;
      EXPECT_TRUE(list.ParseFromString(response.field(i).length_delimited()));
      for (int j = 0; j < list.field_count(); ++j) {
        pb::UnknownFieldSet service;
        EXPECT_TRUE(service.ParseFromString(list.field(j).length_delimited()));
        for (int k = 0; k < service.field_count(); ++k) {
          if (service.field(k).number() == 1) {
            names.push_back(service.field(k).length_delimited());
          }
        }
      }
    }
  }
  return names;
}

// --- The documented table ------------------------------------------------------------

struct DocRow {
  std::string rpc;                        // "QueryService.GetHousehold"
  std::map<v1::Role, std::string> cells;  // "✓", "—" or "public"
  std::string scope;
};

std::map<std::string, DocRow> ReadDocumentedTable() {
  std::ifstream in(std::string(FIELDSYNC_SOURCE_DIR) + "/docs/authorization.md");
  EXPECT_TRUE(in.good()) << "docs/authorization.md is missing";
  std::map<std::string, DocRow> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (!absl::StartsWith(line, "| `")) continue;
    std::vector<std::string> cells = absl::StrSplit(line, '|');
    // "", rpc, 5 roles, scope, ""
    if (cells.size() != 9) continue;
    for (std::string& cell : cells) cell = std::string(absl::StripAsciiWhitespace(cell));
    DocRow row;
    row.rpc = std::string(absl::StripSuffix(absl::StripPrefix(cells[1], "`"), "`"));
    for (size_t i = 0; i < server::kTableRoles.size(); ++i) {
      row.cells[server::kTableRoles[i]] = cells[2 + i];
    }
    row.scope = cells[7];
    EXPECT_TRUE(rows.emplace(row.rpc, row).second) << row.rpc << " has two rows";
  }
  return rows;
}

std::string RoleName(v1::Role role) {
  return absl::AsciiStrToLower(std::string(absl::StripPrefix(v1::Role_Name(role), "ROLE_")));
}

// --- The world the calls are made in -------------------------------------------------

// Areas: county A 620102 with townships A1 620102001 (villages V1, V2) and A2
// 620102002 (village V3); county B 620103 with township B1 (village V4).
constexpr char kAreasCsv[] =
    "code,parent,level,name\n"
    "620000000000,,province,甘肃省\n"
    "620100000000,620000000000,city,兰州市\n"
    "620102000000,620100000000,county,城关区\n"
    "620103000000,620100000000,county,七里河区\n"
    "620102001000,620102000000,township,甲乡\n"
    "620102002000,620102000000,township,乙乡\n"
    "620103001000,620103000000,township,丙乡\n"
    "620102001001,620102001000,village,一村\n"
    "620102001002,620102001000,village,二村\n"
    "620102002001,620102002000,village,三村\n"
    "620103001001,620103001000,village,四村\n";

// What each role calls with: a prefix and a household in its scope, and
// (unless its scope is everything) out of it.
struct RoleWorld {
  std::string user_id;
  std::string in_prefix, out_prefix;
  std::string in_household, out_household;
};

class AuthorizationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("authz_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    v1::ServerConfig config;  // No rate limit in the way of ~200 calls.
    config.mutable_limits()->set_device_requests_per_second(100000);
    config.mutable_limits()->set_device_request_burst(100000);
    auto harness = ServiceHarness::Start(dir_.string(), config);
    ASSERT_TRUE(harness.ok()) << harness.status();
    harness_ = *std::move(harness);
    admin_token_ = harness_->admin_token();
    admin_ = v1::AdminService::NewStub(harness_->channel());
    BuildWorld();
  }

  void TearDown() override {
    harness_.reset();
    std::filesystem::remove_all(dir_);
  }

  template <typename Request, typename Response>
  void Admin(grpc::Status (v1::AdminService::Stub::*rpc)(grpc::ClientContext*, const Request&,
                                                         Response*),
             const Request& request, Response* response = nullptr) {
    Response ignored;
    auto context = ServiceHarness::Context(admin_token_);
    grpc::Status status =
        (admin_.get()->*rpc)(context.get(), request, response != nullptr ? response : &ignored);
    ASSERT_TRUE(status.ok()) << status.error_message() << " in " << request.ShortDebugString();
  }

  void BuildWorld() {
    v1::ImportAreasRequest areas;
    areas.set_csv(kAreasCsv);
    v1::ImportAreasResponse imported;
    Admin(&v1::AdminService::Stub::ImportAreas, areas, &imported);
    ASSERT_EQ(imported.errors_size(), 0) << imported.DebugString();
    for (auto [id, area] : {std::pair<const char*, const char*>{"U1", "620102001000"},
                            {"U2", "620102000000"},
                            {"UB", "620103000000"}}) {
      v1::UpsertUnitRequest unit;
      unit.mutable_unit()->set_id(id);
      unit.mutable_unit()->set_name(absl::StrCat("unit ", id));
      unit.mutable_unit()->set_area_code(area);
      Admin(&v1::AdminService::Stub::UpsertUnit, unit);
    }
    for (auto [id, village] : {std::pair<const char*, const char*>{"H1", "620102001001"},
                               {"H5", "620102001001"},
                               {"H2", "620102001002"},
                               {"H3", "620102002001"},
                               {"H4", "620103001001"}}) {
      absl::Status registered = harness_->RegisterHousehold(id, absl::StrCat("N-", id), village);
      ASSERT_TRUE(registered.ok()) << registered;
    }

    auto user = [&](const std::string& id, v1::Role role, std::vector<std::string> scope) {
      v1::User u;
      u.set_id(id);
      u.set_name(id);
      u.set_role(role);
      if (role == v1::ROLE_CADRE) {
        u.set_rank(v1::CADRE_RANK_OTHER);
        u.set_unit_id("U1");
      }
      for (const std::string& code : scope) u.add_scope_area_codes(code);
      auto upserted = testing::UpsertUser(*harness_->channel(), admin_token_, u);
      ASSERT_TRUE(upserted.ok()) << upserted.status();
      auto device = testing::EnrollDevice(*harness_->channel(), admin_token_, id);
      ASSERT_TRUE(device.ok()) << device.status();
      tokens_[role] = device->token;
    };
    user("cadre1", v1::ROLE_CADRE, {});
    user("town1", v1::ROLE_TOWNSHIP_STAFF, {"620102001"});
    user("county1", v1::ROLE_COUNTY_STAFF, {"620102"});
    user("hq1", v1::ROLE_HQ_ANALYST, {});
    user("admin1", v1::ROLE_ADMIN, {});

    auto link = [&](const std::string& id, const std::string& holder, bool cadre,
                    v1::SubjectKind kind, const std::string& target, v1::LinkRole role) {
      v1::StartLinkRequest request;
      request.set_link_id(id);
      if (cadre) {
        request.set_cadre_id(holder);
      } else {
        request.set_unit_id(holder);
      }
      request.mutable_target()->set_kind(kind);
      request.mutable_target()->set_id(target);
      request.set_role(role);
      Admin(&v1::AdminService::Stub::StartLink, request);
    };
    // The cadre: household H1 and the whole village V2 (not H5, in H1's village).
    link("L-h1", "cadre1", true, v1::SUBJECT_KIND_HOUSEHOLD, "H1", v1::LINK_ROLE_HOUSEHOLD_HELPER);
    link("L-v2", "cadre1", true, v1::SUBJECT_KIND_VILLAGE, "620102001002",
         v1::LINK_ROLE_VILLAGE_CADRE);
    // EndLink targets: one already ended in county A (allowed callers get
    // FAILED_PRECONDITION, nothing changes), one active in county B.
    link("end-in", "U1", false, v1::SUBJECT_KIND_VILLAGE, "620102002001",
         v1::LINK_ROLE_VILLAGE_UNIT);
    v1::EndLinkRequest end;
    end.set_link_id("end-in");
    end.set_reason(v1::LINK_END_REASON_ENTERED_IN_ERROR);
    Admin(&v1::AdminService::Stub::EndLink, end);
    link("end-out", "UB", false, v1::SUBJECT_KIND_VILLAGE, "620103001001",
         v1::LINK_ROLE_VILLAGE_UNIT);

    worlds_[v1::ROLE_CADRE] = {"cadre1", "620102001002", "620102001001", "H1", "H5"};
    worlds_[v1::ROLE_TOWNSHIP_STAFF] = {"town1", "620102001", "620102002", "H2", "H3"};
    worlds_[v1::ROLE_COUNTY_STAFF] = {"county1", "620102", "620103", "H3", "H4"};
    worlds_[v1::ROLE_HQ_ANALYST] = {"hq1", "620103", "", "H4", ""};
    worlds_[v1::ROLE_ADMIN] = {"admin1", "620103", "", "H4", ""};
  }

  // The request (text format) `role` calls `rpc` with, in scope or out of
  // scope; nullopt when there is no out-of-scope request for that role.
  std::optional<std::string> RequestFor(const std::string& rpc, v1::Role role, bool in_scope) {
    const RoleWorld& w = worlds_[role];
    const std::string& prefix = in_scope ? w.in_prefix : w.out_prefix;
    const std::string& household = in_scope ? w.in_household : w.out_household;
    if (!in_scope && prefix.empty()) return std::nullopt;  // Scope "all": nothing is outside.
    auto subst = [&](std::string text) {
      return absl::StrReplaceAll(text, {{"$PREFIX", prefix}, {"$HOUSEHOLD", household}});
    };
    static const std::map<std::string, std::string> kScoped = {
        {"StreamService.Subscribe", "scope_prefixes: '$PREFIX'"},
        {"QueryService.GetHousehold", "id: '$HOUSEHOLD'"},
        {"QueryService.ListHouseholds", "scope_prefix: '$PREFIX'"},
        {"QueryService.GetHistory", "subject { kind: SUBJECT_KIND_HOUSEHOLD id: '$HOUSEHOLD' }"},
        {"QueryService.ListConflicts", "scope_prefix: '$PREFIX' open_only: true"},
        {"QueryService.ListRejections", "scope_prefix: '$PREFIX'"},
        {"ReportService.GetAssessment", "scope_prefix: '$PREFIX' year: 2024"},
        {"ReportService.GetEvidenceReport", "scope_prefix: '$PREFIX' year: 2024"},
        {"AdminService.ListLinks", "scope_prefix: '$PREFIX'"},
    };
    if (auto it = kScoped.find(rpc); it != kScoped.end()) return subst(it->second);
    if (rpc == "AdminService.StartLink") {
      // County A's village V3 in scope, county B's V4 out of it.
      return absl::StrCat("unit_id: 'U2' role: LINK_ROLE_VILLAGE_UNIT target { kind: ",
                          "SUBJECT_KIND_VILLAGE id: '", in_scope ? "620102002001" : "620103001001",
                          "' }");
    }
    if (rpc == "AdminService.EndLink") {
      return absl::StrCat("link_id: '", in_scope ? "end-in" : "end-out",
                          "' reason: LINK_END_REASON_CADRE_LEFT");
    }
    // Role-only rows: the request names nothing; an empty one will do (an
    // allowed caller gets INVALID_ARGUMENT, OK or UNIMPLEMENTED).
    if (!in_scope) return std::nullopt;
    return "";
  }

  std::string Serialized(const pb::MethodDescriptor& method, const std::string& text) {
    const pb::Message* prototype =
        pb::MessageFactory::generated_factory()->GetPrototype(method.input_type());
    std::unique_ptr<pb::Message> message(prototype->New());
    EXPECT_TRUE(pb::TextFormat::ParseFromString(text, message.get()))
        << method.full_name() << ": " << text;
    return message->SerializeAsString();
  }

  // Every RPC of every fieldsync.v1 service the server exposes.
  std::vector<const pb::MethodDescriptor*> ServedMethods() {
    std::vector<const pb::MethodDescriptor*> methods;
    for (const std::string& name : ListServicesByReflection(harness_->channel())) {
      if (!absl::StartsWith(name, "fieldsync.")) continue;
      const pb::ServiceDescriptor* service =
          pb::DescriptorPool::generated_pool()->FindServiceByName(name);
      EXPECT_NE(service, nullptr) << name;
      if (service == nullptr) continue;
      for (int i = 0; i < service->method_count(); ++i) methods.push_back(service->method(i));
    }
    return methods;
  }

  static std::string RpcName(const pb::MethodDescriptor& method) {
    return absl::StrCat(method.service()->name(), ".", method.name());
  }
  static std::string Path(const pb::MethodDescriptor& method) {
    return absl::StrCat("/", method.service()->full_name(), "/", method.name());
  }

  std::filesystem::path dir_;
  std::unique_ptr<ServiceHarness> harness_;
  std::string admin_token_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  std::map<v1::Role, std::string> tokens_;
  std::map<v1::Role, RoleWorld> worlds_;
};

TEST_F(AuthorizationTest, EveryServedRpcHasExactlyOneDocumentedRow) {
  std::map<std::string, DocRow> doc = ReadDocumentedTable();
  std::vector<const pb::MethodDescriptor*> methods = ServedMethods();
  ASSERT_GE(methods.size(), 26u);
  std::set<std::string> served;
  for (const pb::MethodDescriptor* method : methods) {
    served.insert(RpcName(*method));
    EXPECT_TRUE(doc.count(RpcName(*method)))
        << RpcName(*method) << " has no row in docs/authorization.md";
  }
  for (const auto& [rpc, row] : doc) {
    EXPECT_TRUE(served.count(rpc))
        << "docs/authorization.md names " << rpc << ", which the server does not serve";
  }
}

TEST_F(AuthorizationTest, DocumentedTableIsThePolicyTable) {
  std::map<std::string, DocRow> doc = ReadDocumentedTable();
  for (const pb::MethodDescriptor* method : ServedMethods()) {
    auto it = doc.find(RpcName(*method));
    if (it == doc.end()) continue;  // Reported by the test above.
    const server::PolicyRow* row = server::FindPolicy(Path(*method));
    ASSERT_NE(row, nullptr) << Path(*method) << " has no policy row: denied to everyone";
    EXPECT_EQ(it->second.scope, server::ScopeRuleName(row->scope)) << RpcName(*method);
    for (v1::Role role : server::kTableRoles) {
      std::string want = row->scope == server::ScopeRule::kPublic ? "public"
                         : row->Allows(role)                      ? "✓"
                                                                  : "—";
      EXPECT_EQ(it->second.cells[role], want) << RpcName(*method) << " for " << RoleName(role);
    }
  }
}

TEST_F(AuthorizationTest, EveryRoleGetsWhatTheTableSaysForEveryRpc) {
  std::map<std::string, DocRow> doc = ReadDocumentedTable();
  int checked = 0;
  for (const pb::MethodDescriptor* method : ServedMethods()) {
    auto it = doc.find(RpcName(*method));
    if (it == doc.end()) continue;
    const DocRow& row = it->second;
    for (v1::Role role : server::kTableRoles) {
      const std::string& cell = row.cells.at(role);
      if (cell == "public") continue;  // Checked below without a token.
      for (bool in_scope : {true, false}) {
        std::optional<std::string> text = RequestFor(row.rpc, role, in_scope);
        if (!text.has_value()) continue;
        CallResult result = CallByPath(harness_->channel(), Path(*method),
                                       {Serialized(*method, *text)}, tokens_.at(role));
        grpc::StatusCode code = result.status.error_code();
        std::string where =
            absl::StrCat(row.rpc, " by ", RoleName(role), in_scope ? " in scope" : " out of scope",
                         " (request {", *text, "}): ", result.status.error_message());
        ++checked;
        if (cell == "✓" && in_scope) {
          EXPECT_NE(code, grpc::StatusCode::PERMISSION_DENIED) << where;
          EXPECT_NE(code, grpc::StatusCode::UNAUTHENTICATED) << where;
          EXPECT_NE(code, grpc::StatusCode::INTERNAL) << where;
          EXPECT_NE(code, grpc::StatusCode::UNKNOWN) << where;
        } else if (cell == "✓") {
          EXPECT_EQ(code, grpc::StatusCode::PERMISSION_DENIED) << where;
        } else {
          ASSERT_EQ(cell, "—") << row.rpc;
          EXPECT_EQ(code, grpc::StatusCode::PERMISSION_DENIED) << where;
        }
      }
    }
  }
  EXPECT_GT(checked, 26 * 5);
}

TEST_F(AuthorizationTest, EveryRpcButThePublicOnesNeedsAToken) {
  std::map<std::string, DocRow> doc = ReadDocumentedTable();
  for (const pb::MethodDescriptor* method : ServedMethods()) {
    auto it = doc.find(RpcName(*method));
    if (it == doc.end()) continue;
    bool public_rpc = it->second.cells.at(v1::ROLE_ADMIN) == "public";
    CallResult result = CallByPath(harness_->channel(), Path(*method), {""}, "");
    if (public_rpc) {
      // Enroll without a token is served (an empty request is invalid).
      EXPECT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << RpcName(*method) << ": " << result.status.error_message();
    } else {
      EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << RpcName(*method) << ": " << result.status.error_message();
    }
  }
}

TEST_F(AuthorizationTest, ARpcWithoutAPolicyRowIsDeniedToEveryone) {
  EXPECT_EQ(server::FindPolicy("/fieldsync.v1.AdminService/DropEverything"), nullptr);
  for (const server::PolicyRow& row : server::PolicyTable()) {
    EXPECT_TRUE(absl::StartsWith(row.method, "/fieldsync.v1.")) << row.method;
  }
}

TEST_F(AuthorizationTest, CadreScopeFollowsTheirLinks) {
  // Before: H1 is the cadre's, H5 is not.
  auto get = [&](const std::string& id) {
    v1::GetHouseholdRequest request;
    request.set_id(id);
    return CallByPath(harness_->channel(), "/fieldsync.v1.QueryService/GetHousehold",
                      {request.SerializeAsString()}, tokens_.at(v1::ROLE_CADRE))
        .status.error_code();
  };
  EXPECT_NE(get("H1"), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(get("H5"), grpc::StatusCode::PERMISSION_DENIED);
  // The link to H1 ends with a replacement: H1 leaves the cadre's scope at once.
  v1::User other;
  other.set_id("cadre2");
  other.set_name("cadre2");
  other.set_role(v1::ROLE_CADRE);
  other.set_rank(v1::CADRE_RANK_OTHER);
  other.set_unit_id("U1");
  ASSERT_TRUE(testing::UpsertUser(*harness_->channel(), admin_token_, other).ok());
  v1::EndLinkRequest end;
  end.set_link_id("L-h1");
  end.set_reason(v1::LINK_END_REASON_REPLACED);  // valid_to: today.
  end.mutable_replacement()->set_cadre_id("cadre2");
  end.mutable_replacement()->set_reason("cadre1 moved to another post");
  Admin(&v1::AdminService::Stub::EndLink, end);
  // A link holds through its last day...
  EXPECT_NE(get("H1"), grpc::StatusCode::PERMISSION_DENIED);
  // ...and not after it.
  harness_->clock().Advance(absl::Hours(24));
  EXPECT_EQ(get("H1"), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(get("H2"), grpc::StatusCode::PERMISSION_DENIED);  // Village V2 stays.

  // A link county staff pushed from a device (domain state only) counts too.
  testing::TestDevice phone([this] { return harness_->clock().Now(); });
  absl::Status enrolled = phone.Enroll(*harness_->channel(), admin_token_, "county1");
  ASSERT_TRUE(enrolled.ok()) << enrolled;
  v1::SubjectRef h5;
  h5.set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
  h5.set_id("H5");
  v1::PushRequest push;
  *push.add_events() =
      testsig::SealForPush(phone.Make(h5, "620102001001", [this](v1::Event& event) {
        v1::LinkStarted* body = event.mutable_link_started();
        body->set_link_id("7d1e4c9a-3b0f-4e52-9a61-2c8d5f0b7e14");
        body->set_cadre_id("cadre1");
        body->set_role(v1::LINK_ROLE_HOUSEHOLD_HELPER);
        *body->mutable_valid_from() = server::DateOf(harness_->clock().Now());
      }));
  v1::PushResponse pushed;
  auto context = testing::ServiceHarness::Context(phone.token());
  grpc::Status status =
      v1::SyncService::NewStub(harness_->channel())->Push(context.get(), push, &pushed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(pushed.results_size(), 1);
  ASSERT_TRUE(pushed.results(0).has_accepted()) << pushed.results(0).DebugString();
  EXPECT_NE(get("H5"), grpc::StatusCode::PERMISSION_DENIED);
}

}  // namespace
}  // namespace fieldsync
