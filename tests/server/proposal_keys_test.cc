// Status proposals are keyed by their signing device and event id, end to end:
// event ids are unique per signing device only (docs/sync.md "Event ids"), so
// two devices may each propose on one household with the same event_id. Both
// proposals stay pending, and a decision that names the id decides the first
// pending one, in log order, that matches the decision (docs/sync.md "Merge",
// Status).
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

class ProposalKeysTest : public SyncWorld {
 public:
  v1::Household GetHousehold(const std::string& id) {
    v1::GetHouseholdRequest request;
    request.set_id(id);
    v1::GetHouseholdResponse response;
    auto context = ServiceHarness::Context(county().token());
    grpc::Status status = query().GetHousehold(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.household();
  }

  // One event pushed by `device`; the call must succeed (the event may be refused).
  v1::PushResponse PushOne(const TestDevice& device, const v1::Event& event) {
    v1::PushResponse response;
    grpc::Status status = Push(device, {event}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.results_size(), 1);
    return response;
  }

  static std::vector<std::string> Pending(const v1::Household& h) {
    return {h.pending_proposal_event_ids().begin(), h.pending_proposal_event_ids().end()};
  }

  // The county's decision on the proposal `proposal_id` of kH1.
  v1::Event Decide(const std::string& proposal_id, v1::HouseholdStatus from, v1::HouseholdStatus to,
                   v1::ReviewDecision decision) {
    v1::Event e =
        county().Confirm(kH1, kV1, proposal_id, from, to, v1::REVIEW_STAGE_COUNTY_DECISION);
    e.mutable_status_change_confirmed()->set_decision(decision);
    if (decision == v1::REVIEW_DECISION_REJECT) {
      e.mutable_status_change_confirmed()->set_note("證據不足");
    }
    county().Sign(e);
    return e;
  }

  // The phone proposes on kH1, then the tablet proposes with the same
  // event_id; both are accepted. Returns the shared id.
  std::string ProposeTwiceWithOneId(v1::HouseholdStatus phone_to, v1::HouseholdStatus tablet_to) {
    const v1::HouseholdStatus from = GetHousehold(kH1).status();
    v1::Event first = phone().Propose(kH1, kV1, from, phone_to);
    v1::Event second = tablet().Propose(kH1, kV1, from, tablet_to);
    second.set_event_id(first.event_id());
    tablet().Sign(second);
    v1::PushResponse a = MustPush(phone(), {first});
    v1::PushResponse b = MustPush(tablet(), {second});
    EXPECT_EQ(OutcomeOf(a.results(0)), "accepted") << a.ShortDebugString();
    EXPECT_EQ(OutcomeOf(b.results(0)), "accepted") << b.ShortDebugString();
    return first.event_id();
  }
};

TEST_F(ProposalKeysTest, TwoDevicesProposalsWithOneEventIdAreBothKeptAndEachDecidedByItsDecision) {
  ASSERT_EQ(GetHousehold(kH1).status(), v1::HOUSEHOLD_STATUS_IDENTIFIED);
  const std::string id =
      ProposeTwiceWithOneId(v1::HOUSEHOLD_STATUS_NOT_EXITED, v1::HOUSEHOLD_STATUS_CANCELLED);
  EXPECT_EQ(Pending(GetHousehold(kH1)), (std::vector<std::string>{id, id}));

  // The county turns down the tablet's proposal (the decision names its
  // to_status): the phone's stays pending.
  v1::PushResponse rejected =
      PushOne(county(), Decide(id, v1::HOUSEHOLD_STATUS_IDENTIFIED, v1::HOUSEHOLD_STATUS_CANCELLED,
                               v1::REVIEW_DECISION_REJECT));
  EXPECT_EQ(OutcomeOf(rejected.results(0)), "accepted") << rejected.ShortDebugString();
  v1::Household h = GetHousehold(kH1);
  EXPECT_EQ(h.status(), v1::HOUSEHOLD_STATUS_IDENTIFIED);
  EXPECT_EQ(Pending(h), (std::vector<std::string>{id})) << "the phone's proposal stays pending";

  // Then approves the phone's: it applies.
  v1::PushResponse approved =
      PushOne(county(), Decide(id, v1::HOUSEHOLD_STATUS_IDENTIFIED, v1::HOUSEHOLD_STATUS_NOT_EXITED,
                               v1::REVIEW_DECISION_APPROVE));
  EXPECT_EQ(OutcomeOf(approved.results(0)), "accepted") << approved.ShortDebugString();
  h = GetHousehold(kH1);
  EXPECT_EQ(h.status(), v1::HOUSEHOLD_STATUS_NOT_EXITED);
  EXPECT_TRUE(Pending(h).empty());

  // Both are decided now.
  v1::PushResponse again =
      PushOne(county(), Decide(id, v1::HOUSEHOLD_STATUS_NOT_EXITED, v1::HOUSEHOLD_STATUS_CANCELLED,
                               v1::REVIEW_DECISION_REJECT));
  EXPECT_EQ(OutcomeOf(again.results(0)), "REJECTION_CODE_ALREADY_DECIDED")
      << again.ShortDebugString();
}

// Identical proposals under one id: each decision takes the next pending one
// in log order, so two decisions decide both and a third finds none.
TEST_F(ProposalKeysTest, DecisionsOnIdenticalProposalsWithOneEventIdDecideThemInLogOrder) {
  const std::string id =
      ProposeTwiceWithOneId(v1::HOUSEHOLD_STATUS_NOT_EXITED, v1::HOUSEHOLD_STATUS_NOT_EXITED);
  for (int i = 0; i < 2; ++i) {
    v1::PushResponse r =
        PushOne(county(), Decide(id, v1::HOUSEHOLD_STATUS_IDENTIFIED,
                                 v1::HOUSEHOLD_STATUS_NOT_EXITED, v1::REVIEW_DECISION_REJECT));
    EXPECT_EQ(OutcomeOf(r.results(0)), "accepted") << i << ": " << r.ShortDebugString();
    EXPECT_EQ(Pending(GetHousehold(kH1)).size(), static_cast<size_t>(1 - i)) << i;
  }
  v1::PushResponse third =
      PushOne(county(), Decide(id, v1::HOUSEHOLD_STATUS_IDENTIFIED, v1::HOUSEHOLD_STATUS_NOT_EXITED,
                               v1::REVIEW_DECISION_REJECT));
  EXPECT_EQ(OutcomeOf(third.results(0)), "REJECTION_CODE_ALREADY_DECIDED")
      << third.ShortDebugString();
  EXPECT_EQ(GetHousehold(kH1).status(), v1::HOUSEHOLD_STATUS_IDENTIFIED);
}

}  // namespace
}  // namespace fieldsync::testing
