// Links made by AdminService and links county staff push from a device are
// one thing (issue 7 item 8): whoever started a link, whoever ended it,
// ListLinks, EndLink, Pull and Push all see the same state, and a pushed
// LinkStarted must name an existing, enabled cadre (or unit).
//
// The world (tests/server/sync_world.h): cadre1 holds L-h1 (kH1) from
// StartLink; county() is county1's device (county staff of 620102, where kH1,
// kH2, kH3 live).
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

constexpr char kAdminLink[] = "6a0c7d2e-5b41-4f8e-9c3a-1d2e3f405162";
constexpr char kPushedLink[] = "9b1d8e3f-6c52-4a9f-8d4b-2e3f40516273";

class LinksAgreeTest : public SyncWorld {
 protected:
  v1::Date Today() { return server::DateOf(harness().clock().Now()); }

  // A LinkStarted county staff push: `holder` is a cadre (or a unit when
  // `unit`) linked to `target` (in kV1: household kH2 or the village).
  v1::Event PushedStart(const std::string& link_id, const std::string& holder,
                        const v1::SubjectRef& target, bool unit = false,
                        v1::LinkRole role = v1::LINK_ROLE_HOUSEHOLD_HELPER) {
    return county().Make(target, kV1, [&](v1::Event& e) {
      v1::LinkStarted* body = e.mutable_link_started();
      body->set_link_id(link_id);
      if (unit) {
        body->set_unit_id(holder);
      } else {
        body->set_cadre_id(holder);
      }
      body->set_role(role);
      *body->mutable_valid_from() = server::AddDays(Today(), -30);
    });
  }

  // A LinkEnded county staff push, ending the link yesterday (out of scope today).
  v1::Event PushedEnd(const std::string& link_id, const std::string& household) {
    return county().Make(Household(household), kV1, [&](v1::Event& e) {
      v1::LinkEnded* body = e.mutable_link_ended();
      body->set_link_id(link_id);
      *body->mutable_valid_to() = server::AddDays(Today(), -1);
      body->set_reason(v1::LINK_END_REASON_ENTERED_IN_ERROR);
    });
  }

  v1::PushResult PushOne(TestDevice& device, const v1::Event& event) {
    v1::PushResponse response;
    grpc::Status status = Push(device, {event}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (response.results_size() != 1) {
      ADD_FAILURE() << "results: " << response.ShortDebugString();
      return {};
    }
    return response.results(0);
  }

  // ListLinks as the admin; `cadre_id` or `target` narrow it when not empty.
  std::vector<v1::Link> ListLinks(const std::string& cadre_id, const std::string& household,
                                  bool active_only) {
    v1::ListLinksRequest request;
    if (!cadre_id.empty()) request.set_cadre_id(cadre_id);
    if (!household.empty()) *request.mutable_target() = Household(household);
    request.set_active_only(active_only);
    v1::ListLinksResponse response;
    auto context = ServiceHarness::Context(admin_token());
    grpc::Status status = admin().ListLinks(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.links().begin(), response.links().end()};
  }

  static std::set<std::string> Ids(const std::vector<v1::Link>& links) {
    std::set<std::string> ids;
    for (const v1::Link& link : links) ids.insert(link.id());
    return ids;
  }

  static std::set<std::string> Removed(const std::vector<v1::PullResponse>& pages) {
    std::set<std::string> ids;
    for (const v1::PullResponse& page : pages) {
      for (const v1::SubjectRef& ref : page.removed_from_scope()) ids.insert(ref.id());
    }
    return ids;
  }

  static std::set<std::string> SnapshotHouseholds(const std::vector<v1::PullResponse>& pages) {
    std::set<std::string> ids;
    for (const v1::PullResponse& page : pages) {
      for (const v1::Household& household : page.snapshot().households()) {
        ids.insert(household.id());
      }
    }
    return ids;
  }

  void AddUser(const std::string& id, v1::Role role, bool disabled) {
    v1::User user;
    user.set_id(id);
    user.set_name(id);
    user.set_role(role);
    if (role == v1::ROLE_CADRE) {
      user.set_rank(v1::CADRE_RANK_OTHER);
      user.set_unit_id("U1");
    }
    user.set_disabled(disabled);
    auto upserted = UpsertUser(*harness().channel(), admin_token(), user);
    ASSERT_TRUE(upserted.ok()) << upserted.status();
  }
};

TEST_F(LinksAgreeTest, APushedLinkEndedTakesAnAdminLinksHouseholdOutOfTheCadresScope) {
  ASSERT_TRUE(StartLink(kAdminLink, "cadre1", v1::SUBJECT_KIND_HOUSEHOLD, kH2,
                        v1::LINK_ROLE_HOUSEHOLD_HELPER)
                  .ok());
  std::vector<v1::PullResponse> first = PullAll(phone().token(), {});
  ASSERT_EQ(SnapshotHouseholds(first), (std::set<std::string>{kH1, kH2}));

  EXPECT_EQ(OutcomeOf(PushOne(county(), PushedEnd(kAdminLink, kH2))), "accepted");

  // The next pull takes kH2 away, and the cadre can no longer write it.
  std::vector<v1::PullResponse> after = PullAll(phone().token(), first.back().checkpoint());
  ASSERT_FALSE(after.empty());
  EXPECT_FALSE(after.front().has_reset());
  EXPECT_EQ(Removed(after), (std::set<std::string>{kH2}));
  EXPECT_EQ(OutcomeOf(PushOne(phone(), phone().Visit(kH2, kV1))), "REJECTION_CODE_OUT_OF_SCOPE");
  EXPECT_EQ(OutcomeOf(PushOne(phone(), phone().Visit(kH1, kV1))), "accepted");

  // AdminService sees the end too: not active, and EndLink says it ended.
  EXPECT_EQ(Ids(ListLinks("cadre1", "", true)), (std::set<std::string>{"L-h1"}));
  std::vector<v1::Link> all = ListLinks("", kH2, false);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].id(), kAdminLink);
  EXPECT_FALSE(all[0].active());
  EXPECT_EQ(all[0].end_reason(), v1::LINK_END_REASON_ENTERED_IN_ERROR);
  grpc::Status ended = EndLink(kAdminLink);
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << ended.error_message();
  EXPECT_TRUE(
      absl::StrContains(ended.error_message(), absl::StrCat("link ", kAdminLink, " already ended")))
      << ended.error_message();
}

TEST_F(LinksAgreeTest, APushedLinkStartedIsListedAndEndLinkEndsIt) {
  std::vector<v1::PullResponse> first = PullAll(phone().token(), {});
  ASSERT_EQ(SnapshotHouseholds(first), (std::set<std::string>{kH1}));

  EXPECT_EQ(OutcomeOf(PushOne(county(), PushedStart(kPushedLink, "cadre1", Household(kH2)))),
            "accepted");
  EXPECT_EQ(Ids(ListLinks("cadre1", "", true)), (std::set<std::string>{"L-h1", kPushedLink}));
  std::vector<v1::Link> by_target = ListLinks("", kH2, true);
  ASSERT_EQ(by_target.size(), 1u);
  EXPECT_EQ(by_target[0].id(), kPushedLink);
  EXPECT_EQ(by_target[0].cadre_id(), "cadre1");
  EXPECT_EQ(by_target[0].area_code(), kV1);
  EXPECT_TRUE(by_target[0].active());
  std::set<std::string> everything = Ids(ListLinks("", "", false));
  EXPECT_TRUE(everything.count(kPushedLink)) << everything.size() << " links listed";

  std::vector<v1::PullResponse> added = PullAll(phone().token(), first.back().checkpoint());
  EXPECT_EQ(SnapshotHouseholds(added), (std::set<std::string>{kH2}));
  EXPECT_EQ(OutcomeOf(PushOne(phone(), phone().Visit(kH2, kV1))), "accepted");

  // AdminService ends the pushed link like any other.
  grpc::Status ended = EndLink(kPushedLink);
  ASSERT_TRUE(ended.ok()) << ended.error_message();
  std::vector<v1::PullResponse> removed = PullAll(phone().token(), added.back().checkpoint());
  EXPECT_EQ(Removed(removed), (std::set<std::string>{kH2}));
  EXPECT_EQ(OutcomeOf(PushOne(phone(), phone().Visit(kH2, kV1))), "REJECTION_CODE_OUT_OF_SCOPE");
  EXPECT_EQ(Ids(ListLinks("cadre1", "", true)), (std::set<std::string>{"L-h1"}));

  // Ending it again is refused precisely, whichever side tries.
  ended = EndLink(kPushedLink);
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << ended.error_message();
  EXPECT_TRUE(absl::StrContains(ended.error_message(),
                                absl::StrCat("link ", kPushedLink, " already ended")))
      << ended.error_message();
  v1::PushResult again = PushOne(county(), PushedEnd(kPushedLink, kH2));
  EXPECT_EQ(OutcomeOf(again), "REJECTION_CODE_ALREADY_DECIDED");
  EXPECT_EQ(again.rejected().field(), "link_ended.link_id");
}

TEST_F(LinksAgreeTest, ADeviceEndsAndReplacesALinkAdminServiceMadeUnderAnAdminId) {
  AddUser("cadre2", v1::ROLE_CADRE, /*disabled=*/false);
  // L-h1 (the world's StartLink) has an admin id, not a UUID.
  v1::Event end = PushedEnd("L-h1", kH1);
  v1::Event start = PushedStart(kPushedLink, "cadre2", Household(kH1));
  start.mutable_link_started()->set_replaces_link_id("L-h1");
  start.mutable_link_started()->set_reason("cadre1 moved to another post");
  county().Sign(start);
  v1::PushResponse response;
  ASSERT_TRUE(Push(county(), {end, start}, &response).ok());
  ASSERT_EQ(response.results_size(), 2);
  EXPECT_EQ(OutcomeOf(response.results(0)), "accepted");
  EXPECT_EQ(OutcomeOf(response.results(1)), "accepted");

  std::vector<v1::Link> links = ListLinks("", kH1, false);
  ASSERT_EQ(links.size(), 2u);
  for (const v1::Link& link : links) {
    if (link.id() == "L-h1") {
      EXPECT_FALSE(link.active());
      EXPECT_EQ(link.replaced_by_link_id(), kPushedLink);
    } else {
      EXPECT_EQ(link.id(), kPushedLink);
      EXPECT_TRUE(link.active());
      EXPECT_EQ(link.replaces_link_id(), "L-h1");
    }
  }
  EXPECT_TRUE(ListLinks("cadre1", "", true).empty());
  EXPECT_EQ(OutcomeOf(PushOne(phone(), phone().Visit(kH1, kV1))), "REJECTION_CODE_OUT_OF_SCOPE");
}

TEST_F(LinksAgreeTest, AnAdminLinkEndedThroughEndLinkCannotBeEndedByAPushEither) {
  ASSERT_TRUE(StartLink(kAdminLink, "cadre1", v1::SUBJECT_KIND_HOUSEHOLD, kH2,
                        v1::LINK_ROLE_HOUSEHOLD_HELPER)
                  .ok());
  ASSERT_TRUE(EndLink(kAdminLink).ok());
  v1::PushResult pushed = PushOne(county(), PushedEnd(kAdminLink, kH2));
  EXPECT_EQ(OutcomeOf(pushed), "REJECTION_CODE_ALREADY_DECIDED");
  grpc::Status ended = EndLink(kAdminLink);
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << ended.error_message();
  EXPECT_TRUE(absl::StrContains(ended.error_message(), "already ended")) << ended.error_message();
}

TEST_F(LinksAgreeTest, APushedLinkStartedMustNameAnExistingEnabledCadreOrUnit) {
  AddUser("cadre-off", v1::ROLE_CADRE, /*disabled=*/true);
  v1::SubjectRef village;
  village.set_kind(v1::SUBJECT_KIND_VILLAGE);
  village.set_id(kV1);
  struct Case {
    std::string holder;
    bool unit;
    v1::LinkRole role;
    std::string code;
    std::string field;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"ghost", false, v1::LINK_ROLE_HOUSEHOLD_HELPER, "REJECTION_CODE_UNKNOWN_REFERENCE",
       "link_started.cadre_id", "no user 'ghost'"},
      {"town1", false, v1::LINK_ROLE_HOUSEHOLD_HELPER, "REJECTION_CODE_INVALID_VALUE",
       "link_started.cadre_id", "not a cadre"},
      {"cadre-off", false, v1::LINK_ROLE_HOUSEHOLD_HELPER, "REJECTION_CODE_INVALID_VALUE",
       "link_started.cadre_id", "disabled"},
      {"no-such-unit", true, v1::LINK_ROLE_VILLAGE_UNIT, "REJECTION_CODE_UNKNOWN_REFERENCE",
       "link_started.unit_id", "no unit 'no-such-unit'"},
      // The role rule (a household helper is a cadre) still holds.
      {"U1", true, v1::LINK_ROLE_HOUSEHOLD_HELPER, "REJECTION_CODE_INVALID_VALUE",
       "link_started.role", "does not fit the holder"},
  };
  int n = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.holder);
    std::string link_id = absl::StrCat("0c2e9f40-7d63-4bae-9e5c-3f40516273", 80 + n++);
    v1::PushResult result =
        PushOne(county(),
                PushedStart(link_id, c.holder, c.unit ? village : Household(kH2), c.unit, c.role));
    EXPECT_EQ(OutcomeOf(result), c.code) << result.ShortDebugString();
    EXPECT_EQ(result.rejected().field(), c.field);
    EXPECT_TRUE(absl::StrContains(result.rejected().message(), c.says))
        << result.rejected().message();
  }
  // None of them made a link.
  EXPECT_TRUE(ListLinks("", kH2, false).empty());
  EXPECT_EQ(Ids(ListLinks("", "", false)), (std::set<std::string>{"L-h1"}));
  // An existing, enabled cadre is accepted.
  EXPECT_EQ(OutcomeOf(PushOne(county(), PushedStart(kPushedLink, "cadre1", Household(kH2)))),
            "accepted");
}

TEST_F(LinksAgreeTest, ACadreDisabledAfterTheUpsertCannotBeLinkedByAPush) {
  AddUser("cadre2", v1::ROLE_CADRE, /*disabled=*/false);
  AddUser("cadre2", v1::ROLE_CADRE, /*disabled=*/true);
  v1::PushResult result = PushOne(county(), PushedStart(kPushedLink, "cadre2", Household(kH2)));
  EXPECT_EQ(OutcomeOf(result), "REJECTION_CODE_INVALID_VALUE");
  EXPECT_EQ(result.rejected().field(), "link_started.cadre_id");
}

}  // namespace
}  // namespace fieldsync::testing
