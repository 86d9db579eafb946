// `fieldctl export` and `fieldctl report` (docs/client.md) as processes
// against a real fieldsyncd: exports with a checkpoint that resume exactly,
// and the assessment report for county staff, refused to a cadre.
#include <google/protobuf/util/json_util.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fieldsync/v1/event.pb.h"
#include "fieldsync/v1/report_service.pb.h"
#include "google/protobuf/struct.pb.h"
#include "gtest/gtest.h"
#include "tests/clients/field_world.h"

namespace fieldsync::testing {
namespace {

class FieldctlExportReportTest : public FieldWorld {
 protected:
  std::string Path(const std::string& name) const { return dir() + "/" + name; }
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<std::string> Lines(const std::string& text, const std::string& end = "\n") {
  std::vector<std::string> lines = absl::StrSplit(text, end, absl::SkipEmpty());
  return lines;
}

// Offsets of JSON Lines, each parsed back into a StoredEvent.
std::vector<uint64_t> JsonlOffsets(const std::string& text) {
  std::vector<uint64_t> offsets;
  for (const std::string& line : Lines(text)) {
    google::protobuf::Struct event;  // docs/export.md: {offset, hash, prevHash, record, event}.
    auto status = google::protobuf::util::JsonStringToMessage(line, &event);
    EXPECT_TRUE(status.ok()) << status << ": " << line;
    uint64_t offset = 0;
    EXPECT_TRUE(absl::SimpleAtoi(event.fields().at("offset").string_value(), &offset)) << line;
    offsets.push_back(offset);
  }
  return offsets;
}

std::string RFC3339(absl::Time time) {
  return absl::FormatTime(absl::RFC3339_sec, time, absl::FixedTimeZone(8 * 3600));
}

TEST_F(FieldctlExportReportTest, JsonlExportWritesEveryEventAndResumesFromItsCheckpoint) {
  const std::string out = Path("events.jsonl"), checkpoint = Path("events.ckpt");
  CtlRun first = Admin({"--json", "export", "--from", "0", "--format", "jsonl", "--checkpoint",
                        checkpoint, "--output", out});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const long long written = JsonInt(first.out, "events_written");
  ASSERT_GT(written, 0) << first.out;
  EXPECT_EQ(JsonField(first.out, "resumed"), "false") << first.out;
  std::vector<uint64_t> offsets = JsonlOffsets(ReadAll(out));
  ASSERT_EQ(offsets.size(), static_cast<size_t>(written));
  for (size_t i = 0; i < offsets.size(); ++i) EXPECT_EQ(offsets[i], i + 1) << "gapless from 1";
  EXPECT_EQ(JsonField(first.out, "last_offset"), std::to_string(offsets.back()));
  EXPECT_TRUE(first.err.empty()) << "no progress in a pipe: " << first.err;

  // New events, then a rerun with the same checkpoint appends only those.
  Link("L1", "cadre1", kH1);
  CtlRun second =
      Admin({"--json", "export", "--format", "jsonl", "--checkpoint", checkpoint, "--output", out});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(JsonField(second.out, "resumed"), "true") << second.out;
  EXPECT_GE(JsonInt(second.out, "events_written"), 1) << second.out;
  std::vector<uint64_t> all = JsonlOffsets(ReadAll(out));
  ASSERT_EQ(all.size(),
            offsets.size() + static_cast<size_t>(JsonInt(second.out, "events_written")));
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], i + 1) << "no loss, no repeat";
}

TEST_F(FieldctlExportReportTest, CsvExportInterruptedThenResumedEqualsOneUninterruptedRun) {
  Link("L1", "cadre1", kH1);
  Link("L2", "cadre2", kH2);
  const std::string whole = Path("whole.csv");
  Must("", {"--token-file", Path("admin.token"), "export", "--format", "csv", "--output", whole});
  const std::string expected = ReadAll(whole);
  const std::vector<std::string> rows = Lines(expected, "\r\n");
  ASSERT_GT(rows.size(), 4u) << expected;
  EXPECT_EQ(rows[0].rfind("offset,received_at,event_id,device_id", 0), 0u) << rows[0];

  // Stopped after 2 events (checkpointed), then a crash leaves half a row
  // after the checkpoint; the rerun cuts it back and continues.
  const std::string part = Path("part.csv"), checkpoint = Path("part.ckpt");
  CtlRun stopped = Admin({"--json", "export", "--format", "csv", "--checkpoint", checkpoint,
                          "--output", part, "--max-events", "2", "--checkpoint-every", "1"});
  ASSERT_EQ(stopped.exit_code, 0) << stopped.err;
  EXPECT_EQ(JsonInt(stopped.out, "events_written"), 2) << stopped.out;
  EXPECT_EQ(JsonField(stopped.out, "last_offset"), "2") << stopped.out;
  {
    std::ofstream torn(part, std::ios::app | std::ios::binary);
    torn << "3,2026-01-01T00:00:00Z,half-a-ro";
  }
  CtlRun resumed =
      Admin({"--json", "export", "--format", "csv", "--checkpoint", checkpoint, "--output", part});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(JsonField(resumed.out, "resumed"), "true") << resumed.out;
  EXPECT_EQ(JsonInt(resumed.out, "events_written") + 2, static_cast<long long>(rows.size() - 1));
  EXPECT_EQ(ReadAll(part), expected) << "the resumed export differs from one uninterrupted run";

  // A checkpoint of the other format is refused, exit 1.
  CtlRun other =
      Admin({"export", "--format", "jsonl", "--checkpoint", checkpoint, "--output", part});
  EXPECT_EQ(other.exit_code, 1) << other.out << other.err;
  EXPECT_NE(other.err.find("export: "), std::string::npos) << other.err;
}

TEST_F(FieldctlExportReportTest, ExportToStdoutWithoutCheckpointIsOneShotAndUsageErrorsExit2) {
  CtlRun run = Admin({"export", "--format", "jsonl"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_FALSE(JsonlOffsets(run.out).empty()) << run.out;
  EXPECT_EQ(JsonlOffsets(run.out).front(), 1u);

  EXPECT_EQ(Admin({"export", "--format", "xml"}).exit_code, 2);
  EXPECT_EQ(Admin({"export", "--from", "minus-one"}).exit_code, 2);
  CtlRun cadre = Fieldctl("phone1", {"export"});
  EXPECT_EQ(cadre.exit_code, 1) << cadre.out << cadre.err;
  EXPECT_NE(cadre.err.find("export: "), std::string::npos) << cadre.err;
}

class FieldctlReportTest : public FieldctlExportReportTest {
 protected:
  void SetUp() override {
    FieldctlExportReportTest::SetUp();
    if (HasFatalFailure()) return;
    Must("", {"--token-file", Path("admin.token"), "admin", "user", "upsert", "--id", "county1",
              "--name", "縣幹部", "--role", "county_staff", "--scope", "620102"});
    Enroll("county", "county1");
  }
};

TEST_F(FieldctlReportTest, AssessmentForCountyStaffShowsTheNumbersAndIsRefusedToACadre) {
  const absl::Time now = absl::Now();
  const int year = static_cast<int>(absl::ToCivilYear(now, absl::FixedTimeZone(8 * 3600)).year());
  Link("L1", "cadre1", kH1, absl::StrCat(year, "-01-01"));
  Must("phone1", {"sync"});
  Must("phone1", {"visit", "record", "--household", kH1, "--start",
                  RFC3339(now - absl::Minutes(10)), "--end", RFC3339(now - absl::Minutes(1))});
  Must("phone1", {"sync"});

  const std::string y = std::to_string(year);
  CtlRun table = Must("county", {"report", "assessment", "--scope", "620102", "--year", y});
  EXPECT_NE(table.out.find("households covered               1/2"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("visits (flagged)                 1"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("cadre1"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("coverage gaps"), std::string::npos) << table.out;  // kH2 unlinked.

  CtlRun json = Must("county", {"--json", "report", "assessment", "--scope", "620102", "--year", y,
                                "--page-size", "1"});
  v1::GetAssessmentResponse report;
  auto parsed = google::protobuf::util::JsonStringToMessage(json.out, &report);
  ASSERT_TRUE(parsed.ok()) << parsed << ": " << json.out;
  EXPECT_EQ(report.summary().cadres(), 1u);
  EXPECT_EQ(report.summary().households_requiring_link(), 2u);
  EXPECT_EQ(report.summary().households_covered(), 1u);
  EXPECT_EQ(report.summary().visits(), 1u);
  ASSERT_EQ(report.cadres_size(), 1) << json.out;
  EXPECT_EQ(report.cadres(0).user_id(), "cadre1");
  EXPECT_EQ(report.cadres(0).linked_households(), 1u);
  EXPECT_EQ(report.cadres(0).visits(), 1u);
  EXPECT_EQ(report.cadres(0).days_on_site(), 1u);
  EXPECT_FALSE(report.cadres(0).quota_met());
  // Page size 1: the cadre and the gap came on two pages, both read.
  ASSERT_EQ(report.coverage_gaps_size(), 1) << json.out;
  EXPECT_EQ(report.coverage_gaps(0).subject().id(), kH2);
  EXPECT_TRUE(report.next_page_token().empty());

  CtlRun csv = Must("county", {"report", "assessment", "--scope", "620102", "--year", y, "--csv"});
  std::vector<std::string> rows = Lines(csv.out, "\r\n");
  ASSERT_EQ(rows.size(), 2u) << csv.out;
  EXPECT_EQ(rows[0].rfind("user_id,name,unit_id,rank,linked_households,household_quota", 0), 0u)
      << rows[0];
  EXPECT_EQ(rows[1].rfind("cadre1,cadre1,U1,other,1,1,0,1,4,1,30,true,false,false,false,", 0), 0u)
      << rows[1];

  CtlRun refused = Fieldctl("phone1", {"report", "assessment", "--scope", "620102", "--year", y});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("report assessment: "), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("reports are for county staff, HQ analysts and admins"),
            std::string::npos)
      << refused.err;
  CtlRun refused_json =
      Fieldctl("phone1", {"--json", "report", "assessment", "--scope", "620102", "--year", y});
  EXPECT_EQ(JsonField(refused_json.out, "code"), "PERMISSION_DENIED") << refused_json.out;
}

TEST_F(FieldctlReportTest, EvidenceReportListsAFixlessVisitAndReportsNeedTheirScope) {
  const absl::Time now = absl::Now();
  const int year = static_cast<int>(absl::ToCivilYear(now, absl::FixedTimeZone(8 * 3600)).year());
  Link("L1", "cadre1", kH1, absl::StrCat(year, "-01-01"));
  Must("phone1", {"sync"});
  Must("phone1", {"visit", "record", "--household", kH1, "--start",
                  RFC3339(now - absl::Minutes(10)), "--end", RFC3339(now - absl::Minutes(1))});
  Must("phone1", {"sync"});
  const std::string y = std::to_string(year);

  CtlRun csv = Must("county", {"report", "evidence", "--scope", "620102", "--year", y, "--csv"});
  std::vector<std::string> rows = Lines(csv.out, "\r\n");
  ASSERT_EQ(rows.size(), 2u) << csv.out;
  EXPECT_EQ(rows[1].rfind(absl::StrCat("no_fix,cadre1,household,", kH1, ",620102001001,"), 0), 0u)
      << rows[1];
  CtlRun json = Must("county", {"--json", "report", "evidence", "--scope", "620102", "--year", y});
  v1::GetEvidenceReportResponse evidence;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.out, &evidence).ok()) << json.out;
  EXPECT_EQ(evidence.counts_by_kind().at(v1::EVIDENCE_FLAG_KIND_NO_FIX), 1u) << json.out;

  CtlRun outside = Fieldctl("county", {"report", "assessment", "--scope", "620103", "--year", y});
  EXPECT_EQ(outside.exit_code, 1) << outside.out << outside.err;
  EXPECT_NE(outside.err.find("report assessment: "), std::string::npos) << outside.err;
  EXPECT_EQ(Fieldctl("county", {"report", "assessment"}).exit_code, 2);
  EXPECT_EQ(Fieldctl("county", {"report", "nonsense", "--scope", "62"}).exit_code, 2);
}

}  // namespace
}  // namespace fieldsync::testing
