// The domain's reference data and scope rule (domain/reference.h,
// domain/scope.h, domain/links.h CheckLinkHolder), through the real engine
// and store: one record per user, unit and area, folded from the server's
// admin events; the scope a user derives from role and links; the areas a
// snapshot carries for display.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "domain/domain_keys.h"
#include "domain/links.h"
#include "domain/reference.h"
#include "domain/scope.h"
#include "gtest/gtest.h"
#include "sync/commit_view.h"
#include "sync/event_codec.h"
#include "sync/store_reader.h"
#include "tests/sync/sync_test_support.h"

namespace fieldsync::test {
namespace {

constexpr char kCounty[] = "620102000000";
constexpr char kTownship[] = "620102001000";
constexpr char kVillage[] = "620102001001";
constexpr char kOtherVillage[] = "620102001002";

v1::Date Day(int year, int month, int day) {
  v1::Date date;
  date.set_year(year);
  date.set_month(month);
  date.set_day(day);
  return date;
}

class DomainScopeTest : public ::testing::Test {
 protected:
  DomainScopeTest()
      : county_(env_.AddDevice("dev-county", "county-1", v1::ROLE_COUNTY_STAFF)),
        reader_(&env_.store()),
        scopes_(&reader_, env_.clock().AsFunction()) {}

  // Appends a server-made event (an admin body) folded through the policy,
  // as the server's writer does.
  void AppendAdmin(v1::Event event) {
    sync::LoggedEvent stored;
    event.set_event_id(NewUuid());
    stored.parsed = std::move(event);
    stored.stored.set_event(stored.parsed.SerializeAsString());
    storage::AppendEntry entry = sync::ToAppendEntry(stored.stored, stored.parsed);
    const domain::ShuanglianPolicy* policy = &env_.policy();
    entry.prepare = [stored, policy](storage::CommitContext& ctx) -> absl::Status {
      sync::ContextView view(ctx);
      sync::EventMeta meta;
      meta.offset = ctx.offset();
      absl::StatusOr<sync::MergeResult> merged = policy->Merge(stored.event(), meta, view);
      if (!merged.ok()) return merged.status();
      if (merged->rejection) return absl::FailedPreconditionError(merged->rejection->message);
      ctx.payload() = sync::EncodePayload(stored.stored);
      return absl::OkStatus();
    };
    std::vector<storage::AppendEntry> entries;
    entries.push_back(std::move(entry));
    ASSERT_OK(env_.store().Append(std::move(entries)).status());
  }

  v1::User UpsertUser(const std::string& id, const std::string& name, v1::Role role,
                      std::vector<std::string> area_codes = {}, bool disabled = false) {
    v1::Event event;
    event.mutable_subject()->set_kind(v1::SUBJECT_KIND_USER);
    event.mutable_subject()->set_id(id);
    v1::User* user = event.mutable_user_upserted()->mutable_user();
    user->set_id(id);
    user->set_name(name);
    user->set_role(role);
    user->set_disabled(disabled);
    for (const std::string& code : area_codes) user->add_scope_area_codes(code);
    v1::User copy = *user;
    AppendAdmin(std::move(event));
    return copy;
  }

  void ImportAreas() {
    v1::Event event;
    event.mutable_subject()->set_kind(v1::SUBJECT_KIND_AREA);
    event.mutable_subject()->set_id(kCounty);
    event.set_area_code(kCounty);
    v1::AreaImported* body = event.mutable_area_imported();
    body->set_import_id("import-1");
    body->set_part(1);
    body->set_part_count(1);
    auto add = [&](const std::string& code, const std::string& parent, v1::AreaLevel level,
                   const std::string& name) {
      v1::Area* area = body->add_areas();
      area->set_code(code);
      area->set_parent_code(parent);
      area->set_level(level);
      area->set_name(name);
    };
    add(kCounty, "", v1::AREA_LEVEL_COUNTY, "城關區");
    add(kTownship, kCounty, v1::AREA_LEVEL_TOWNSHIP, "某鎮");
    add(kVillage, kTownship, v1::AREA_LEVEL_VILLAGE, "某村");
    add(kOtherVillage, kTownship, v1::AREA_LEVEL_VILLAGE, "另村");
    AppendAdmin(std::move(event));
  }

  v1::Event StartLink(const std::string& link_id, const std::string& cadre,
                      const v1::SubjectRef& target, v1::LinkRole role) {
    const std::string area = target.kind() == v1::SUBJECT_KIND_VILLAGE ? target.id() : kVillage;
    return county_.Make(target, area, [&](v1::Event& e) {
      v1::LinkStarted* l = e.mutable_link_started();
      l->set_link_id(link_id);
      l->set_cadre_id(cadre);
      l->set_role(role);
      *l->mutable_valid_from() = Day(2024, 1, 1);
    });
  }

  v1::Event EndLink(const std::string& link_id, const v1::SubjectRef& target,
                    const v1::Date& valid_to) {
    const std::string area = target.kind() == v1::SUBJECT_KIND_VILLAGE ? target.id() : kVillage;
    return county_.Make(target, area, [&](v1::Event& e) {
      v1::LinkEnded* l = e.mutable_link_ended();
      l->set_link_id(link_id);
      *l->mutable_valid_to() = valid_to;
      l->set_reason(v1::LINK_END_REASON_ENTERED_IN_ERROR);
    });
  }

  void MustAccept(const v1::Event& event) {
    absl::StatusOr<sync::PushOutcome> outcome = env_.Push(county_, {event});
    ASSERT_OK(outcome.status());
    ASSERT_TRUE(outcome->response.results(0).has_accepted())
        << outcome->response.results(0).ShortDebugString();
  }

  std::string NewHousehold(const std::string& number) {
    const std::string id = NewUuid();
    MustAccept(county_.Register(id, kVillage, number));
    return id;
  }

  Env env_;
  SimDevice& county_;
  sync::StoreProjectionReader reader_;
  domain::UserScopes scopes_;
};

TEST_F(DomainScopeTest, ACadresScopeIsTheTargetsOfTheirActiveLinksAndALinkedVillagesArea) {
  UpsertUser("cadre-1", "李四", v1::ROLE_CADRE);
  const std::string h = NewHousehold("R1");
  MustAccept(StartLink(NewUuid(), "cadre-1", HouseholdRef(h), v1::LINK_ROLE_HOUSEHOLD_HELPER));
  MustAccept(
      StartLink(NewUuid(), "cadre-1", VillageRef(kOtherVillage), v1::LINK_ROLE_VILLAGE_CADRE));

  ASSERT_OK_AND_ASSIGN(sync::Scope scope, scopes_.ScopeOfUser("cadre-1"));
  EXPECT_FALSE(scope.all);
  EXPECT_EQ(scope.area_prefixes, std::vector<std::string>{kOtherVillage});
  EXPECT_EQ(scope.subject_keys,
            (std::set<std::string>{"user/cadre-1", "cadre/cadre-1", absl::StrCat("household/", h),
                                   absl::StrCat("village/", kOtherVillage)}));
  EXPECT_TRUE(sync::Contains(scope, kVillage, absl::StrCat("household/", h)));
  EXPECT_FALSE(sync::Contains(scope, kVillage, "household/another"));
}

TEST_F(DomainScopeTest, AnEndedLinkLeavesTheScopeOnceItsValidToHasPassed) {
  UpsertUser("cadre-1", "李四", v1::ROLE_CADRE);
  const std::string h = NewHousehold("R1");
  const std::string link = NewUuid();
  MustAccept(StartLink(link, "cadre-1", HouseholdRef(h), v1::LINK_ROLE_HOUSEHOLD_HELPER));
  // Ends tomorrow (the clock is 2024-06-01 CST): still active today.
  MustAccept(EndLink(link, HouseholdRef(h), Day(2024, 6, 2)));
  ASSERT_OK_AND_ASSIGN(sync::Scope scope, scopes_.ScopeOfUser("cadre-1"));
  EXPECT_TRUE(scope.subject_keys.contains(absl::StrCat("household/", h)));

  env_.clock().Advance(absl::Hours(48));
  ASSERT_OK_AND_ASSIGN(scope, scopes_.ScopeOfUser("cadre-1"));
  EXPECT_FALSE(scope.subject_keys.contains(absl::StrCat("household/", h)));
  EXPECT_EQ(scope.subject_keys, (std::set<std::string>{"user/cadre-1", "cadre/cadre-1"}));
}

TEST_F(DomainScopeTest, StaffSeeTheirAreaCodesHqEverythingAndADisabledOrUnknownUserNothing) {
  v1::User staff = UpsertUser("town-1", "王五", v1::ROLE_TOWNSHIP_STAFF, {"620102001"});
  ASSERT_OK_AND_ASSIGN(sync::Scope scope, scopes_.ScopeOf(staff));
  EXPECT_EQ(scope.area_prefixes, std::vector<std::string>{"620102001"});
  EXPECT_TRUE(sync::CoversArea(scope, kVillage));

  UpsertUser("hq-1", "趙六", v1::ROLE_HQ_ANALYST);
  ASSERT_OK_AND_ASSIGN(scope, scopes_.ScopeOfUser("hq-1"));
  EXPECT_TRUE(scope.all);

  UpsertUser("hq-1", "趙六", v1::ROLE_HQ_ANALYST, {}, /*disabled=*/true);
  ASSERT_OK_AND_ASSIGN(scope, scopes_.ScopeOfUser("hq-1"));
  EXPECT_FALSE(scope.all);
  EXPECT_TRUE(scope.subject_keys.empty());
  EXPECT_TRUE(scope.area_prefixes.empty());

  ASSERT_OK_AND_ASSIGN(scope, scopes_.ScopeOfUser("nobody"));
  EXPECT_FALSE(scope.all);
  EXPECT_TRUE(scope.subject_keys.empty());
}

TEST_F(DomainScopeTest, AUserIsStoredOnceAndARenameMovesItInTheNameOrder) {
  UpsertUser("cadre-1", "Alpha", v1::ROLE_CADRE);
  UpsertUser("cadre-1", "Zulu", v1::ROLE_CADRE);
  ASSERT_OK_AND_ASSIGN(std::optional<v1::User> user, domain::FindUser(reader_, "cadre-1"));
  ASSERT_TRUE(user.has_value());
  EXPECT_EQ(user->name(), "Zulu");
  std::map<std::string, std::string> all = AllProjections(env_.store());
  std::vector<std::string> names;
  for (const auto& [key, value] : all) {
    if (key.starts_with(domain::keys::kUserNamePrefix)) names.push_back(key);
    EXPECT_FALSE(key.starts_with("dir/")) << "a server copy: " << key;
  }
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(names[0], domain::keys::UserName("Zulu", "cadre-1"));
  EXPECT_EQ(domain::IdOfNameEntry(names[0]), "cadre-1");
}

TEST_F(DomainScopeTest, ImportedAreasAreTheDomainsRecordAndASnapshotCarriesAHouseholdsAreaChain) {
  ImportAreas();
  ASSERT_OK_AND_ASSIGN(std::optional<v1::Area> village, domain::FindArea(reader_, kVillage));
  ASSERT_TRUE(village.has_value());
  EXPECT_EQ(village->name(), "某村");
  const std::string h = NewHousehold("R1");

  v1::Snapshot snapshot;
  ASSERT_OK(env_.policy().AppendSnapshot(reader_, HouseholdRef(h), &snapshot));
  ASSERT_EQ(snapshot.households_size(), 1);
  std::vector<std::string> codes;
  for (const v1::Area& area : snapshot.areas()) codes.push_back(area.code());
  EXPECT_EQ(codes, (std::vector<std::string>{kVillage, kTownship, kCounty}));

  // A village with no state of its own still names itself for display.
  v1::Snapshot other;
  ASSERT_OK(env_.policy().AppendSnapshot(reader_, VillageRef(kOtherVillage), &other));
  ASSERT_GE(other.areas_size(), 1);
  EXPECT_EQ(other.areas(0).name(), "另村");
}

TEST_F(DomainScopeTest, APulledSnapshotCarriesEachAreaOncePerPage) {
  ImportAreas();
  NewHousehold("R1");
  NewHousehold("R2");
  sync::Scope scope;
  scope.area_prefixes.push_back(kVillage);
  v1::PullRequest request;
  ASSERT_OK_AND_ASSIGN(v1::PullResponse response, env_.engine().Pull(scope, request));
  EXPECT_EQ(response.snapshot().households_size(), 2);
  std::vector<std::string> codes;
  for (const v1::Area& area : response.snapshot().areas()) codes.push_back(area.code());
  EXPECT_EQ(codes, (std::vector<std::string>{kVillage, kTownship, kCounty}));
}

TEST(LinkHolderRuleTest, AHolderMustBeAnExistingEnabledCadreOrUnit) {
  v1::User cadre;
  cadre.set_id("c1");
  cadre.set_role(v1::ROLE_CADRE);
  EXPECT_TRUE(domain::CheckLinkHolder(true, "c1", cadre, std::nullopt).ok());
  EXPECT_EQ(domain::CheckLinkHolder(true, "c1", std::nullopt, std::nullopt).problem,
            domain::HolderProblem::kUnknown);
  v1::User staff = cadre;
  staff.set_role(v1::ROLE_COUNTY_STAFF);
  domain::HolderCheck not_cadre = domain::CheckLinkHolder(true, "c1", staff, std::nullopt);
  EXPECT_EQ(not_cadre.problem, domain::HolderProblem::kNotCadre);
  EXPECT_EQ(not_cadre.message, "user c1 is not a cadre (role ROLE_COUNTY_STAFF)");
  cadre.set_disabled(true);
  EXPECT_EQ(domain::CheckLinkHolder(true, "c1", cadre, std::nullopt).problem,
            domain::HolderProblem::kDisabled);

  v1::Unit unit;
  unit.set_id("u1");
  EXPECT_TRUE(domain::CheckLinkHolder(false, "u1", std::nullopt, unit).ok());
  EXPECT_EQ(domain::CheckLinkHolder(false, "u1", std::nullopt, std::nullopt).message,
            "no unit 'u1'");
  unit.set_disabled(true);
  EXPECT_EQ(domain::CheckLinkHolder(false, "u1", std::nullopt, unit).problem,
            domain::HolderProblem::kDisabled);
}

TEST(AreaCodeRuleTest, ThePolicyNotTheEngineSaysWhatAnAreaCodeAndASubjectKindAre) {
  domain::ShuanglianPolicy policy;
  EXPECT_FALSE(policy.CheckAreaCode(kVillage).has_value());
  EXPECT_EQ(policy.CheckAreaCode("620102").value_or(""),
            "area_code must be a 12-digit admin-area code");
  EXPECT_TRUE(policy.CheckAreaCode("62010200100x").has_value());
  EXPECT_TRUE(policy.IsEventSubjectKind(v1::SUBJECT_KIND_HOUSEHOLD));
  EXPECT_FALSE(policy.IsEventSubjectKind(v1::SUBJECT_KIND_MEMBER));
  EXPECT_FALSE(policy.IsEventSubjectKind(v1::SUBJECT_KIND_PLAN));
}

}  // namespace
}  // namespace fieldsync::test
