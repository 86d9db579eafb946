// Issue 9 point 4: a client rebuilds the server's state from Pull alone, without merge logic:
// entities from the snapshot, then each pulled event's WriteOutcomes (the value from the
// event's body, or from the outcome itself for a ConflictResolved) and the Conflict records
// that travel with the events (PullResponse.conflicts). Two phones write the same fields
// concurrently, staff resolve the conflicts (by a side and by a value), and the replica
// equals the server's household and its open conflicts after every step.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "google/protobuf/util/message_differencer.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

using google::protobuf::util::MessageDifferencer;

// A client's copy of one household and the open conflicts in its scope, fed only by Pull.
class Replica {
 public:
  explicit Replica(std::string household_id) : id_(std::move(household_id)) {}

  void Apply(const v1::PullResponse& page) {
    if (page.has_reset()) {
      fields_.clear();
      conflicts_.clear();
    }
    for (const v1::Household& h : page.snapshot().households()) {
      if (h.id() != id_) continue;
      fields_.clear();
      for (const auto& [name, value] : h.fields()) fields_[name] = {value.value(), value.version()};
      last_offset_ = h.last_offset();
    }
    for (const v1::Conflict& c : page.snapshot().conflicts()) conflicts_[c.id()] = c;
    for (const sync::LoggedEvent& stored : testsig::Decoded(page.events())) ApplyEvent(stored);
    // Upsert by id; a closed one leaves the open list.
    for (const v1::Conflict& c : page.conflicts()) {
      if (c.open()) {
        conflicts_[c.id()] = c;
      } else {
        conflicts_.erase(c.id());
      }
    }
  }

  struct Value {
    v1::FieldValue value;
    uint64_t version = 0;
  };
  const std::map<std::string, Value>& fields() const { return fields_; }
  const std::map<std::string, v1::Conflict>& conflicts() const { return conflicts_; }
  // Writes whose value the replica could not find (neither in the body nor in the outcome).
  const std::vector<std::string>& unknown() const { return unknown_; }

 private:
  void ApplyEvent(const sync::LoggedEvent& stored) {
    // The snapshot already reflects events up to the entity's last offset.
    if (stored.offset() <= last_offset_) return;
    for (const v1::WriteOutcome& write : stored.writes()) {
      if (write.entity().kind() != v1::SUBJECT_KIND_HOUSEHOLD || write.entity().id() != id_) {
        continue;
      }
      if (write.field() == "status") continue;
      if (write.result() != v1::WRITE_RESULT_APPLIED && write.result() != v1::WRITE_RESULT_WON) {
        continue;
      }
      std::optional<v1::FieldValue> value = ValueOf(stored.event(), write);
      if (!value) {
        unknown_.push_back(absl::StrCat(write.field(), " at ", stored.offset()));
        continue;
      }
      fields_[write.field()] = {*value, write.version()};
    }
  }

  // The value a write set: the outcome's own, else the body's patch of that field.
  static std::optional<v1::FieldValue> ValueOf(const v1::Event& event,
                                               const v1::WriteOutcome& write) {
    if (write.has_field_value()) return write.field_value();
    if (event.has_household_fields_set()) {
      for (const v1::FieldPatch& patch : event.household_fields_set().patches()) {
        if (patch.field() == write.field()) return patch.value();
      }
    }
    return std::nullopt;
  }

  std::string id_;
  std::map<std::string, Value> fields_;
  std::map<std::string, v1::Conflict> conflicts_;
  std::vector<std::string> unknown_;
  uint64_t last_offset_ = 0;
};

class PullReplayTest : public SyncWorld {
 protected:
  // Pulls as county staff from `cursor_` until nothing more, `max_events` a page, into the
  // replica.
  void PullInto(Replica& replica, uint32_t max_events) {
    for (int i = 0; i < 1000; ++i) {
      v1::PullRequest request;
      *request.mutable_cursor() = cursor_;
      request.set_max_events(max_events);
      v1::PullResponse page;
      grpc::Status status = Pull(county().token(), request, &page);
      ASSERT_TRUE(status.ok()) << status.error_message();
      replica.Apply(page);
      cursor_ = page.checkpoint();
      if (!page.more()) return;
    }
    FAIL() << "pull did not end";
  }

  // The replica equals the server: every household field (value and version) and the set
  // of open conflicts with their sides.
  void ExpectReplicaEqualsServer(const Replica& replica, const std::string& when) {
    SCOPED_TRACE(when);
    EXPECT_TRUE(replica.unknown().empty())
        << "writes whose value Pull did not carry: " << replica.unknown().front();
    v1::GetHouseholdRequest get;
    get.set_id(kH1);
    v1::GetHouseholdResponse state;
    auto context = ServiceHarness::Context(county().token());
    ASSERT_TRUE(query().GetHousehold(context.get(), get, &state).ok());
    std::set<std::string> names;
    for (const auto& [name, value] : state.household().fields()) {
      names.insert(name);
      auto it = replica.fields().find(name);
      if (it == replica.fields().end()) {
        ADD_FAILURE() << "the replica lacks field " << name;
        continue;
      }
      EXPECT_TRUE(MessageDifferencer::Equals(it->second.value, value.value()))
          << name << ": replica " << it->second.value.ShortDebugString() << ", server "
          << value.value().ShortDebugString();
      EXPECT_EQ(it->second.version, value.version()) << name;
    }
    for (const auto& [name, value] : replica.fields()) {
      EXPECT_TRUE(names.contains(name)) << "the replica has a field the server lacks: " << name;
    }
    v1::ListConflictsRequest list;
    list.set_scope_prefix(kCountyA);
    list.set_open_only(true);
    v1::ListConflictsResponse open;
    auto list_context = ServiceHarness::Context(county().token());
    ASSERT_TRUE(query().ListConflicts(list_context.get(), list, &open).ok());
    ASSERT_EQ(open.conflicts_size(), static_cast<int>(replica.conflicts().size()));
    for (const v1::Conflict& c : open.conflicts()) {
      auto it = replica.conflicts().find(c.id());
      ASSERT_NE(it, replica.conflicts().end()) << "the replica lacks open conflict " << c.id();
      EXPECT_EQ(it->second.sides_size(), c.sides_size());
      EXPECT_EQ(it->second.winner_side(), c.winner_side());
    }
  }

  // Opens a FIELD_CONCURRENT conflict on `field` of kH1: the phone and the tablet both
  // write from base 0. Returns the conflict's id.
  std::string OpenConflict(const std::string& field, const std::string& a, const std::string& b) {
    MustPush(phone(), {phone().SetField(kH1, kV1, field, Text(a), 0)});
    v1::PushResponse second = MustPush(tablet(), {tablet().SetField(kH1, kV1, field, Text(b), 0)});
    EXPECT_TRUE(second.results(0).has_conflict_recorded()) << second.ShortDebugString();
    if (!second.results(0).has_conflict_recorded()) return "";
    return second.results(0).conflict_recorded().conflict_ids(0);
  }

  v1::Checkpoint cursor_;
};

class PullReplayPagesTest : public PullReplayTest,
                            public ::testing::WithParamInterface<uint32_t> {};

TEST_P(PullReplayPagesTest, AReplicaFedOnlyByPullEqualsTheServerAfterConflictsAndResolutions) {
  // 0: the server's page size; 1: one event a page, so each conflict must travel with the
  // very event that opened or closed it.
  const uint32_t page = GetParam();
  Replica replica(kH1);
  PullInto(replica, page);
  ExpectReplicaEqualsServer(replica, "after the first sync");

  const std::string by_side = OpenConflict("phone", "13900000001", "13900000002");
  const std::string by_value = OpenConflict("housing_structure", "磚混", "土木");
  ASSERT_FALSE(by_side.empty());
  ASSERT_FALSE(by_value.empty());
  PullInto(replica, page);
  ExpectReplicaEqualsServer(replica, "after two conflicts opened");
  ASSERT_TRUE(replica.conflicts().contains(by_side)) << "the conflict travelled in the pull";

  // Staff keep the side that is not standing (so the resolution changes the value), named
  // by its index only: the value is in the conflict the replica pulled, and must come back
  // in the resolution's outcome.
  const v1::Conflict& conflict = replica.conflicts().at(by_side);
  ASSERT_EQ(conflict.sides_size(), 2);
  const uint32_t other = 1 - conflict.winner_side();
  const std::string chosen = conflict.sides(static_cast<int>(other)).field_value().string_value();
  MustPush(tablet(), {tablet().Make(Household(kH1), kV1, [&](v1::Event& e) {
             e.mutable_conflict_resolved()->set_conflict_id(by_side);
             e.mutable_conflict_resolved()->set_chosen_side(other);
           })});
  MustPush(tablet(), {tablet().Make(Household(kH1), kV1, [&](v1::Event& e) {
             e.mutable_conflict_resolved()->set_conflict_id(by_value);
             *e.mutable_conflict_resolved()->mutable_value() = Text("磚木");
           })});
  PullInto(replica, page);
  ExpectReplicaEqualsServer(replica, "after both resolutions");
  EXPECT_TRUE(replica.conflicts().empty());
  EXPECT_EQ(replica.fields().at("phone").value.string_value(), chosen);
  EXPECT_EQ(replica.fields().at("housing_structure").value.string_value(), "磚木");
}

INSTANTIATE_TEST_SUITE_P(PageSizes, PullReplayPagesTest, ::testing::Values(0u, 1u));

TEST_F(PullReplayTest, AResolutionByASideCarriesTheValueItSetInItsWriteOutcome) {
  const std::string id = OpenConflict("phone", "13900000011", "13900000012");
  ASSERT_FALSE(id.empty());
  v1::PushResponse resolved = MustPush(tablet(), {tablet().Make(Household(kH1), kV1, [&](v1::Event& e) {
                                         e.mutable_conflict_resolved()->set_conflict_id(id);
                                         e.mutable_conflict_resolved()->set_chosen_side(0);
                                       })});
  ASSERT_TRUE(resolved.results(0).has_accepted()) << resolved.ShortDebugString();
  const uint64_t offset = resolved.results(0).accepted().offset();
  bool seen = false;
  for (const sync::LoggedEvent& stored : harness().ReadLog()) {
    if (stored.offset() != offset) continue;
    seen = true;
    ASSERT_EQ(stored.writes().size(), 1);
    ASSERT_TRUE(stored.writes()[0].has_field_value()) << stored.writes()[0].ShortDebugString();
    EXPECT_EQ(stored.writes()[0].field_value().string_value(), "13900000011");
  }
  EXPECT_TRUE(seen);
}

}  // namespace
}  // namespace fieldsync::testing
