// Convergence: K simulated devices (real Ed25519 keys) make random offline
// edits to shared households in rounds (pull, edit offline, push); each run
// pushes the same edits in another random order, in random batches, with
// relays, retries, duplicate batches, overlapping batches, out-of-order
// attempts (sequence gaps) and restarts of the store in between. Then:
//   - every run ends in the same state (values, their writers and clocks,
//     statuses, members, plans, pending proposals, conflicts with their
//     sides and winners) — compared without offsets, version numbers and
//     conflict ids, which are arrival bookkeeping;
//   - the state equals an oracle computed from the edits alone: each
//     contended field has exactly one conflict holding each device's latest
//     write, and its value is the highest (HLC, device) write of the last
//     round that wrote it;
//   - every edit is in the log exactly once and nothing was rejected.
#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "domain/domain_keys.h"
#include "domain/queries.h"
#include "domain/status_machine.h"
#include "gtest/gtest.h"
#include "sync/event_codec.h"
#include "sync/hlc.h"
#include "tests/sync/sync_test_support.h"

namespace fieldsync::test {
namespace {

constexpr char kVillage[] = "620102001001";
constexpr int kDevices = 4;
constexpr int kHouseholds = 3;
constexpr int kMembers = 2;  // Per household, added in the setup.
constexpr int kRounds = 3;
constexpr int kOpsPerDeviceRound = 6;
const char* const kFields[] = {"phone", "housing_area", "notes"};
const char* const kMemberFields[] = {"education", "health"};

// --- The edits (fixed by the plan seed, the same in every run) ---------------

struct Op {
  enum Kind { kField, kMemberField, kPlan, kVisit, kPropose, kAddMember } kind = kVisit;
  int household = 0;
  int member = 0;
  std::string field;
  v1::FieldValue value;
  std::vector<std::string> items;
  int pick = 0;  // Which next status a proposal picks.
  std::string new_member_id;
  std::string event_id;
  uint64_t hlc = 0;
};

struct EditPlan {
  std::vector<std::string> households;
  std::vector<std::vector<std::string>> members;  // [household][k]
  // rounds[r][device] = the device's offline edits in round r, in order.
  std::vector<std::vector<std::vector<Op>>> rounds;
};

absl::Time RoundStart(int round) { return DefaultStart() + absl::Hours(1 + round); }

EditPlan MakePlan(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto uniform = [&rng](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  EditPlan plan;
  for (int h = 0; h < kHouseholds; ++h) {
    plan.households.push_back(NewUuid());
    plan.members.emplace_back();
    for (int m = 0; m < kMembers; ++m) plan.members.back().push_back(NewUuid());
  }
  for (int r = 0; r < kRounds; ++r) {
    plan.rounds.emplace_back(kDevices);
    const int64_t base_ms = absl::ToUnixMillis(RoundStart(r));
    for (int d = 0; d < kDevices; ++d) {
      for (int k = 0; k < kOpsPerDeviceRound; ++k) {
        Op op;
        op.household = uniform(kHouseholds);
        op.event_id = NewUuid();
        // Strictly increasing per device; ties across devices happen and are
        // broken by device id.
        op.hlc = sync::HlcOf(static_cast<uint64_t>(base_ms + 1000 * k + uniform(3) * 300),
                             static_cast<uint16_t>(uniform(2)));
        const int kind = uniform(100);
        if (kind < 40) {
          op.kind = Op::kField;
          op.field = kFields[uniform(3)];
          if (op.field == "housing_area") {
            op.value = Int(uniform(100000));
          } else {
            op.value = Str(absl::StrCat(op.field, "-d", d, "-r", r, "-", uniform(1000)));
          }
        } else if (kind < 55) {
          op.kind = Op::kMemberField;
          op.member = uniform(kMembers);
          op.field = kMemberFields[uniform(2)];
          op.value = Str(absl::StrCat("m", d, "-", uniform(1000)));
        } else if (kind < 67) {
          op.kind = Op::kPlan;
          const int n = 1 + uniform(3);
          for (int i = 0; i < n; ++i) op.items.push_back(absl::StrCat("item", uniform(6)));
          std::sort(op.items.begin(), op.items.end());
          op.items.erase(std::unique(op.items.begin(), op.items.end()), op.items.end());
        } else if (kind < 85) {
          op.kind = Op::kVisit;
        } else if (kind < 95) {
          op.kind = Op::kPropose;
          op.pick = uniform(4);
        } else {
          op.kind = Op::kAddMember;
          op.new_member_id = NewUuid();
        }
        plan.rounds[r][d].push_back(std::move(op));
      }
    }
  }
  return plan;
}

std::string DeviceId(int d) { return absl::StrCat("dev-", d); }
std::string PlanId(const std::string& household) { return absl::StrCat(household, "/2024"); }

// --- The oracle --------------------------------------------------------------

struct ExpectedField {
  std::optional<std::pair<uint64_t, std::string>> winner;  // (hlc, device) of the value
  std::string winner_event;
  bool conflict = false;
  std::map<std::string, std::string> sides;  // device → latest event
};

// Keyed by "<entity key>|<field>".
std::map<std::string, ExpectedField> Oracle(const EditPlan& plan) {
  std::map<std::string, ExpectedField> out;
  for (int r = 0; r < kRounds; ++r) {
    // Writers this round: key → device → (hlc, event) of each write.
    std::map<std::string, std::map<std::string, std::vector<std::pair<uint64_t, std::string>>>>
        writes;
    for (int d = 0; d < kDevices; ++d) {
      for (const Op& op : plan.rounds[r][d]) {
        const std::string& h = plan.households[op.household];
        std::string key;
        if (op.kind == Op::kField) key = absl::StrCat("household/", h, "|", op.field);
        if (op.kind == Op::kMemberField) {
          key = absl::StrCat("member/", plan.members[op.household][op.member], "|", op.field);
        }
        if (op.kind == Op::kPlan) key = absl::StrCat("plan/", PlanId(h), "|items");
        if (key.empty()) continue;
        writes[key][DeviceId(d)].push_back({op.hlc, op.event_id});
      }
    }
    for (auto& [key, by_device] : writes) {
      ExpectedField& f = out[key];
      std::optional<std::tuple<uint64_t, std::string, std::string>> best;
      for (auto& [device, list] : by_device) {
        for (auto& [hlc, event] : list) {
          auto candidate = std::make_tuple(hlc, device, event);
          if (!best || std::tie(hlc, device) > std::tie(std::get<0>(*best), std::get<1>(*best))) {
            best = candidate;
          }
        }
      }
      f.winner = std::make_pair(std::get<0>(*best), std::get<1>(*best));
      f.winner_event = std::get<2>(*best);
      if (f.conflict || by_device.size() >= 2) {
        f.conflict = true;
        for (auto& [device, list] : by_device) f.sides[device] = list.back().second;
      }
    }
  }
  return out;
}

// --- One run -----------------------------------------------------------------

struct RunResult {
  std::string fingerprint;
  std::map<std::string, uint64_t> offsets;  // event_id → offset (differs across runs)
};

class SimulatedRun {
 public:
  SimulatedRun(const EditPlan& plan, uint64_t schedule_seed) : plan_(plan), rng_(schedule_seed) {
    for (int d = 0; d < kDevices; ++d) {
      devices_.push_back(&env_.AddDevice(DeviceId(d), absl::StrCat("cadre-", d), v1::ROLE_CADRE));
    }
    tablet_ = &env_.AddDevice("tablet", "township-1", v1::ROLE_TOWNSHIP_STAFF);
    county_ = &env_.AddDevice("county", "county-1", v1::ROLE_COUNTY_STAFF);
    setup_ = &env_.AddDevice("setup", "cadre-setup", v1::ROLE_CADRE);
  }

  RunResult Execute() {
    Setup();
    for (int r = 0; r < kRounds; ++r) {
      env_.clock().Advance(RoundStart(r) + absl::Minutes(10) - env_.clock().Now());
      std::vector<std::vector<v1::Event>> events(kDevices);
      for (int d = 0; d < kDevices; ++d) events[d] = Materialize(r, d);
      PushShuffled(events);
      Decide();
    }
    CheckOracle();
    ResolveAll();
    RunResult result;
    result.fingerprint = Fingerprint();
    for (const auto& round : plan_.rounds) {
      for (size_t d = 0; d < round.size(); ++d) {
        for (const Op& op : round[d]) {
          // The store indexes engine events per signing device.
          absl::StatusOr<std::optional<uint64_t>> offset = env_.store().LookupEventId(
              sync::LogEventId(DeviceId(static_cast<int>(d)), op.event_id));
          EXPECT_TRUE(offset.ok() && offset->has_value()) << "edit " << op.event_id << " lost";
          if (!offset.ok() || !offset->has_value()) continue;
          result.offsets[op.event_id] = **offset;
          EXPECT_FALSE(sync::DecodeRecord(*env_.store().Read(**offset))->is_marker());
        }
      }
    }
    EXPECT_TRUE(env_.store().VerifyChain(1, env_.store().Head()).ok());
    return result;
  }

 private:
  int Uniform(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }
  bool Chance(int percent) { return Uniform(100) < percent; }

  void PushOk(SimDevice& pusher, const std::vector<v1::Event>& events) {
    absl::StatusOr<sync::PushOutcome> outcome = env_.Push(pusher, events);
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    for (const v1::PushResult& r : outcome->response.results()) {
      EXPECT_FALSE(r.has_rejected()) << r.DebugString();
    }
  }

  void Setup() {
    std::vector<v1::Event> events;
    for (int h = 0; h < kHouseholds; ++h) {
      const std::string& id = plan_.households[h];
      events.push_back(setup_->Register(id, kVillage, absl::StrCat("C", h)));
      for (const std::string& m : plan_.members[h]) {
        events.push_back(setup_->AddMember(id, kVillage, m, absl::StrCat("成員", m.substr(0, 4))));
      }
    }
    PushOk(*setup_, events);
  }

  // The device pulled at the start of the round: bases are the versions of
  // the state then; its offline chain keeps those bases (its own writes are
  // sequential by the own-device rule).
  std::vector<v1::Event> Materialize(int round, int d) {
    SimDevice& device = *devices_[d];
    std::vector<v1::Event> events;
    for (const Op& op : plan_.rounds[round][d]) {
      const std::string& h = plan_.households[op.household];
      const v1::Household household = *ReadHousehold(env_.store(), h);
      v1::Event e;
      switch (op.kind) {
        case Op::kField: {
          auto it = household.fields().find(op.field);
          e = device.SetField(h, kVillage, op.field, op.value,
                              it == household.fields().end() ? 0 : it->second.version());
          break;
        }
        case Op::kMemberField: {
          const std::string& m = plan_.members[op.household][op.member];
          auto member =
              ReadProjection<v1::Member>(env_.store(), domain::keys::Member("household/" + h, m));
          auto it = member->fields().find(op.field);
          e = device.UpdateMember(h, kVillage, m, op.field, op.value,
                                  it == member->fields().end() ? 0 : it->second.version());
          break;
        }
        case Op::kPlan: {
          auto p = ReadProjection<v1::Plan>(env_.store(),
                                            domain::keys::Plan("household/" + h, PlanId(h)));
          e = device.RevisePlan(h, kVillage, 2024, p ? p->version() : 0, op.items);
          break;
        }
        case Op::kVisit:
          e = device.Visit(HouseholdRef(h), kVillage);
          break;
        case Op::kPropose: {
          std::vector<v1::HouseholdStatus> next = domain::NextStatuses(household.status());
          next.erase(std::remove(next.begin(), next.end(), v1::HOUSEHOLD_STATUS_CANCELLED),
                     next.end());
          e = device.Propose(h, kVillage, household.status(),
                             next[static_cast<size_t>(op.pick) % next.size()],
                             household.status_version());
          break;
        }
        case Op::kAddMember:
          e = device.AddMember(h, kVillage, op.new_member_id, "新成員");
          break;
      }
      e.set_event_id(op.event_id);
      e.set_hlc(op.hlc);
      device.Sign(e);
      events.push_back(std::move(e));
    }
    return events;
  }

  void PushShuffled(const std::vector<std::vector<v1::Event>>& events) {
    // Each device's events in random batches.
    std::vector<std::vector<std::vector<v1::Event>>> batches(kDevices);
    for (int d = 0; d < kDevices; ++d) {
      size_t i = 0;
      while (i < events[d].size()) {
        const size_t n = std::min(events[d].size() - i, static_cast<size_t>(1 + Uniform(4)));
        batches[d].emplace_back(events[d].begin() + static_cast<long>(i),
                                events[d].begin() + static_cast<long>(i + n));
        i += n;
      }
    }
    std::vector<size_t> next(kDevices, 0);
    std::vector<std::vector<v1::Event>> pushed;
    while (true) {
      std::vector<int> ready;
      for (int d = 0; d < kDevices; ++d) {
        if (next[d] < batches[d].size()) ready.push_back(d);
      }
      if (ready.empty()) break;
      const int d = ready[static_cast<size_t>(Uniform(static_cast<int>(ready.size())))];
      SimDevice& pusher = Chance(20) ? *tablet_ : *devices_[d];
      if (Chance(15) && next[d] + 1 < batches[d].size()) {
        // Out of order: the batch after next leaves a gap.
        absl::StatusOr<sync::PushOutcome> gap = env_.Push(pusher, batches[d][next[d] + 1]);
        ASSERT_TRUE(gap.ok()) << gap.status();
        for (const v1::PushResult& result : gap->response.results()) {
          EXPECT_TRUE(result.has_held()) << result.ShortDebugString();
        }
      }
      std::vector<v1::Event> batch = batches[d][next[d]];
      if (Chance(15) && next[d] > 0) {
        // Overlapping: the last event of the previous batch again.
        batch.insert(batch.begin(), batches[d][next[d] - 1].back());
      }
      PushOk(pusher, batch);
      if (Chance(20)) PushOk(pusher, batch);  // A retry after a lost answer.
      pushed.push_back(batch);
      ++next[d];
      if (Chance(10)) {
        PushOk(*tablet_, pushed[static_cast<size_t>(Uniform(static_cast<int>(pushed.size())))]);
      }
      if (Chance(8)) env_.Reopen();
    }
  }

  // The county approves, per household, the fresh pending proposal (made
  // from the current status) with the lowest event id: the same choice in
  // every run. Older ones stay pending.
  void Decide() {
    std::vector<v1::Event> decisions;
    for (const std::string& h : plan_.households) {
      const v1::Household household = *ReadHousehold(env_.store(), h);
      std::vector<std::string> pending(household.pending_proposal_event_ids().begin(),
                                       household.pending_proposal_event_ids().end());
      std::sort(pending.begin(), pending.end());
      for (const std::string& id : pending) {
        // This test's event ids are fresh UUIDs: one signer per id.
        auto signers =
            ReadProjection<v1::StringList>(env_.store(), domain::keys::ProposalSigners(h, id));
        ASSERT_TRUE(signers.has_value() && signers->values_size() == 1);
        auto proposal = ReadProjection<v1::Event>(
            env_.store(), domain::keys::Proposal(h, signers->values(0), id));
        ASSERT_TRUE(proposal.has_value());
        const v1::StatusChangeProposed& p = proposal->status_change_proposed();
        if (p.from_status() != household.status() ||
            p.base_status_version() != household.status_version()) {
          continue;
        }
        decisions.push_back(county_->Confirm(
            h, kVillage, id, household.status(), p.to_status(), v1::REVIEW_STAGE_COUNTY_DECISION,
            v1::REVIEW_DECISION_APPROVE, household.status_version()));
        break;
      }
    }
    decisions_ += static_cast<int>(decisions.size());
    if (!decisions.empty()) PushOk(*county_, decisions);
  }

  std::vector<v1::Conflict> AllConflicts() {
    std::vector<v1::Conflict> out;
    for (const auto& [key, value] : AllProjections(env_.store())) {
      if (!key.starts_with("dom/conflict/")) continue;
      v1::Conflict c;
      EXPECT_TRUE(c.ParseFromString(value));
      out.push_back(std::move(c));
    }
    return out;
  }

  void CheckOracle() {
    const std::map<std::string, ExpectedField> oracle = Oracle(plan_);
    std::map<std::string, v1::Conflict> conflicts;
    for (v1::Conflict& c : AllConflicts()) {
      EXPECT_NE(c.kind(), v1::CONFLICT_KIND_STATUS_STALE_FROM);
      const std::string key = absl::StrCat(sync::SubjectKey(c.subject()), "|", c.field());
      EXPECT_FALSE(conflicts.contains(key)) << "two conflicts for " << key;
      conflicts[key] = std::move(c);
    }
    size_t expected_conflicts = 0;
    for (const auto& [key, want] : oracle) {
      auto it = conflicts.find(key);
      if (!want.conflict) {
        EXPECT_TRUE(it == conflicts.end()) << "no concurrent edit, yet a conflict on " << key;
        continue;
      }
      ++expected_conflicts;
      ASSERT_TRUE(it != conflicts.end()) << "a concurrent edit without a conflict on " << key;
      std::map<std::string, std::string> sides;
      for (const v1::ConflictSide& side : it->second.sides())
        sides[side.device_id()] = side.event_id();
      EXPECT_EQ(sides, want.sides) << key;
      EXPECT_EQ(it->second.sides(it->second.winner_side()).event_id(), want.winner_event) << key;
      EXPECT_TRUE(it->second.open());
    }
    EXPECT_EQ(conflicts.size(), expected_conflicts);
    std::map<int, int> by_kind;
    for (const auto& [key, c] : conflicts) ++by_kind[c.kind()];
    summary_ = absl::StrCat("conflicts: ", conflicts.size(), " (field ",
                            by_kind[v1::CONFLICT_KIND_FIELD_CONCURRENT], ", plan ",
                            by_kind[v1::CONFLICT_KIND_PLAN_CONCURRENT],
                            "), status decisions: ", decisions_, ", head: ", env_.store().Head());
    // Values: the highest (HLC, device) write of the last round that wrote it.
    for (const auto& [key, want] : oracle) {
      const std::string entity = key.substr(0, key.find('|'));
      const std::string field = key.substr(key.find('|') + 1);
      uint64_t hlc = 0;
      std::string device;
      if (entity.starts_with("household/")) {
        const v1::Household household = *ReadHousehold(env_.store(), entity.substr(10));
        const v1::VersionedValue& v = household.fields().at(field);
        hlc = v.hlc();
        device = v.device_id();
      } else if (entity.starts_with("member/")) {
        const std::string mid = entity.substr(7);
        for (int h = 0; h < kHouseholds; ++h) {
          for (const std::string& m : plan_.members[h]) {
            if (m != mid) continue;
            auto member = ReadProjection<v1::Member>(
                env_.store(), domain::keys::Member("household/" + plan_.households[h], m));
            hlc = member->fields().at(field).hlc();
            device = member->fields().at(field).device_id();
          }
        }
      } else {
        const std::string pid = entity.substr(5);
        const std::string h = pid.substr(0, pid.find('/'));
        auto p = ReadProjection<v1::Plan>(env_.store(), domain::keys::Plan("household/" + h, pid));
        hlc = p->hlc();
        device = "?";
        auto holder = ReadProjection<v1::ConflictSide>(env_.store(),
                                                       domain::keys::FieldHolder(entity, "items"));
        device = holder->device_id();
      }
      EXPECT_EQ(std::make_pair(hlc, device), *want.winner) << key;
    }
  }

  // A township officer resolves every open conflict, choosing the side with
  // the lowest event id (the same choice in every run).
  void ResolveAll() {
    std::vector<v1::Conflict> open = AllConflicts();
    // Conflict ids follow arrival; resolve in an order (and so with HLCs)
    // that is the same in every run.
    std::sort(open.begin(), open.end(), [](const v1::Conflict& a, const v1::Conflict& b) {
      return std::make_pair(sync::SubjectKey(a.subject()), a.field()) <
             std::make_pair(sync::SubjectKey(b.subject()), b.field());
    });
    std::vector<v1::Event> resolutions;
    for (const v1::Conflict& c : open) {
      if (!c.open()) continue;
      uint32_t chosen = 0;
      for (int i = 1; i < c.sides_size(); ++i) {
        if (c.sides(i).event_id() < c.sides(static_cast<int>(chosen)).event_id()) {
          chosen = static_cast<uint32_t>(i);
        }
      }
      resolutions.push_back(tablet_->Resolve(HouseholdRef(HouseholdOf(c)), kVillage, c.id(),
                                             [chosen](auto& r) { r.set_chosen_side(chosen); }));
    }
    if (!resolutions.empty()) PushOk(*tablet_, resolutions);
    for (const v1::Conflict& c : AllConflicts()) EXPECT_FALSE(c.open());
  }

  std::string HouseholdOf(const v1::Conflict& c) {
    if (c.subject().kind() == v1::SUBJECT_KIND_HOUSEHOLD) return c.subject().id();
    if (c.subject().kind() == v1::SUBJECT_KIND_PLAN) {
      return c.subject().id().substr(0, c.subject().id().find('/'));
    }
    for (int h = 0; h < kHouseholds; ++h) {
      for (const std::string& m : plan_.members[h]) {
        if (m == c.subject().id()) return plan_.households[h];
      }
    }
    return "";
  }

  static void Fields(std::ostringstream& out,
                     const google::protobuf::Map<std::string, v1::VersionedValue>& fields) {
    std::map<std::string, const v1::VersionedValue*> sorted;
    for (const auto& [name, value] : fields) sorted[name] = &value;
    for (const auto& [name, v] : sorted) {
      out << "  " << name << "=" << v->value().ShortDebugString() << " by " << v->device_id() << "/"
          << v->actor() << "@" << v->hlc() << "\n";
    }
  }

  // Everything but arrival bookkeeping (offsets, version numbers, conflict ids).
  std::string Fingerprint() {
    std::ostringstream out;
    for (const std::string& h : plan_.households) {
      const v1::Household household = *ReadHousehold(env_.store(), h);
      std::vector<std::string> members(household.member_ids().begin(),
                                       household.member_ids().end());
      std::vector<std::string> pending(household.pending_proposal_event_ids().begin(),
                                       household.pending_proposal_event_ids().end());
      std::sort(members.begin(), members.end());
      std::sort(pending.begin(), pending.end());
      out << "household " << h << " status " << household.status() << "/"
          << household.status_version() << " members " << absl::StrJoin(members, ",") << " pending "
          << absl::StrJoin(pending, ",") << " open_conflicts " << household.open_conflict_ids_size()
          << "\n";
      Fields(out, household.fields());
      for (const std::string& m : members) {
        auto member =
            ReadProjection<v1::Member>(env_.store(), domain::keys::Member("household/" + h, m));
        out << " member " << m << " removed " << member->removed() << "\n";
        Fields(out, member->fields());
      }
      auto plan =
          ReadProjection<v1::Plan>(env_.store(), domain::keys::Plan("household/" + h, PlanId(h)));
      if (plan) {
        v1::Plan normalized = *plan;
        normalized.clear_version();
        normalized.clear_first_offset();
        normalized.clear_last_offset();
        out << " plan " << normalized.ShortDebugString() << "\n";
      }
    }
    std::vector<std::string> conflicts;
    for (const v1::Conflict& c : AllConflicts()) {
      std::vector<std::string> sides;
      for (const v1::ConflictSide& s : c.sides()) {
        sides.push_back(absl::StrCat(s.event_id(), "/", s.device_id(), "@", s.hlc()));
      }
      std::sort(sides.begin(), sides.end());
      conflicts.push_back(absl::StrCat(
          sync::SubjectKey(c.subject()), "|", c.field(), " kind ", c.kind(), " open ", c.open(),
          " winner ", c.sides(c.winner_side()).event_id(), " sides ", absl::StrJoin(sides, ",")));
    }
    std::sort(conflicts.begin(), conflicts.end());
    for (const std::string& c : conflicts) out << "conflict " << c << "\n";
    return out.str();
  }

  const EditPlan& plan_;
  std::mt19937_64 rng_;
  Env env_;
  std::vector<SimDevice*> devices_;
  SimDevice* tablet_ = nullptr;
  SimDevice* county_ = nullptr;
  SimDevice* setup_ = nullptr;
  int decisions_ = 0;

 public:
  std::string summary_;
};

class ConvergenceTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(ConvergenceTest, EveryPushOrderEndsInTheSameStateAsTheOracle) {
  const EditPlan plan = MakePlan(GetParam());
  std::optional<RunResult> first;
  bool orders_differ = false;
  for (uint64_t schedule = 1; schedule <= 5; ++schedule) {
    SCOPED_TRACE(absl::StrCat("plan seed ", GetParam(), ", schedule seed ", schedule));
    SimulatedRun run(plan, GetParam() * 1000 + schedule);
    RunResult result = run.Execute();
    if (::testing::Test::HasFatalFailure()) return;
    if (!first) {
      std::printf("plan seed %llu: %s\n", static_cast<unsigned long long>(GetParam()),
                  run.summary_.c_str());
      first = std::move(result);
      continue;
    }
    EXPECT_EQ(result.fingerprint, first->fingerprint);
    if (result.offsets != first->offsets) orders_differ = true;
  }
  EXPECT_TRUE(orders_differ) << "the schedules should really reorder the log";
}

INSTANTIATE_TEST_SUITE_P(Seeds, ConvergenceTest, ::testing::Values(11, 22, 33));

}  // namespace
}  // namespace fieldsync::test
