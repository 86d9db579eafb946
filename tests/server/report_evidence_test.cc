// GetEvidenceReport through gRPC: each flag once, next to its near miss, with
// the measurements worked out by hand (1° of latitude = 111.195 km on the
// mean Earth radius). Today is 2024-03-01 (sync_world.h).
#include <string>

#include "gtest/gtest.h"
#include "tests/server/report_world.h"

namespace fieldsync::testing {
namespace {

constexpr char kH5[] = "11111111-1111-4111-8111-000000000005";

class EvidenceTest : public ReportWorld {
 public:
  // Flags of one kind, in report order.
  std::vector<v1::EvidenceFlag> Flags(v1::EvidenceFlagKind kind) {
    std::vector<v1::EvidenceFlag> out;
    const v1::GetEvidenceReportResponse report = MustEvidence(kCountyA, 2024);
    for (const auto& f : report.flags()) {
      if (f.kind() == kind) out.push_back(f);
    }
    return out;
  }
  void LinkKH2() {
    ASSERT_TRUE(LinkOn("L-h2", "cadre1", v1::SUBJECT_KIND_HOUSEHOLD, kH2,
                       v1::LINK_ROLE_HOUSEHOLD_HELPER, D(2024, 1, 31)).ok());
  }
};

TEST_F(EvidenceTest, NoFixIsFlaggedAndAFixIsNot) {
  v1::Event without = VisitAt(phone(), kH1, kV1, Cst(2024, 2, 10, 10), Cst(2024, 2, 10, 11),
                              std::nullopt);
  MustPush(phone(), {without, VisitAt(phone(), kH1, kV1, Cst(2024, 2, 12, 10), Cst(2024, 2, 12, 11))});
  std::vector<v1::EvidenceFlag> flags = Flags(v1::EVIDENCE_FLAG_KIND_NO_FIX);
  ASSERT_EQ(flags.size(), 1u);
  ASSERT_EQ(flags[0].event_ids_size(), 1);
  EXPECT_EQ(flags[0].event_ids(0), without.event_id());
  EXPECT_EQ(flags[0].cadre_id(), "cadre1");
  EXPECT_EQ(flags[0].subject().id(), kH1);
  EXPECT_EQ(flags[0].area_code(), kV1);
  EXPECT_EQ(flags[0].visit_time().seconds(), absl::ToUnixSeconds(Cst(2024, 2, 10, 10)));
  EXPECT_EQ(MustEvidence(kCountyA, 2024).flags_size(), 1);
  EXPECT_EQ(CadreIn(MustAssess(kCountyA, 2024), "cadre1")->flagged_visits(), 1u);
}

TEST_F(EvidenceTest, GpsFarBeyondOneKilometreAndNotAt945Metres) {
  MustPush(tablet(), {RegisterAt(tablet(), kH5, kV1, "N-5", {36.0, 103.8})});
  ASSERT_TRUE(LinkOn("L-h5", "cadre1", v1::SUBJECT_KIND_HOUSEHOLD, kH5,
                     v1::LINK_ROLE_HOUSEHOLD_HELPER, D(2024, 1, 31)).ok());
  v1::Event far = VisitAt(phone(), kH5, kV1, Cst(2024, 2, 10, 10), Cst(2024, 2, 10, 11),
                          Fix{36.011, 103.8});  // 0.011° north: 1223.1 m.
  v1::Event near = VisitAt(phone(), kH5, kV1, Cst(2024, 2, 12, 10), Cst(2024, 2, 12, 11),
                           Fix{36.0085, 103.8});  // 945.2 m.
  MustPush(phone(), {far, near});
  std::vector<v1::EvidenceFlag> flags = Flags(v1::EVIDENCE_FLAG_KIND_GPS_FAR);
  ASSERT_EQ(flags.size(), 1u);
  EXPECT_EQ(flags[0].event_ids(0), far.event_id());
  EXPECT_NEAR(flags[0].gps_far().distance_m(), 1223.1, 1.0);
  EXPECT_EQ(flags[0].gps_far().threshold_m(), 1000);
}

TEST_F(EvidenceTest, ImpossibleTravelOver120KmhOnTheLaterVisitAndNotAt111) {
  LinkKH2();
  // Made (and so sequenced) out of start order: consecutive means by start time.
  // 1.0° in an hour: 111.2 km/h, under the limit.
  v1::Event d = VisitAt(phone(), kH2, kV1, Cst(2024, 2, 3, 12), Cst(2024, 2, 3, 13), Fix{37.0, 103.8});
  // 1.2° north an hour after the first ended: 133.4 km/h.
  v1::Event b = VisitAt(phone(), kH2, kV1, Cst(2024, 2, 1, 12), Cst(2024, 2, 1, 13), Fix{37.2, 103.8});
  v1::Event c = VisitAt(phone(), kH1, kV1, Cst(2024, 2, 3, 10), Cst(2024, 2, 3, 11), Fix{36.0, 103.8});
  v1::Event a = VisitAt(phone(), kH1, kV1, Cst(2024, 2, 1, 10), Cst(2024, 2, 1, 11), Fix{36.0, 103.8});
  MustPush(phone(), {d, b, c, a});
  std::vector<v1::EvidenceFlag> flags = Flags(v1::EVIDENCE_FLAG_KIND_IMPOSSIBLE_TRAVEL);
  ASSERT_EQ(flags.size(), 1u);
  ASSERT_EQ(flags[0].event_ids_size(), 2);
  EXPECT_EQ(flags[0].event_ids(0), a.event_id());
  EXPECT_EQ(flags[0].event_ids(1), b.event_id());
  EXPECT_EQ(flags[0].subject().id(), kH2);
  EXPECT_NEAR(flags[0].travel().distance_km(), 133.43, 0.05);
  EXPECT_NEAR(flags[0].travel().hours(), 1.0, 1e-9);
  EXPECT_NEAR(flags[0].travel().speed_kmh(), 133.43, 0.05);
  EXPECT_EQ(flags[0].travel().threshold_kmh(), 120);
}

TEST_F(EvidenceTest, DuplicatePhotoAcrossHouseholdsListsEveryVisitAndOneHouseholdIsNot) {
  LinkKH2();
  const std::string p(32, 'a'), q(32, 'b');
  // The later visit is made first (sequence order is not start order).
  v1::Event v2_ = VisitAt(phone(), kH2, kV1, Cst(2024, 2, 6, 10), Cst(2024, 2, 6, 11),
                          Fix{36.0, 103.8}, {p});
  v1::Event v1_ = VisitAt(phone(), kH1, kV1, Cst(2024, 2, 5, 10), Cst(2024, 2, 5, 11),
                          Fix{36.0, 103.8}, {p});
  // The same photo twice on one household: not a duplicate.
  MustPush(phone(), {v2_, v1_,
                     VisitAt(phone(), kH1, kV1, Cst(2024, 2, 7, 10), Cst(2024, 2, 7, 11),
                             Fix{36.0, 103.8}, {q}),
                     VisitAt(phone(), kH1, kV1, Cst(2024, 2, 8, 10), Cst(2024, 2, 8, 11),
                             Fix{36.0, 103.8}, {q})});
  std::vector<v1::EvidenceFlag> flags = Flags(v1::EVIDENCE_FLAG_KIND_DUPLICATE_PHOTO);
  ASSERT_EQ(flags.size(), 1u);
  ASSERT_EQ(flags[0].event_ids_size(), 2);
  EXPECT_EQ(flags[0].event_ids(0), v1_.event_id());
  EXPECT_EQ(flags[0].event_ids(1), v2_.event_id());
  ASSERT_EQ(flags[0].duplicate_photo().subjects_size(), 2);
  EXPECT_EQ(flags[0].duplicate_photo().subjects(0).id(), kH1);
  EXPECT_EQ(flags[0].duplicate_photo().subjects(1).id(), kH2);
  EXPECT_EQ(flags[0].duplicate_photo().photo_sha256(), p);
  // Two visits carry it.
  EXPECT_EQ(MustAssess(kCountyA, 2024).summary().flagged_visits(), 2u);
  // counts_by_kind ignores the kinds and cadre filters.
  v1::GetEvidenceReportRequest only;
  only.set_scope_prefix(kCountyA);
  only.set_year(2024);
  only.add_kinds(v1::EVIDENCE_FLAG_KIND_NO_FIX);
  v1::GetEvidenceReportResponse filtered;
  ASSERT_TRUE(EvidenceOf(hq_token(), only, &filtered).ok());
  EXPECT_EQ(filtered.flags_size(), 0);
  EXPECT_EQ(filtered.counts_by_kind().at(v1::EVIDENCE_FLAG_KIND_DUPLICATE_PHOTO), 1u);
}

TEST_F(EvidenceTest, DeviceTimeSkewIsMeasuredAtPushNotFromTheEventsOwnTime) {
  // Recorded offline ten days ago and pushed now by a clock 9 minutes fast:
  // neither is skew (the event's own device_time is never compared).
  v1::Event offline = VisitAt(phone(), kH1, kV1, Cst(2024, 2, 10, 10), Cst(2024, 2, 10, 11));
  offline.mutable_device_time()->set_seconds(absl::ToUnixSeconds(Cst(2024, 2, 10, 11)));
  phone().Sign(offline);
  PushWithClock(phone(), {offline}, absl::Minutes(9));
  EXPECT_TRUE(Flags(v1::EVIDENCE_FLAG_KIND_DEVICE_TIME_SKEW).empty());
  // 11 minutes fast at push: flagged, skew +660000 ms.
  v1::Event skewed = VisitAt(phone(), kH1, kV1, Cst(2024, 2, 12, 10), Cst(2024, 2, 12, 11));
  PushWithClock(phone(), {skewed}, absl::Minutes(11));
  std::vector<v1::EvidenceFlag> flags = Flags(v1::EVIDENCE_FLAG_KIND_DEVICE_TIME_SKEW);
  ASSERT_EQ(flags.size(), 1u);
  EXPECT_EQ(flags[0].event_ids(0), skewed.event_id());
  EXPECT_EQ(flags[0].time_skew().skew_ms(), 660000);
  EXPECT_EQ(flags[0].time_skew().threshold_ms(), 600000);
  EXPECT_FALSE(flags[0].time_skew().hlc_flagged());
}

TEST_F(EvidenceTest, FlagsComeInVisitStartOrderAcrossPagesAndFilterByCadre) {
  for (int day = 9; day >= 1; --day) {
    MustPush(phone(), {VisitAt(phone(), kH1, kV1, Cst(2024, 2, day, 10), Cst(2024, 2, day, 11),
                               std::nullopt)});
  }
  std::vector<int64_t> times;
  std::string token;
  do {
    v1::GetEvidenceReportRequest request;
    request.set_scope_prefix(kCountyA);
    request.set_year(2024);
    request.set_page_size(4);
    request.set_page_token(token);
    v1::GetEvidenceReportResponse page;
    ASSERT_TRUE(EvidenceOf(hq_token(), request, &page).ok());
    EXPECT_EQ(page.counts_by_kind().at(v1::EVIDENCE_FLAG_KIND_NO_FIX), 9u);
    for (const auto& f : page.flags()) times.push_back(f.visit_time().seconds());
    token = page.next_page_token();
  } while (!token.empty() && times.size() < 20);
  ASSERT_EQ(times.size(), 9u);
  EXPECT_TRUE(std::is_sorted(times.begin(), times.end()));
  v1::GetEvidenceReportRequest other;
  other.set_scope_prefix(kCountyA);
  other.set_year(2024);
  other.set_cadre_id("nobody");
  v1::GetEvidenceReportResponse none;
  ASSERT_TRUE(EvidenceOf(hq_token(), other, &none).ok());
  EXPECT_EQ(none.flags_size(), 0);
}

}  // namespace
}  // namespace fieldsync::testing
