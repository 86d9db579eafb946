// The household status state machine, table-driven: every (from, to) pair,
// every role, as a proposal, a county decision, a township audit and a stale
// transition, through the real engine and store.
#include "domain/status_machine.h"

#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/sync/sync_test_support.h"

namespace fieldsync::test {
namespace {

using S = v1::HouseholdStatus;
constexpr char kVillage[] = "620102001001";

// The statuses in enum order, and the expected kind of every transition,
// written out by hand from docs/domain.md (rows: from, columns: to):
//   S = a single step, K = skips a step (reachable in several), X = invalid.
const std::vector<S> kStatuses = {
    v1::HOUSEHOLD_STATUS_IDENTIFIED, v1::HOUSEHOLD_STATUS_NOT_EXITED,
    v1::HOUSEHOLD_STATUS_PRE_EXIT,   v1::HOUSEHOLD_STATUS_EXITED,
    v1::HOUSEHOLD_STATUS_RETURNED,   v1::HOUSEHOLD_STATUS_CANCELLED,
    v1::HOUSEHOLD_STATUS_MONITORED,  v1::HOUSEHOLD_STATUS_RISK_CLEARED};
const char* const kExpected[] = {
    //         ID NE PRE EX RET CAN MON RC
    /* ID  */ "XSKKKSKK",
    /* NE  */ "XXSKKSKK",
    /* PRE */ "XSXSKSKK",
    /* EX  */ "XKKXSSSK",
    /* RET */ "XSKKXSKK",
    /* CAN */ "XXXXXXXX",
    /* MON */ "XXXXXSXS",
    /* RC  */ "XXXXXSSX",
};

char Expected(size_t from, size_t to) { return kExpected[from][to]; }

const std::vector<v1::Role> kRoles = {v1::ROLE_CADRE, v1::ROLE_TOWNSHIP_STAFF,
                                      v1::ROLE_COUNTY_STAFF, v1::ROLE_HQ_ANALYST};

TEST(StatusMachineTest, ClassifiesEveryPairAsTheTableSays) {
  for (size_t f = 0; f < kStatuses.size(); ++f) {
    for (size_t t = 0; t < kStatuses.size(); ++t) {
      const domain::TransitionKind kind = domain::ClassifyTransition(kStatuses[f], kStatuses[t]);
      const char got = kind == domain::TransitionKind::kStep   ? 'S'
                       : kind == domain::TransitionKind::kSkip ? 'K'
                                                               : 'X';
      EXPECT_EQ(got, Expected(f, t)) << v1::HouseholdStatus_Name(kStatuses[f]) << " -> "
                                     << v1::HouseholdStatus_Name(kStatuses[t]);
    }
  }
  EXPECT_EQ(
      domain::ClassifyTransition(v1::HOUSEHOLD_STATUS_UNSPECIFIED, v1::HOUSEHOLD_STATUS_NOT_EXITED),
      domain::TransitionKind::kInvalid);
}

// What a status event became.
struct Observed {
  std::string
      outcome;  // "applied", "pending", "audited", "conflict:<kind>", "rejected:<code>", "accepted"
};

class StatusTableTest : public ::testing::Test {
 protected:
  StatusTableTest() : county_(env_.AddDevice("county-setup", "county-0", v1::ROLE_COUNTY_STAFF)) {
    for (v1::Role role : kRoles) {
      devices_[role] = &env_.AddDevice(absl::StrCat("dev-", v1::Role_Name(role)),
                                       absl::StrCat("user-", v1::Role_Name(role)), role);
    }
  }

  // Registers one household per entry of `froms` in that status; returns ids.
  std::vector<std::string> Households(const std::vector<S>& froms) {
    std::vector<std::string> ids;
    std::vector<v1::Event> events;
    for (S from : froms) {
      const std::string id = NewUuid();
      ids.push_back(id);
      const S initial =
          from == v1::HOUSEHOLD_STATUS_CANCELLED ? v1::HOUSEHOLD_STATUS_IDENTIFIED : from;
      events.push_back(county_.Make(HouseholdRef(id), kVillage, [&](v1::Event& e) {
        v1::HouseholdRegistered* r = e.mutable_household_registered();
        r->set_household_number(absl::StrCat("N", ++numbers_));
        r->set_head_name("戶主");
        r->set_head_id_number(IdNumber(numbers_));
        r->set_initial_status(initial);
        if (initial == v1::HOUSEHOLD_STATUS_MONITORED) {
          r->set_monitoring_type(v1::MONITORING_TYPE_MARGINAL);
        }
      }));
      if (from == v1::HOUSEHOLD_STATUS_CANCELLED) {
        events.push_back(county_.Confirm(id, kVillage, "", v1::HOUSEHOLD_STATUS_IDENTIFIED,
                                         v1::HOUSEHOLD_STATUS_CANCELLED,
                                         v1::REVIEW_STAGE_COUNTY_DECISION));
      }
    }
    absl::StatusOr<sync::PushOutcome> outcome = env_.Push(county_, events);
    EXPECT_TRUE(outcome.ok()) << outcome.status();
    for (const v1::PushResult& r : outcome->response.results()) {
      EXPECT_TRUE(r.has_accepted()) << r.DebugString();
    }
    return ids;
  }

  // Pushes `events` as `device` and describes what each became.
  std::vector<Observed> Observe(SimDevice& device, const std::vector<v1::Event>& events,
                                const std::vector<std::string>& households,
                                const std::vector<S>& before) {
    absl::StatusOr<sync::PushOutcome> outcome = env_.Push(device, events);
    EXPECT_TRUE(outcome.ok()) << outcome.status();
    std::vector<Observed> observed;
    for (size_t i = 0; i < events.size(); ++i) {
      const v1::PushResult& r = outcome->response.results(static_cast<int>(i));
      std::optional<v1::Household> h = ReadHousehold(env_.store(), households[i]);
      Observed o;
      if (r.has_rejected()) {
        o.outcome = absl::StrCat("rejected:", v1::RejectionCode_Name(r.rejected().code()));
      } else if (r.has_conflict_recorded()) {
        std::optional<v1::Conflict> c =
            ReadConflict(env_.store(), r.conflict_recorded().conflict_ids(0));
        o.outcome = absl::StrCat("conflict:", c ? v1::ConflictKind_Name(c->kind()) : "?");
        EXPECT_EQ(h->status(), before[i]) << "a conflict never changes the status";
        EXPECT_EQ(c->sides_size(), 2);
        EXPECT_EQ(c->sides(0).status().to_status(), before[i]) << "the standing side";
        EXPECT_EQ(c->sides(1).event_id(), events[i].event_id());
        EXPECT_TRUE(c->open());
      } else if (h->status() != before[i]) {
        o.outcome = "applied";
      } else if (std::find(h->pending_proposal_event_ids().begin(),
                           h->pending_proposal_event_ids().end(),
                           events[i].event_id()) != h->pending_proposal_event_ids().end()) {
        o.outcome = "pending";
      } else {
        o.outcome = "accepted";
      }
      observed.push_back(o);
    }
    return observed;
  }

  Env env_;
  SimDevice& county_;
  std::map<v1::Role, SimDevice*> devices_;
  int numbers_ = 0;
};

TEST_F(StatusTableTest, ProposalsFollowTheTableForEveryRole) {
  for (v1::Role role : kRoles) {
    std::vector<S> froms;
    std::vector<S> tos;
    for (size_t f = 0; f < kStatuses.size(); ++f) {
      for (size_t t = 0; t < kStatuses.size(); ++t) {
        froms.push_back(kStatuses[f]);
        tos.push_back(kStatuses[t]);
      }
    }
    const std::vector<std::string> ids = Households(froms);
    std::vector<v1::Event> events;
    for (size_t i = 0; i < ids.size(); ++i) {
      events.push_back(devices_[role]->Propose(ids[i], kVillage, froms[i], tos[i]));
    }
    const std::vector<Observed> got = Observe(*devices_[role], events, ids, froms);
    for (size_t i = 0; i < ids.size(); ++i) {
      const char kind = Expected(i / kStatuses.size(), i % kStatuses.size());
      std::string want;
      if (kind == 'X') {
        want = "rejected:REJECTION_CODE_INVALID_TRANSITION";
      } else if (!domain::MayPropose(role)) {
        want = "conflict:CONFLICT_KIND_STATUS_WRONG_ROLE";
      } else if (kind == 'K') {
        want = "conflict:CONFLICT_KIND_STATUS_SKIPPED_STEP";
      } else {
        want = "pending";
      }
      EXPECT_EQ(got[i].outcome, want)
          << v1::Role_Name(role) << " proposes " << v1::HouseholdStatus_Name(froms[i]) << " -> "
          << v1::HouseholdStatus_Name(tos[i]);
    }
  }
}

TEST_F(StatusTableTest, CountyDecisionsFollowTheTableForEveryRole) {
  for (v1::Role role : kRoles) {
    std::vector<S> froms;
    std::vector<S> tos;
    for (size_t f = 0; f < kStatuses.size(); ++f) {
      for (size_t t = 0; t < kStatuses.size(); ++t) {
        froms.push_back(kStatuses[f]);
        tos.push_back(kStatuses[t]);
      }
    }
    const std::vector<std::string> ids = Households(froms);
    std::vector<v1::Event> events;
    for (size_t i = 0; i < ids.size(); ++i) {
      events.push_back(devices_[role]->Confirm(ids[i], kVillage, "", froms[i], tos[i],
                                               v1::REVIEW_STAGE_COUNTY_DECISION));
    }
    const std::vector<Observed> got = Observe(*devices_[role], events, ids, froms);
    for (size_t i = 0; i < ids.size(); ++i) {
      const char kind = Expected(i / kStatuses.size(), i % kStatuses.size());
      std::string want;
      if (kind == 'X') {
        want = "rejected:REJECTION_CODE_INVALID_TRANSITION";
      } else if (role != v1::ROLE_COUNTY_STAFF) {
        want = "conflict:CONFLICT_KIND_STATUS_WRONG_ROLE";
      } else if (kind == 'K') {
        want = "conflict:CONFLICT_KIND_STATUS_SKIPPED_STEP";
      } else {
        want = "applied";
      }
      EXPECT_EQ(got[i].outcome, want)
          << v1::Role_Name(role) << " decides " << v1::HouseholdStatus_Name(froms[i]) << " -> "
          << v1::HouseholdStatus_Name(tos[i]);
      if (want == "applied") {
        std::optional<v1::Household> h = ReadHousehold(env_.store(), ids[i]);
        EXPECT_EQ(h->status(), tos[i]);
        EXPECT_EQ(h->status_version(), froms[i] == v1::HOUSEHOLD_STATUS_CANCELLED ? 3u : 2u);
        EXPECT_EQ(h->monitoring_type() != v1::MONITORING_TYPE_UNSPECIFIED,
                  tos[i] == v1::HOUSEHOLD_STATUS_MONITORED);
      }
    }
  }
}

TEST_F(StatusTableTest, TownshipAuditsOfEveryStepFollowTheRole) {
  std::vector<S> froms;
  std::vector<S> tos;
  for (size_t f = 0; f < kStatuses.size(); ++f) {
    for (size_t t = 0; t < kStatuses.size(); ++t) {
      if (Expected(f, t) != 'S') continue;
      froms.push_back(kStatuses[f]);
      tos.push_back(kStatuses[t]);
    }
  }
  SimDevice& cadre = *devices_[v1::ROLE_CADRE];
  for (v1::Role role : kRoles) {
    const std::vector<std::string> ids = Households(froms);
    std::vector<v1::Event> proposals;
    for (size_t i = 0; i < ids.size(); ++i) {
      proposals.push_back(cadre.Propose(ids[i], kVillage, froms[i], tos[i]));
    }
    ASSERT_OK(env_.Push(cadre, proposals).status());
    std::vector<v1::Event> audits;
    for (size_t i = 0; i < ids.size(); ++i) {
      audits.push_back(devices_[role]->Confirm(ids[i], kVillage, proposals[i].event_id(), froms[i],
                                               tos[i], v1::REVIEW_STAGE_TOWNSHIP_AUDIT));
    }
    const std::vector<Observed> got = Observe(*devices_[role], audits, ids, froms);
    for (size_t i = 0; i < ids.size(); ++i) {
      const bool may = role == v1::ROLE_TOWNSHIP_STAFF || role == v1::ROLE_COUNTY_STAFF;
      // An audit leaves the proposal pending for the county: "accepted".
      EXPECT_EQ(got[i].outcome, may ? "accepted" : "conflict:CONFLICT_KIND_STATUS_WRONG_ROLE")
          << v1::Role_Name(role) << " audits " << v1::HouseholdStatus_Name(froms[i]) << " -> "
          << v1::HouseholdStatus_Name(tos[i]);
      std::optional<v1::Household> h = ReadHousehold(env_.store(), ids[i]);
      EXPECT_EQ(h->pending_proposal_event_ids_size(), 1) << "the proposal stays pending";
    }
  }
}

TEST_F(StatusTableTest, AStaleFromIsAConflictWhateverTheRoleAndPair) {
  // For every valid pair, a transition written from a status the household
  // is not in becomes STALE_FROM, never an overwrite.
  std::vector<S> actual;
  std::vector<S> claimed_from;
  std::vector<S> tos;
  for (size_t f = 0; f < kStatuses.size(); ++f) {
    for (size_t t = 0; t < kStatuses.size(); ++t) {
      if (Expected(f, t) == 'X') continue;
      // The household is really in another status than the writer believes.
      const S really = kStatuses[f] == v1::HOUSEHOLD_STATUS_NOT_EXITED
                           ? v1::HOUSEHOLD_STATUS_PRE_EXIT
                           : v1::HOUSEHOLD_STATUS_NOT_EXITED;
      actual.push_back(really);
      claimed_from.push_back(kStatuses[f]);
      tos.push_back(kStatuses[t]);
    }
  }
  for (v1::Role role : kRoles) {
    const std::vector<std::string> ids = Households(actual);
    std::vector<v1::Event> events;
    for (size_t i = 0; i < ids.size(); ++i) {
      events.push_back(devices_[role]->Confirm(ids[i], kVillage, "", claimed_from[i], tos[i],
                                               v1::REVIEW_STAGE_COUNTY_DECISION));
    }
    const std::vector<Observed> got = Observe(*devices_[role], events, ids, actual);
    for (size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(got[i].outcome, "conflict:CONFLICT_KIND_STATUS_STALE_FROM")
          << v1::Role_Name(role) << " claims " << v1::HouseholdStatus_Name(claimed_from[i])
          << " -> " << v1::HouseholdStatus_Name(tos[i]);
    }
  }
}

TEST_F(StatusTableTest, ACadreProposesTheTownshipAuditsAndTheCountyDecides) {
  const std::string id = Households({v1::HOUSEHOLD_STATUS_NOT_EXITED})[0];
  SimDevice& cadre = *devices_[v1::ROLE_CADRE];
  SimDevice& township = *devices_[v1::ROLE_TOWNSHIP_STAFF];
  SimDevice& county = *devices_[v1::ROLE_COUNTY_STAFF];
  v1::Event proposal = cadre.Propose(id, kVillage, v1::HOUSEHOLD_STATUS_NOT_EXITED,
                                     v1::HOUSEHOLD_STATUS_PRE_EXIT, 1);
  ASSERT_OK(env_.Push(cadre, {proposal}).status());
  ASSERT_OK(
      env_.Push(township, {township.Confirm(
                              id, kVillage, proposal.event_id(), v1::HOUSEHOLD_STATUS_NOT_EXITED,
                              v1::HOUSEHOLD_STATUS_PRE_EXIT, v1::REVIEW_STAGE_TOWNSHIP_AUDIT)})
          .status());
  EXPECT_EQ(ReadHousehold(env_.store(), id)->status(), v1::HOUSEHOLD_STATUS_NOT_EXITED);
  v1::Event decision =
      county.Confirm(id, kVillage, proposal.event_id(), v1::HOUSEHOLD_STATUS_NOT_EXITED,
                     v1::HOUSEHOLD_STATUS_PRE_EXIT, v1::REVIEW_STAGE_COUNTY_DECISION,
                     v1::REVIEW_DECISION_APPROVE, 1);
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome outcome, env_.Push(county, {decision}));
  ASSERT_TRUE(outcome.response.results(0).has_accepted());
  std::optional<v1::Household> h = ReadHousehold(env_.store(), id);
  EXPECT_EQ(h->status(), v1::HOUSEHOLD_STATUS_PRE_EXIT);
  EXPECT_EQ(h->status_version(), 2u);
  EXPECT_EQ(h->pending_proposal_event_ids_size(), 0);

  // Deciding the same proposal again: already decided.
  ASSERT_OK_AND_ASSIGN(
      outcome,
      env_.Push(county,
                {county.Confirm(id, kVillage, proposal.event_id(), v1::HOUSEHOLD_STATUS_PRE_EXIT,
                                v1::HOUSEHOLD_STATUS_EXITED, v1::REVIEW_STAGE_COUNTY_DECISION)}));
  EXPECT_EQ(outcome.response.results(0).rejected().code(), v1::REJECTION_CODE_ALREADY_DECIDED);
}

TEST_F(StatusTableTest, ARejectingDecisionClosesTheProposalAndKeepsTheStatus) {
  const std::string id = Households({v1::HOUSEHOLD_STATUS_PRE_EXIT})[0];
  SimDevice& cadre = *devices_[v1::ROLE_CADRE];
  SimDevice& county = *devices_[v1::ROLE_COUNTY_STAFF];
  v1::Event proposal =
      cadre.Propose(id, kVillage, v1::HOUSEHOLD_STATUS_PRE_EXIT, v1::HOUSEHOLD_STATUS_EXITED);
  ASSERT_OK(env_.Push(cadre, {proposal}).status());
  ASSERT_OK(env_.Push(county, {county.Confirm(
                                  id, kVillage, proposal.event_id(), v1::HOUSEHOLD_STATUS_PRE_EXIT,
                                  v1::HOUSEHOLD_STATUS_EXITED, v1::REVIEW_STAGE_COUNTY_DECISION,
                                  v1::REVIEW_DECISION_REJECT)})
                .status());
  std::optional<v1::Household> h = ReadHousehold(env_.store(), id);
  EXPECT_EQ(h->status(), v1::HOUSEHOLD_STATUS_PRE_EXIT);
  EXPECT_EQ(h->pending_proposal_event_ids_size(), 0);
}

TEST_F(StatusTableTest, AStaleBaseVersionCatchesAnABACycle) {
  // NOT_EXITED -> PRE_EXIT -> NOT_EXITED: the status reads the same, but a
  // writer who saw version 1 is stale.
  const std::string id = Households({v1::HOUSEHOLD_STATUS_NOT_EXITED})[0];
  SimDevice& county = *devices_[v1::ROLE_COUNTY_STAFF];
  ASSERT_OK(
      env_.Push(county,
                {county.Confirm(id, kVillage, "", v1::HOUSEHOLD_STATUS_NOT_EXITED,
                                v1::HOUSEHOLD_STATUS_PRE_EXIT, v1::REVIEW_STAGE_COUNTY_DECISION),
                 county.Confirm(id, kVillage, "", v1::HOUSEHOLD_STATUS_PRE_EXIT,
                                v1::HOUSEHOLD_STATUS_NOT_EXITED, v1::REVIEW_STAGE_COUNTY_DECISION)})
          .status());
  ASSERT_EQ(ReadHousehold(env_.store(), id)->status_version(), 3u);
  SimDevice& cadre = *devices_[v1::ROLE_CADRE];
  ASSERT_OK_AND_ASSIGN(
      sync::PushOutcome outcome,
      env_.Push(cadre, {cadre.Propose(id, kVillage, v1::HOUSEHOLD_STATUS_NOT_EXITED,
                                      v1::HOUSEHOLD_STATUS_PRE_EXIT, 1)}));
  ASSERT_TRUE(outcome.response.results(0).has_conflict_recorded());
  EXPECT_EQ(
      ReadConflict(env_.store(), outcome.response.results(0).conflict_recorded().conflict_ids(0))
          ->kind(),
      v1::CONFLICT_KIND_STATUS_STALE_FROM);
}

TEST_F(StatusTableTest, TwoConcurrentDecisionsMakeOneConflictInEitherOrder) {
  SimDevice& county = *devices_[v1::ROLE_COUNTY_STAFF];
  SimDevice& other = env_.AddDevice("county-2", "county-2", v1::ROLE_COUNTY_STAFF);
  for (bool exit_first : {true, false}) {
    const std::string id = Households({v1::HOUSEHOLD_STATUS_PRE_EXIT})[0];
    // Both saw PRE_EXIT at status version 1.
    v1::Event exit =
        county.Confirm(id, kVillage, "", v1::HOUSEHOLD_STATUS_PRE_EXIT, v1::HOUSEHOLD_STATUS_EXITED,
                       v1::REVIEW_STAGE_COUNTY_DECISION, v1::REVIEW_DECISION_APPROVE, 1);
    v1::Event back = other.Confirm(
        id, kVillage, "", v1::HOUSEHOLD_STATUS_PRE_EXIT, v1::HOUSEHOLD_STATUS_NOT_EXITED,
        v1::REVIEW_STAGE_COUNTY_DECISION, v1::REVIEW_DECISION_APPROVE, 1);
    ASSERT_OK(exit_first ? env_.Push(county, {exit}).status() : env_.Push(other, {back}).status());
    ASSERT_OK_AND_ASSIGN(sync::PushOutcome second,
                         exit_first ? env_.Push(other, {back}) : env_.Push(county, {exit}));
    ASSERT_TRUE(second.response.results(0).has_conflict_recorded());
    const std::optional<v1::Household> h = ReadHousehold(env_.store(), id);
    ASSERT_EQ(h->open_conflict_ids_size(), 1) << "exactly one conflict";
    const v1::Conflict c = *ReadConflict(env_.store(), h->open_conflict_ids(0));
    EXPECT_EQ(c.kind(), v1::CONFLICT_KIND_STATUS_STALE_FROM);
    std::set<v1::HouseholdStatus> wanted = {c.sides(0).status().to_status(),
                                            c.sides(1).status().to_status()};
    EXPECT_EQ(wanted, (std::set<v1::HouseholdStatus>{v1::HOUSEHOLD_STATUS_EXITED,
                                                     v1::HOUSEHOLD_STATUS_NOT_EXITED}))
        << "both decisions are kept for the county to settle";
    EXPECT_EQ(h->status(),
              exit_first ? v1::HOUSEHOLD_STATUS_EXITED : v1::HOUSEHOLD_STATUS_NOT_EXITED);
  }
}

TEST_F(StatusTableTest, ACountyResolutionOfAStatusConflictSetsTheStatusAndClosesIt) {
  const std::string id = Households({v1::HOUSEHOLD_STATUS_NOT_EXITED})[0];
  SimDevice& cadre = *devices_[v1::ROLE_CADRE];
  SimDevice& township = *devices_[v1::ROLE_TOWNSHIP_STAFF];
  SimDevice& county = *devices_[v1::ROLE_COUNTY_STAFF];
  // A skipped step by a cadre: NOT_EXITED -> EXITED.
  ASSERT_OK_AND_ASSIGN(
      sync::PushOutcome outcome,
      env_.Push(cadre, {cadre.Propose(id, kVillage, v1::HOUSEHOLD_STATUS_NOT_EXITED,
                                      v1::HOUSEHOLD_STATUS_EXITED)}));
  const std::string conflict = outcome.response.results(0).conflict_recorded().conflict_ids(0);
  EXPECT_EQ(ReadHousehold(env_.store(), id)->open_conflict_ids_size(), 1);
  // Township staff may not settle a status conflict.
  ASSERT_OK_AND_ASSIGN(
      outcome, env_.Push(township, {township.Resolve(HouseholdRef(id), kVillage, conflict,
                                                     [](auto& r) { r.set_chosen_side(1); })}));
  EXPECT_EQ(outcome.response.results(0).rejected().code(), v1::REJECTION_CODE_PERMISSION_DENIED);
  ASSERT_OK_AND_ASSIGN(outcome,
                       env_.Push(county, {county.Resolve(HouseholdRef(id), kVillage, conflict,
                                                         [](auto& r) { r.set_chosen_side(1); })}));
  ASSERT_TRUE(outcome.response.results(0).has_accepted());
  std::optional<v1::Household> h = ReadHousehold(env_.store(), id);
  EXPECT_EQ(h->status(), v1::HOUSEHOLD_STATUS_EXITED);
  EXPECT_EQ(h->open_conflict_ids_size(), 0);
  EXPECT_FALSE(ReadConflict(env_.store(), conflict)->open());
  EXPECT_EQ(ReadConflict(env_.store(), conflict)->resolved_by(), county.user_id());
}

}  // namespace
}  // namespace fieldsync::test
