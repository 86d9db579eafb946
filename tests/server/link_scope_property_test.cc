// Property (issue 8): for any interleaving of AdminService link calls
// (StartLink, EndLink with or without a replacement, over gRPC) and
// LinkStarted / LinkEnded events county staff push from a device,
//   - the domain's link records (domain/links.h) equal a model of the calls,
//   - ListLinks lists exactly those links, with the same holder, target,
//     ended and active flags,
//   - EndLink and a pushed LinkEnded answer by the same state (an ended link
//     cannot be ended again, whoever started or ended it),
//   - and every cadre's scope, as Pull gives it (a first sync's snapshot,
//     and a client that follows its checkpoints: removed_from_scope and the
//     snapshots of added subjects), is the households their active links
//     reach (a household link, or a village link's households).
// Each world is one seed (~50): a fresh server (tests/server/sync_world.h)
// and a random sequence of ~18 steps, checked every few steps and at the end.
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "domain/links.h"
#include "gtest/gtest.h"
#include "sync/store_reader.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

constexpr int kWorlds = 50;
constexpr int kSteps = 18;

// What the test believes of one link.
struct ModelLink {
  std::string holder;
  v1::SubjectRef target;
  v1::LinkRole role = v1::LINK_ROLE_UNSPECIFIED;
  bool ended = false;
  int valid_to = 0;  // yyyymmdd, when ended.
};

// A cadre as a client: its token, its pull cursor and the households it holds
// from following its checkpoints.
struct Cadre {
  std::string id;
  std::string token;
  v1::Checkpoint cursor;
  std::set<std::string> households;
};

int Number(const v1::Date& date) { return date.year() * 10000 + date.month() * 100 + date.day(); }

class LinkScopePropertyTest : public SyncWorld, public ::testing::WithParamInterface<int> {
 protected:
  void SetUp() override {
    SyncWorld::SetUp();
    if (HasFatalFailure()) return;
    random_.seed(static_cast<uint32_t>(GetParam()) * 7919u + 17u);
    cadres_.push_back(Cadre{"cadre1", phone().token(), {}, {}});
    for (const std::string id : {"cadre2", "cadre3"}) {
      v1::User user;
      user.set_id(id);
      user.set_name(id);
      user.set_role(v1::ROLE_CADRE);
      user.set_rank(v1::CADRE_RANK_OTHER);
      user.set_unit_id("U1");
      ASSERT_TRUE(UpsertUser(*harness().channel(), admin_token(), user).ok());
      absl::StatusOr<EnrolledDevice> device =
          EnrollDevice(*harness().channel(), admin_token(), id);
      ASSERT_TRUE(device.ok()) << device.status();
      cadres_.push_back(Cadre{id, device->token, {}, {}});
    }
    // The world's own link: cadre1 holds L-h1 on kH1 from StartLink.
    ModelLink world;
    world.holder = "cadre1";
    world.target = Household(kH1);
    world.role = v1::LINK_ROLE_HOUSEHOLD_HELPER;
    links_["L-h1"] = world;
  }

  v1::Date Today() { return domain::DateOf(harness().clock().Now()); }
  v1::Date DaysFromToday(int days) { return server::AddDays(Today(), days); }

  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(random_); }
  bool Chance(int percent) { return static_cast<int>(Pick(100)) < percent; }

  // A target in county A: one of three households, or one of two villages.
  std::pair<v1::SubjectRef, v1::LinkRole> PickTarget() {
    static const char* const kTargets[] = {kH1, kH2, kH3, kV1, kV2};
    const std::string id = kTargets[Pick(5)];
    v1::SubjectRef ref;
    if (id.size() == 12) {
      ref.set_kind(v1::SUBJECT_KIND_VILLAGE);
      ref.set_id(id);
      return {ref, v1::LINK_ROLE_VILLAGE_CADRE};
    }
    return {Household(id), v1::LINK_ROLE_HOUSEHOLD_HELPER};
  }
  static std::string VillageOf(const v1::SubjectRef& target) {
    if (target.kind() == v1::SUBJECT_KIND_VILLAGE) return target.id();
    return target.id() == kH3 ? kV2 : kV1;
  }
  const std::string& PickCadre() { return cadres_[Pick(cadres_.size())].id; }
  // A link the model knows (ended ones too), or now and then one nobody made.
  std::string PickLink() {
    if (links_.empty() || Chance(8)) return RandomUuid();
    auto it = links_.begin();
    std::advance(it, static_cast<long>(Pick(links_.size())));
    return it->first;
  }
  // Ended today (still active today) or yesterday (out of scope at once).
  v1::Date PickValidTo() { return DaysFromToday(Chance(50) ? 0 : -1); }

  bool HasOpenLink(const std::string& holder, const v1::SubjectRef& target, v1::LinkRole role) {
    for (const auto& [id, link] : links_) {
      if (!link.ended && link.holder == holder && link.role == role &&
          link.target.kind() == target.kind() && link.target.id() == target.id()) {
        return true;
      }
    }
    return false;
  }

  v1::PushResult PushOne(const v1::Event& event) {
    v1::PushResponse response;
    grpc::Status status = Push(county(), {event}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (response.results_size() != 1) {
      ADD_FAILURE() << "results: " << response.ShortDebugString();
      return {};
    }
    return response.results(0);
  }

  // --- The four moves --------------------------------------------------------------

  void AdminStart() {
    const std::string holder = PickCadre();
    auto [target, role] = PickTarget();
    const std::string id = RandomUuid();
    log_.push_back(absl::StrCat("admin StartLink ", id, " ", holder, " -> ", target.id()));
    v1::StartLinkRequest request;
    request.set_link_id(id);
    request.set_cadre_id(holder);
    *request.mutable_target() = target;
    request.set_role(role);
    *request.mutable_valid_from() = DaysFromToday(-30);
    v1::StartLinkResponse response;
    auto context = ServiceHarness::Context(admin_token());
    grpc::Status status = admin().StartLink(context.get(), request, &response);
    if (HasOpenLink(holder, target, role)) {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS) << status.error_message();
      return;
    }
    ASSERT_TRUE(status.ok()) << status.error_message();
    links_[id] = ModelLink{holder, target, role, false, 0};
  }

  void AdminEnd() {
    const std::string id = PickLink();
    const v1::Date valid_to = PickValidTo();
    v1::EndLinkRequest request;
    request.set_link_id(id);
    *request.mutable_valid_to() = valid_to;
    auto known = links_.find(id);
    std::string replacement;
    if (known != links_.end() && Chance(30)) {
      replacement = PickCadre();
      if (replacement == known->second.holder) replacement.clear();
    }
    if (!replacement.empty()) {
      request.set_reason(v1::LINK_END_REASON_REPLACED);
      request.mutable_replacement()->set_cadre_id(replacement);
      request.mutable_replacement()->set_reason("調離");
      // From the old link's start, so that any later end date fits it.
      *request.mutable_replacement()->mutable_valid_from() = DaysFromToday(-30);
    } else {
      request.set_reason(v1::LINK_END_REASON_ENTERED_IN_ERROR);
    }
    log_.push_back(absl::StrCat("admin EndLink ", id, " valid_to ", Number(valid_to),
                                replacement.empty() ? "" : " replaced by ", replacement));
    v1::EndLinkResponse response;
    auto context = ServiceHarness::Context(admin_token());
    grpc::Status status = admin().EndLink(context.get(), request, &response);
    if (known == links_.end()) {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
      return;
    }
    if (known->second.ended) {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
          << status.error_message();
      EXPECT_NE(status.error_message().find("already ended"), std::string::npos)
          << status.error_message();
      return;
    }
    if (!replacement.empty() &&
        HasOpenLink(replacement, known->second.target, known->second.role)) {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS) << status.error_message();
      return;
    }
    ASSERT_TRUE(status.ok()) << status.error_message();
    known->second.ended = true;
    known->second.valid_to = Number(valid_to);
    if (!replacement.empty()) {
      ASSERT_TRUE(response.has_replacement());
      ModelLink next = known->second;
      next.holder = replacement;
      next.ended = false;
      next.valid_to = 0;
      links_[response.replacement().id()] = next;
    }
  }

  void PushedStart() {
    const std::string holder = PickCadre();
    auto [target, role] = PickTarget();
    const std::string id = RandomUuid();
    log_.push_back(absl::StrCat("pushed LinkStarted ", id, " ", holder, " -> ", target.id()));
    v1::Event event = county().Make(target, VillageOf(target), [&](v1::Event& e) {
      v1::LinkStarted* body = e.mutable_link_started();
      body->set_link_id(id);
      body->set_cadre_id(holder);
      body->set_role(role);
      *body->mutable_valid_from() = DaysFromToday(-30);
    });
    v1::PushResult result = PushOne(event);
    ASSERT_TRUE(result.has_accepted()) << result.ShortDebugString();
    links_[id] = ModelLink{holder, target, role, false, 0};
  }

  void PushedEnd() {
    const std::string id = PickLink();
    auto known = links_.find(id);
    // An unknown link is ended on some target; a known one on its own.
    const v1::SubjectRef target = known != links_.end() ? known->second.target : Household(kH2);
    const v1::Date valid_to = PickValidTo();
    log_.push_back(absl::StrCat("pushed LinkEnded ", id, " valid_to ", Number(valid_to)));
    v1::Event event = county().Make(target, VillageOf(target), [&](v1::Event& e) {
      v1::LinkEnded* body = e.mutable_link_ended();
      body->set_link_id(id);
      *body->mutable_valid_to() = valid_to;
      body->set_reason(v1::LINK_END_REASON_ENTERED_IN_ERROR);
    });
    v1::PushResult result = PushOne(event);
    if (known == links_.end()) {
      EXPECT_EQ(result.rejected().code(), v1::REJECTION_CODE_UNKNOWN_REFERENCE)
          << result.ShortDebugString();
      return;
    }
    if (known->second.ended) {
      EXPECT_EQ(result.rejected().code(), v1::REJECTION_CODE_ALREADY_DECIDED)
          << result.ShortDebugString();
      return;
    }
    ASSERT_TRUE(result.has_accepted()) << result.ShortDebugString();
    known->second.ended = true;
    known->second.valid_to = Number(valid_to);
  }

  // --- The checks ------------------------------------------------------------------

  bool Active(const ModelLink& link) { return !link.ended || link.valid_to >= Number(Today()); }

  // The households a cadre's active links reach, by the model.
  std::set<std::string> ExpectedHouseholds(const std::string& cadre) {
    std::set<std::string> households;
    for (const auto& [id, link] : links_) {
      if (link.holder != cadre || !Active(link)) continue;
      if (link.target.kind() == v1::SUBJECT_KIND_HOUSEHOLD) {
        households.insert(link.target.id());
      } else if (link.target.id() == kV1) {
        households.insert({kH1, kH2});
      } else if (link.target.id() == kV2) {
        households.insert(kH3);
      }
    }
    return households;
  }

  std::vector<v1::Link> ListAllLinks() {
    std::vector<v1::Link> links;
    std::string token;
    for (int page = 0; page < 100; ++page) {
      v1::ListLinksRequest request;
      request.set_page_token(token);
      v1::ListLinksResponse response;
      auto context = ServiceHarness::Context(admin_token());
      grpc::Status status = admin().ListLinks(context.get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      links.insert(links.end(), response.links().begin(), response.links().end());
      token = response.next_page_token();
      if (token.empty()) break;
    }
    return links;
  }

  void CheckAgreement() {
    SCOPED_TRACE(absl::StrCat("after:\n  ", absl::StrJoin(log_, "\n  ")));
    // The domain's records equal the model.
    sync::StoreProjectionReader reader(&harness().store());
    for (const auto& [id, model] : links_) {
      absl::StatusOr<std::optional<v1::Link>> link = domain::FindLink(reader, id);
      ASSERT_TRUE(link.ok()) << link.status();
      ASSERT_TRUE(link->has_value()) << "the domain has no link " << id;
      const v1::Link& stored = **link;
      EXPECT_EQ(stored.cadre_id(), model.holder) << id;
      EXPECT_EQ(stored.target().id(), model.target.id()) << id;
      EXPECT_EQ(stored.ended_offset() != 0, model.ended) << id;
      if (model.ended) {
        EXPECT_EQ(Number(stored.valid_to()), model.valid_to) << id;
      }
      EXPECT_EQ(domain::LinkActive(stored, Today()), Active(model)) << id;
    }
    // ListLinks lists exactly the domain's links, whoever made them.
    std::map<std::string, v1::Link> listed;
    for (v1::Link& link : ListAllLinks()) listed[link.id()] = std::move(link);
    EXPECT_EQ(listed.size(), links_.size());
    for (const auto& [id, model] : links_) {
      auto it = listed.find(id);
      if (it == listed.end()) {
        ADD_FAILURE() << "ListLinks misses " << id;
        continue;
      }
      EXPECT_EQ(it->second.cadre_id(), model.holder) << id;
      EXPECT_EQ(it->second.ended_offset() != 0, model.ended) << id;
      EXPECT_EQ(it->second.active(), Active(model)) << id;
    }
    // Every cadre's scope, as Pull gives it: a first sync, and a client that
    // follows its own checkpoints.
    for (Cadre& cadre : cadres_) {
      const std::set<std::string> expected = ExpectedHouseholds(cadre.id);
      std::set<std::string> first;
      for (const v1::PullResponse& page : PullAll(cadre.token, {})) {
        for (const v1::Household& household : page.snapshot().households()) {
          first.insert(household.id());
        }
      }
      EXPECT_EQ(first, expected) << cadre.id << "'s first sync";
      for (const v1::PullResponse& page : PullAll(cadre.token, cadre.cursor)) {
        if (page.has_reset()) cadre.households.clear();
        for (const v1::SubjectRef& removed : page.removed_from_scope()) {
          cadre.households.erase(removed.id());
        }
        for (const v1::Household& household : page.snapshot().households()) {
          cadre.households.insert(household.id());
        }
        cadre.cursor = page.checkpoint();
      }
      EXPECT_EQ(cadre.households, expected) << cadre.id << " following its checkpoints";
    }
  }

  std::mt19937 random_;
  std::map<std::string, ModelLink> links_;
  std::vector<Cadre> cadres_;
  std::vector<std::string> log_;
};

TEST_P(LinkScopePropertyTest, ListLinksEndLinkAndEveryScopeAgreeWithTheDomainsLinks) {
  CheckAgreement();
  for (int step = 0; step < kSteps && !HasFatalFailure(); ++step) {
    switch (Pick(4)) {
      case 0:
        AdminStart();
        break;
      case 1:
        AdminEnd();
        break;
      case 2:
        PushedStart();
        break;
      default:
        PushedEnd();
        break;
    }
    if (step % 4 == 3) CheckAgreement();
  }
  CheckAgreement();
  // A day later every link ended "today" is out of scope too.
  harness().clock().Advance(absl::Hours(24));
  log_.push_back("a day passes");
  CheckAgreement();
}

INSTANTIATE_TEST_SUITE_P(Worlds, LinkScopePropertyTest, ::testing::Range(1, kWorlds + 1),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return absl::StrCat("Seed", info.param);
                         });

}  // namespace
}  // namespace fieldsync::testing
