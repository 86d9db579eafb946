// The analyst's export (clients/export/export.h) against the in-process server
// (SyncWorld: real gRPC, real store, real pushes): JSONL and CSV hold every
// stored event once (rejection markers never), a rerun resumes from the
// checkpoint, and an interrupted run (bytes written past its checkpoint)
// resumes exactly: the result is byte for byte one uninterrupted export.
#include "clients/export/export.h"

#include <google/protobuf/util/json_util.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/struct.pb.h"
#include "gtest/gtest.h"
#include "sync/event_codec.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

using clients::ExportEvents;
using clients::ExportFormat;
using clients::ExportOptions;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

class ExportTest : public SyncWorld {
 protected:
  void SetUp() override {
    SyncWorld::SetUp();
    out_dir_ = absl::StrCat(dir_, "-export");
    std::filesystem::remove_all(out_dir_);
    std::filesystem::create_directories(out_dir_);
  }
  void TearDown() override {
    std::filesystem::remove_all(out_dir_);
    SyncWorld::TearDown();
  }

  ExportOptions Options(ExportFormat format, const std::string& name) {
    ExportOptions options;
    options.channel = harness().channel();
    options.bearer_token = hq_token();
    options.format = format;
    options.output_path = absl::StrCat(out_dir_, "/", name);
    options.checkpoint_path = absl::StrCat(out_dir_, "/", name, ".checkpoint");
    options.checkpoint_every = 4;
    return options;
  }

  // Registrations in both counties, visits with notes that need CSV quoting,
  // and one rejected event (a marker in the log).
  void PushEvents(int n) {
    std::vector<v1::Event> a, b;
    for (int i = 0; i < n; ++i) {
      const std::string number = absl::StrCat("E-", next_++);
      if (i % 2 == 0) {
        a.push_back(tablet().Register(RandomUuid(), kV1, number));
      } else {
        b.push_back(county_b().Register(RandomUuid(), kV4, number));
      }
    }
    MustPush(tablet(), a);
    MustPush(county_b(), b);
    MustPush(phone(), {phone().Visit(kH1, kV1, "門口有狗, 說 \"小心\"\n第二行")});
    v1::PushResponse rejected;
    ASSERT_TRUE(Push(phone(), {phone().Visit(kH3, kV2)}, &rejected).ok());
    ASSERT_TRUE(rejected.results(0).has_rejected()) << rejected.ShortDebugString();
  }

  // The events of the log, markers left out.
  std::vector<sync::LoggedEvent> LoggedEvents() {
    std::vector<sync::LoggedEvent> out;
    for (sync::LoggedEvent& event : harness().ReadLog()) {
      if (!event.is_marker()) out.push_back(std::move(event));
    }
    return out;
  }

  std::string out_dir_;
  int next_ = 0;
};

TEST_F(ExportTest, JsonlHoldsEveryEventOnceAndARerunAppendsOnlyNewEvents) {
  PushEvents(10);
  ExportOptions options = Options(ExportFormat::kJsonl, "events.jsonl");
  std::vector<uint64_t> progress_offsets;
  options.progress = [&](const clients::ExportProgress& p) {
    progress_offsets.push_back(p.last_offset);
  };
  auto first = ExportEvents(options);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->resumed);
  EXPECT_EQ(first->last_offset, Head());
  EXPECT_FALSE(progress_offsets.empty());

  PushEvents(6);
  auto second = ExportEvents(options);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->resumed);
  EXPECT_EQ(second->last_offset, Head());

  const std::vector<sync::LoggedEvent> logged = LoggedEvents();
  EXPECT_EQ(first->events_written + second->events_written, logged.size());
  std::vector<std::string> lines =
      absl::StrSplit(ReadFile(options.output_path), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), logged.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    // docs/export.md: {offset, hash, prevHash, record, event}.
    google::protobuf::Struct line;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(lines[i], &line).ok()) << lines[i];
    const auto& fields = line.fields();
    EXPECT_EQ(fields.at("offset").string_value(), absl::StrCat(logged[i].offset()));
    EXPECT_EQ(fields.at("hash").string_value(), absl::BytesToHexString(logged[i].hash()));
    EXPECT_EQ(fields.at("prevHash").string_value(), absl::BytesToHexString(logged[i].prev_hash()));
    EXPECT_EQ(fields.at("event").struct_value().fields().at("event_id").string_value(),
              logged[i].event().event_id());
    EXPECT_EQ(fields.at("record").struct_value().fields().at("actor").string_value(),
              logged[i].actor())
        << "line " << i;
  }
}

TEST_F(ExportTest, CsvHasTheDocumentedHeaderAndOneQuotedRowPerEvent) {
  PushEvents(5);
  ExportOptions options = Options(ExportFormat::kCsv, "events.csv");
  auto done = ExportEvents(options);
  ASSERT_TRUE(done.ok()) << done.status();
  const std::string csv = ReadFile(options.output_path);
  const std::string header = absl::StrCat(absl::StrJoin(clients::CsvColumns(), ","), "\r\n");
  ASSERT_TRUE(absl::StartsWith(csv, header)) << csv.substr(0, 200);
  EXPECT_EQ(header,
            "offset,received_at,event_id,device_id,device_seq,kind,subject_kind,subject_id,"
            "area_code,county_code,actor,relayed_by,hlc,adopted_hlc,hlc_flagged,device_time,lat,"
            "lng,accuracy_m,fix_time,hash,prev_hash,body\r\n")
      << "docs/export.md lists these columns";
  // Rows end in CRLF; a quoted field may hold a bare LF (none here: JSON
  // escapes the notes' line break), so rows are CRLF-separated lines.
  std::vector<std::string> rows = absl::StrSplit(csv.substr(header.size()), "\r\n",
                                                 absl::SkipEmpty());
  const std::vector<sync::LoggedEvent> logged = LoggedEvents();
  ASSERT_EQ(rows.size(), logged.size());
  EXPECT_EQ(done->events_written, logged.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_TRUE(absl::StartsWith(rows[i], absl::StrCat(logged[i].offset(), ","))) << rows[i];
  }
  // The visit with a comma and quotes in its notes: one quoted body field.
  const std::string& visit = rows.back();
  EXPECT_TRUE(absl::StrContains(visit, ",visit_recorded,household,")) << visit;
  EXPECT_TRUE(absl::StrContains(visit, ",620102001001,620102,")) << visit;
  EXPECT_TRUE(absl::StrContains(visit, R"(""notes"":""門口有狗, 說 \""小心\""\n第二行"")"))
      << visit;
}

TEST_F(ExportTest, InterruptedRunResumesExactlyWithoutLossOrDuplicate) {
  PushEvents(12);
  for (ExportFormat format : {ExportFormat::kJsonl, ExportFormat::kCsv}) {
    const std::string name = format == ExportFormat::kCsv ? "cut.csv" : "cut.jsonl";
    ExportOptions options = Options(format, name);
    // A first run stops after 5 events (checkpointed); then a crash is
    // simulated: half a row written after the checkpoint, never counted.
    options.max_events = 5;
    auto partial = ExportEvents(options);
    ASSERT_TRUE(partial.ok()) << partial.status();
    EXPECT_EQ(partial->events_written, 5u);
    {
      std::ofstream out(options.output_path, std::ios::app | std::ios::binary);
      out << "{\"offset\":\"99999\",\"half a line of an interrupted run";
    }
    options.max_events = 0;
    auto rest = ExportEvents(options);
    ASSERT_TRUE(rest.ok()) << rest.status();
    EXPECT_TRUE(rest->resumed);

    // The same export in one uninterrupted run.
    ExportOptions whole = Options(format, absl::StrCat("whole-", name));
    auto once = ExportEvents(whole);
    ASSERT_TRUE(once.ok()) << once.status();
    EXPECT_EQ(partial->events_written + rest->events_written, once->events_written);
    EXPECT_EQ(ReadFile(options.output_path), ReadFile(whole.output_path)) << name;
  }
}

TEST_F(ExportTest, MisuseIsRefusedWithAPreciseStatus) {
  PushEvents(2);
  ExportOptions options = Options(ExportFormat::kJsonl, "misuse.jsonl");
  ASSERT_TRUE(ExportEvents(options).ok());

  // The checkpoint of a JSONL export does not continue as CSV.
  ExportOptions csv = options;
  csv.format = ExportFormat::kCsv;
  EXPECT_EQ(ExportEvents(csv).status().code(), absl::StatusCode::kFailedPrecondition);

  // An output written by some other run, without its checkpoint.
  ExportOptions orphan = options;
  orphan.checkpoint_path = absl::StrCat(out_dir_, "/other.checkpoint");
  EXPECT_EQ(ExportEvents(orphan).status().code(), absl::StatusCode::kFailedPrecondition);

  // An output shorter than its checkpoint says.
  std::filesystem::resize_file(options.output_path, 3);
  EXPECT_EQ(ExportEvents(options).status().code(), absl::StatusCode::kDataLoss);

  ExportOptions fresh = Options(ExportFormat::kJsonl, "token.jsonl");
  fresh.bearer_token = "not-a-token";
  EXPECT_EQ(ExportEvents(fresh).status().code(), absl::StatusCode::kUnauthenticated);
  ExportOptions cadre = Options(ExportFormat::kJsonl, "cadre.jsonl");
  cadre.bearer_token = phone().token();
  EXPECT_EQ(ExportEvents(cadre).status().code(), absl::StatusCode::kPermissionDenied);

  ExportOptions both = Options(ExportFormat::kJsonl, "both.jsonl");
  std::ostringstream stream;
  both.output = &stream;
  EXPECT_EQ(ExportEvents(both).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(clients::ParseExportFormat("xml").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ExportTest, StreamOutputGetsTheSameLinesAsAFile) {
  PushEvents(4);
  ExportOptions to_file = Options(ExportFormat::kJsonl, "file.jsonl");
  ASSERT_TRUE(ExportEvents(to_file).ok());
  ExportOptions to_stream = Options(ExportFormat::kJsonl, "stream.jsonl");
  std::ostringstream stream;
  to_stream.output_path.clear();
  to_stream.output = &stream;
  auto done = ExportEvents(to_stream);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(stream.str(), ReadFile(to_file.output_path));
}

}  // namespace
}  // namespace fieldsync::testing
