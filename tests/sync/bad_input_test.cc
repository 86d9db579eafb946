// Bad input at the engine level: each case pushes something wrong and states
// what must happen (a status for the whole push, or a per-event result), and
// the test checks that nothing was written that should not be: the head, the
// log and every projection key, compared before and after.
#include <functional>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "sync/event_codec.h"
#include "sync/hlc.h"
#include "sync/sync_keys.h"
#include "tests/sync/sync_test_support.h"

namespace fieldsync::test {
namespace {

constexpr char kVillage[] = "620102001001";
constexpr char kOtherVillage[] = "620102002001";

struct Fixture {
  Env& env;
  SimDevice& phone;       // The pusher: a cadre's phone.
  SimDevice& other;       // Another cadre's phone, enrolled.
  SimDevice& stranger;    // A device with a key but never enrolled.
  std::string household;  // Registered in kVillage by `phone` (seq 1).
};

enum class Want {
  kStatus,    // The whole push fails with `status`; nothing is written.
  kHeld,      // Every event is Held (not judged); nothing is written.
  kRejected,  // The last event is rejected with `code`; only its rejection record (and
              // the device's sequence, if `advances`) is written.
  kAccepted,  // The last event is accepted; `check` looks at the details.
};

struct Case {
  std::string name;
  std::function<std::vector<v1::Event>(Fixture&)> make;
  Want want;
  absl::StatusCode status = absl::StatusCode::kOk;
  v1::RejectionCode code = v1::REJECTION_CODE_UNSPECIFIED;
  bool advances = true;
  std::function<void(Fixture&, const sync::PushOutcome&)> check;
  sync::Scope scope = Env::AllScope();
  sync::SyncOptions options;
  // The pushing phone's role.
  v1::Role role = v1::ROLE_CADRE;
};

v1::Event Visit(Fixture& f) { return f.phone.Visit(HouseholdRef(f.household), kVillage); }

// A visit changed by `edit` and signed again.
std::function<std::vector<v1::Event>(Fixture&)> EditedVisit(std::function<void(v1::Event&)> edit) {
  return [edit](Fixture& f) {
    v1::Event e = Visit(f);
    edit(e);
    f.phone.Sign(e);
    return std::vector<v1::Event>{e};
  };
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  auto rejected = [&](std::string name, std::function<std::vector<v1::Event>(Fixture&)> make,
                      v1::RejectionCode code, bool advances = true) {
    Case c;
    c.name = std::move(name);
    c.make = std::move(make);
    c.want = Want::kRejected;
    c.code = code;
    c.advances = advances;
    cases.push_back(std::move(c));
  };

  // --- Malformed envelopes ---
  rejected("no_body", EditedVisit([](v1::Event& e) { e.clear_body(); }),
           v1::REJECTION_CODE_MALFORMED);
  rejected("event_id_not_a_uuid", EditedVisit([](v1::Event& e) { e.set_event_id("visit-1"); }),
           v1::REJECTION_CODE_MALFORMED);
  rejected("no_hlc", EditedVisit([](v1::Event& e) { e.clear_hlc(); }),
           v1::REJECTION_CODE_MALFORMED);
  rejected("no_device_time", EditedVisit([](v1::Event& e) { e.clear_device_time(); }),
           v1::REJECTION_CODE_MALFORMED);
  rejected("no_subject", EditedVisit([](v1::Event& e) { e.clear_subject(); }),
           v1::REJECTION_CODE_MALFORMED);
  rejected("area_code_not_12_digits",
           EditedVisit([](v1::Event& e) { e.set_area_code("6201020010"); }),
           v1::REJECTION_CODE_INVALID_VALUE);
  rejected("unknown_fields_in_the_event", EditedVisit([](v1::Event& e) {
             e.GetReflection()->MutableUnknownFields(&e)->AddVarint(999, 1);
           }),
           v1::REJECTION_CODE_MALFORMED);
  rejected("device_seq_zero", EditedVisit([](v1::Event& e) { e.set_device_seq(0); }),
           v1::REJECTION_CODE_MALFORMED, /*advances=*/false);
  rejected("oversized_event", EditedVisit([](v1::Event& e) {
             e.mutable_visit_recorded()->set_notes(std::string(70 << 10, 'x'));
           }),
           v1::REJECTION_CODE_TOO_LARGE);

  // --- Values ---
  rejected("unknown_enum", EditedVisit([](v1::Event& e) {
             e.mutable_visit_recorded()->set_purpose(static_cast<v1::VisitPurpose>(99));
           }),
           v1::REJECTION_CODE_INVALID_VALUE);
  rejected("latitude_out_of_range", EditedVisit([](v1::Event& e) {
             e.mutable_location()->set_lat(91);
             e.mutable_location()->set_lng(104);
           }),
           v1::REJECTION_CODE_INVALID_VALUE);
  rejected("visit_ends_before_it_starts", EditedVisit([](v1::Event& e) {
             auto* v = e.mutable_visit_recorded();
             std::swap(*v->mutable_start_time(), *v->mutable_end_time());
           }),
           v1::REJECTION_CODE_INVALID_VALUE);
  rejected("visit_too_long", EditedVisit([](v1::Event& e) {
             auto* v = e.mutable_visit_recorded();
             v->mutable_start_time()->set_seconds(v->end_time().seconds() - 4 * 24 * 3600);
           }),
           v1::REJECTION_CODE_INVALID_VALUE);
  rejected("photo_hash_not_32_bytes",
           EditedVisit([](v1::Event& e) { e.mutable_visit_recorded()->add_photo_sha256("short"); }),
           v1::REJECTION_CODE_INVALID_VALUE);
  rejected(
      "unknown_registry_field",
      [](Fixture& f) {
        return std::vector<v1::Event>{
            f.phone.SetField(f.household, kVillage, "colour", Str("red"), 1)};
      },
      v1::REJECTION_CODE_UNKNOWN_FIELD);
  rejected(
      "wrong_value_type",
      [](Fixture& f) {
        return std::vector<v1::Event>{
            f.phone.SetField(f.household, kVillage, "housing_area", Str("x"), 1)};
      },
      v1::REJECTION_CODE_INVALID_VALUE);
  rejected(
      "bad_id_number_checksum",
      [](Fixture& f) {
        v1::Event e = f.phone.Register(NewUuid(), kVillage, "BAD-1");
        std::string id = e.household_registered().head_id_number();
        id[17] = id[17] == '0' ? '1' : '0';
        e.mutable_household_registered()->set_head_id_number(id);
        f.phone.Sign(e);
        return std::vector<v1::Event>{e};
      },
      v1::REJECTION_CODE_INVALID_VALUE);
  rejected(
      "not_a_transition",
      [](Fixture& f) {
        return std::vector<v1::Event>{f.phone.Propose(f.household, kVillage,
                                                      v1::HOUSEHOLD_STATUS_IDENTIFIED,
                                                      v1::HOUSEHOLD_STATUS_IDENTIFIED)};
      },
      v1::REJECTION_CODE_INVALID_TRANSITION);
  rejected(
      "body_does_not_fit_subject_kind",
      [](Fixture& f) {
        v1::Event e = f.phone.SetField(f.household, kVillage, "phone", Str("1"), 0);
        *e.mutable_subject() = VillageRef(kVillage);
        f.phone.Sign(e);
        return std::vector<v1::Event>{e};
      },
      v1::REJECTION_CODE_SUBJECT_MISMATCH);

  // --- Identity ---
  rejected(
      "tampered_signature",
      [](Fixture& f) {
        v1::Event e = Visit(f);
        e.mutable_visit_recorded()->set_notes("edited after signing");
        return std::vector<v1::Event>{e};
      },
      v1::REJECTION_CODE_BAD_SIGNATURE, false);
  rejected(
      "signature_of_wrong_length",
      [](Fixture& f) {
        v1::Event e = Visit(f);
        SetTestSignature(e, "sig");
        return std::vector<v1::Event>{e};
      },
      v1::REJECTION_CODE_BAD_SIGNATURE, false);
  rejected(
      "foreign_device_signed_with_the_pushers_key",
      [](Fixture& f) {
        v1::Event e = f.other.Visit(HouseholdRef(f.household), kVillage);
        f.phone.Sign(e);  // Claims to be `other`, signed by `phone`.
        return std::vector<v1::Event>{e};
      },
      v1::REJECTION_CODE_BAD_SIGNATURE, false);
  rejected(
      "unknown_device",
      [](Fixture& f) {
        return std::vector<v1::Event>{f.stranger.Visit(HouseholdRef(f.household), kVillage)};
      },
      v1::REJECTION_CODE_UNKNOWN_DEVICE, false);
  rejected(
      "revoked_device",
      [](Fixture& f) {
        f.env.keys().Revoke(f.other.id());
        return std::vector<v1::Event>{f.other.Visit(HouseholdRef(f.household), kVillage)};
      },
      v1::REJECTION_CODE_DEVICE_REVOKED, false);
  rejected(
      "event_id_reused_with_other_content",
      [](Fixture& f) {
        v1::Event first = Visit(f);
        EXPECT_OK(f.env.Push(f.phone, {first}).status());
        v1::Event again = Visit(f);
        again.set_event_id(first.event_id());
        f.phone.Sign(again);
        return std::vector<v1::Event>{again};
      },
      v1::REJECTION_CODE_EVENT_ID_REUSED);
  rejected(
      "sequence_reused_by_a_new_event",
      [](Fixture& f) {
        v1::Event e = Visit(f);
        e.set_device_seq(1);  // Taken by the registration.
        f.phone.Sign(e);
        return std::vector<v1::Event>{e};
      },
      v1::REJECTION_CODE_SEQUENCE_REUSED, false);

  // --- Permissions and scope ---
  rejected(
      "cadre_starts_a_link",
      [](Fixture& f) {
        return std::vector<v1::Event>{
            f.phone.Make(HouseholdRef(f.household), kVillage, [](v1::Event& e) {
              auto* l = e.mutable_link_started();
              l->set_link_id(NewUuid());
              l->set_cadre_id("cadre-1");
              l->set_role(v1::LINK_ROLE_HOUSEHOLD_HELPER);
              l->mutable_valid_from()->set_year(2024);
              l->mutable_valid_from()->set_month(1);
              l->mutable_valid_from()->set_day(1);
            })};
      },
      v1::REJECTION_CODE_PERMISSION_DENIED);
  rejected(
      "admin_body_pushed_by_a_device",
      [](Fixture& f) {
        v1::SubjectRef device;
        device.set_kind(v1::SUBJECT_KIND_DEVICE);
        device.set_id("phone-2");
        return std::vector<v1::Event>{f.phone.Make(device, kVillage, [](v1::Event& e) {
          e.mutable_device_revoked()->set_reason("lost");
        })};
      },
      v1::REJECTION_CODE_PERMISSION_DENIED);
  {
    Case c;
    c.name = "subject_out_of_scope";
    c.make = [](Fixture& f) {
      return std::vector<v1::Event>{f.phone.Visit(VillageRef(kOtherVillage), kOtherVillage)};
    };
    c.want = Want::kRejected;
    c.code = v1::REJECTION_CODE_OUT_OF_SCOPE;
    c.scope.all = false;
    c.scope.area_prefixes = {"620102001"};
    cases.push_back(std::move(c));
  }

  // --- State-dependent (found in the merge) ---
  rejected(
      "unknown_subject",
      [](Fixture& f) {
        return std::vector<v1::Event>{f.phone.Visit(HouseholdRef(NewUuid()), kVillage)};
      },
      v1::REJECTION_CODE_UNKNOWN_SUBJECT);
  rejected(
      "household_lives_elsewhere",
      [](Fixture& f) {
        return std::vector<v1::Event>{f.phone.Visit(HouseholdRef(f.household), kOtherVillage)};
      },
      v1::REJECTION_CODE_SUBJECT_MISMATCH);
  rejected(
      "correction_of_an_unknown_visit",
      [](Fixture& f) {
        return std::vector<v1::Event>{
            f.phone.Make(HouseholdRef(f.household), kVillage, [](v1::Event& e) {
              e.mutable_visit_corrected()->set_original_event_id(NewUuid());
              e.mutable_visit_corrected()->set_withdrawn(true);
              e.mutable_visit_corrected()->set_reason("錯錄");
            })};
      },
      v1::REJECTION_CODE_UNKNOWN_REFERENCE);
  rejected(
      "resolution_of_an_unknown_conflict",
      [](Fixture& f) {
        return std::vector<v1::Event>{f.phone.Resolve(HouseholdRef(f.household), kVillage, "c999.0",
                                                      [](auto& r) { r.set_chosen_side(0); })};
      },
      v1::REJECTION_CODE_UNKNOWN_REFERENCE);
  cases.back().role = v1::ROLE_TOWNSHIP_STAFF;  // A role that may resolve.

  // --- Held: not judged, nothing written ---
  {
    Case c;
    c.name = "sequence_gap";
    c.make = [](Fixture& f) {
      Visit(f);  // seq 2, lost on the way
      return std::vector<v1::Event>{Visit(f)};
    };
    c.want = Want::kHeld;
    cases.push_back(std::move(c));
  }

  // --- Whole-push failures ---
  {
    Case c;
    c.name = "too_many_events";
    c.make = [](Fixture& f) { return std::vector<v1::Event>{Visit(f), Visit(f), Visit(f)}; };
    c.want = Want::kStatus;
    c.status = absl::StatusCode::kResourceExhausted;
    c.options.max_push_events = 2;
    cases.push_back(std::move(c));
  }
  {
    Case c;
    c.name = "too_many_bytes";
    c.make = [](Fixture& f) {
      std::vector<v1::Event> events;
      for (int i = 0; i < 4; ++i) {
        v1::Event e = Visit(f);
        e.mutable_visit_recorded()->set_notes(std::string(3000, 'y'));
        f.phone.Sign(e);
        events.push_back(e);
      }
      return events;
    };
    c.want = Want::kStatus;
    c.status = absl::StatusCode::kResourceExhausted;
    c.options.max_push_bytes = 10000;
    cases.push_back(std::move(c));
  }

  // --- Accepted, with evidence kept ---
  {
    Case c;
    c.name = "future_clock_is_flagged_not_refused";
    c.make =
        EditedVisit([](v1::Event& e) { e.set_hlc(e.hlc() + (uint64_t{24 * 3600 * 1000} << 16)); });
    c.want = Want::kAccepted;
    c.check = [](Fixture& f, const sync::PushOutcome& outcome) {
      const uint64_t offset = outcome.response.results(0).accepted().offset();
      sync::LoggedEvent stored = *sync::DecodeRecord(*f.env.store().Read(offset));
      EXPECT_TRUE(stored.hlc_flagged());
      EXPECT_NE(stored.adopted_hlc(), stored.event().hlc());
    };
    cases.push_back(std::move(c));
  }
  {
    Case c;
    c.name = "missing_blob_is_marked_pending";
    c.make = EditedVisit([](v1::Event& e) {
      e.mutable_visit_recorded()->add_photo_sha256(std::string(32, '\x7f'));
    });
    c.want = Want::kAccepted;
    c.check = [](Fixture& f, const sync::PushOutcome&) {
      absl::StatusOr<std::vector<std::string>> missing = f.env.engine().ListMissingBlobs(10);
      ASSERT_TRUE(missing.ok());
      ASSERT_EQ(missing->size(), 1u);
      EXPECT_EQ((*missing)[0], std::string(32, '\x7f'));
    };
    cases.push_back(std::move(c));
  }
  return cases;
}

class BadInputTest : public ::testing::TestWithParam<Case> {};

TEST_P(BadInputTest, AnswersAsExpectedAndWritesNothingItShouldNot) {
  const Case& c = GetParam();
  Env env(c.options);
  SimDevice stranger("stranger", "nobody", v1::ROLE_CADRE, env.clock().AsFunction());
  Fixture f{env, env.AddDevice("phone-1", "user-1", c.role),
            env.AddDevice("phone-2", "cadre-2", v1::ROLE_CADRE), stranger, NewUuid()};
  ASSERT_OK(env.Push(f.phone, {f.phone.Register(f.household, kVillage, "H-1")}).status());

  std::vector<v1::Event> events = c.make(f);
  const uint64_t head = env.store().Head();
  const std::map<std::string, std::string> before = AllProjections(env.store());
  ASSERT_OK_AND_ASSIGN(const uint64_t next_before, env.engine().NextExpectedSeq("phone-1"));
  absl::StatusOr<sync::PushOutcome> outcome = env.Push(f.phone, events, c.scope);
  const std::map<std::string, std::string> after = AllProjections(env.store());

  switch (c.want) {
    case Want::kStatus:
      EXPECT_EQ(outcome.status().code(), c.status) << outcome.status();
      EXPECT_EQ(env.store().Head(), head);
      EXPECT_EQ(after, before);
      break;
    case Want::kHeld:
      ASSERT_OK(outcome.status());
      for (const v1::PushResult& result : outcome->response.results()) {
        EXPECT_TRUE(result.has_held()) << result.ShortDebugString();
        EXPECT_EQ(result.held().expected_device_seq(), next_before);
      }
      EXPECT_EQ(env.store().Head(), head);
      EXPECT_EQ(after, before);
      break;
    case Want::kRejected: {
      ASSERT_OK(outcome.status());
      const v1::PushResult& result =
          outcome->response.results(outcome->response.results_size() - 1);
      ASSERT_TRUE(result.has_rejected()) << result.DebugString();
      EXPECT_EQ(result.rejected().code(), c.code) << result.rejected().message();
      // Only the rejection record, its indexes and the device's sequence.
      bool record = false;
      for (const auto& [key, value] : after) {
        auto it = before.find(key);
        if (it != before.end() && it->second == value) continue;
        if (key.starts_with(sync::sync_keys::kRejectionPrefix)) record = true;
        const bool allowed =
            key.starts_with("sync/rej/") || key == sync::sync_keys::Device("phone-1");
        EXPECT_TRUE(allowed) << "unexpected write of " << key;
      }
      for (const auto& [key, value] : before) EXPECT_TRUE(after.contains(key)) << "deleted " << key;
      EXPECT_TRUE(record) << "the rejection is recorded";
      ASSERT_OK_AND_ASSIGN(const uint64_t next_after, env.engine().NextExpectedSeq("phone-1"));
      EXPECT_EQ(next_after, c.advances ? next_before + 1 : next_before);
      // At most a body-less marker was appended, never the event.
      EXPECT_LE(env.store().Head(), head + 1);
      for (uint64_t offset = head + 1; offset <= env.store().Head(); ++offset) {
        EXPECT_TRUE(sync::DecodeRecord(*env.store().Read(offset))->is_marker());
      }
      // A replay answers the same and writes nothing more.
      ASSERT_OK_AND_ASSIGN(sync::PushOutcome replay, env.Push(f.phone, {events.back()}, c.scope));
      EXPECT_EQ(replay.response.results(0).rejected().code(), c.code);
      EXPECT_EQ(AllProjections(env.store()), after);
      break;
    }
    case Want::kAccepted: {
      ASSERT_OK(outcome.status());
      ASSERT_TRUE(outcome->response.results(0).has_accepted())
          << outcome->response.results(0).DebugString();
      if (c.check) c.check(f, *outcome);
      break;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Table, BadInputTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

TEST(BadInputTableTest, HasAtLeastTwentyFiveCases) { EXPECT_GE(Cases().size(), 25u); }

}  // namespace
}  // namespace fieldsync::test
