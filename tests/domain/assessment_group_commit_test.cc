// The assessment aggregates over the real store's group commit: the accepted
// log of a random world (tests/domain/assessment_world.h) is appended again to
// a RocksDB store in groups of random size (one Append call per group, every
// Merge on the committer thread reading the earlier writes of its group
// through the store's overlay), and the aggregates it ends with must equal,
// byte for byte, the ones of the event-by-event fold, which equal a
// recomputation from the final records. Groups hold several visits of one
// cadre, corrections that move a visit past another (so the next visit's
// IMPOSSIBLE_TRAVEL predecessor changes) and withdrawals.
#include <memory>

#include "storage/event_store.h"
#include "sync/commit_view.h"
#include "sync/store_reader.h"
#include "tests/domain/assessment_world.h"
#include "tests/storage/test_util.h"

namespace fieldsync::domain::assessment {
namespace {

std::map<std::string, std::string> DomainProjections(const storage::EventStore& store) {
  std::map<std::string, std::string> out;
  sync::StoreProjectionReader reader(&store);
  std::string after;
  while (true) {
    auto batch = reader.Scan("dom/", after, 1000);
    EXPECT_TRUE(batch.ok()) << batch.status();
    if (!batch.ok() || batch->empty()) break;
    for (auto& [key, value] : *batch) {
      after = key;
      out[key] = std::move(value);
    }
  }
  return out;
}

TEST(AssessmentGroupCommitTest, GroupCommitsKeepTheSameAggregatesAsOneEventAtATime) {
  size_t groups_with_two_visits_of_a_cadre = 0, groups_with_a_correction = 0;
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::mt19937 rng(seed);
    World w;
    BuildRandomWorld(w, rng);
    ASSERT_FALSE(HasFatalFailure());
    const AssessmentOptions options = w.policy.options().assessment;

    storage::test::ScopedTempDir dir;
    auto opened = storage::OpenEventStore(dir.path() + "/store");
    ASSERT_TRUE(opened.ok()) << opened.status();
    std::unique_ptr<storage::EventStore> store = *std::move(opened);
    size_t next = 0;
    while (next < w.log.size()) {
      const size_t size = std::min(w.log.size() - next, size_t{1} + rng() % 24);
      std::vector<storage::AppendEntry> entries;
      std::map<std::string, int> visits_of;
      bool correction = false;
      for (size_t i = next; i < next + size; ++i) {
        const v1::Event& event = w.log[i];
        const sync::EventMeta& meta = w.metas[i];
        if (event.has_visit_recorded()) ++visits_of[meta.author.actor];
        if (event.has_visit_corrected()) correction = true;
        storage::AppendEntry entry;
        entry.event_id = absl::StrCat(event.device_id(), "/", event.event_id(), "/", i);
        entry.payload = event.SerializeAsString();
        entry.prepare = [&w, &event, &meta](storage::CommitContext& ctx) -> absl::Status {
          // The fold's offsets are the store's: both count from 1.
          EXPECT_EQ(ctx.offset(), meta.offset);
          sync::BufferedView view(ctx);
          absl::StatusOr<sync::MergeResult> result = w.policy.Merge(event, meta, view);
          if (!result.ok()) return result.status();
          EXPECT_FALSE(result->rejection.has_value()) << event.event_id();
          view.Flush();
          return absl::OkStatus();
        };
        entries.push_back(std::move(entry));
      }
      for (const auto& [actor, n] : visits_of) {
        if (n >= 2) {
          ++groups_with_two_visits_of_a_cadre;
          if (correction) ++groups_with_a_correction;
          break;
        }
      }
      absl::StatusOr<std::vector<storage::AppendResult>> done = store->Append(std::move(entries));
      ASSERT_TRUE(done.ok()) << done.status();
      next += size;
    }
    const std::map<std::string, std::string> grouped = DomainProjections(*store);
    std::map<std::string, std::string> folded;
    for (const auto& [key, value] : w.store.data()) {
      if (key.rfind("dom/", 0) == 0) folded[key] = value;
    }
    ASSERT_EQ(grouped.size(), folded.size());
    for (const auto& [key, value] : folded) {
      auto it = grouped.find(key);
      ASSERT_NE(it, grouped.end()) << key;
      EXPECT_EQ(it->second, value) << key;
    }
    CheckAgainstRecords(grouped, options);
    if (HasFailure()) break;
  }
  // The groups did hold what the test is about.
  EXPECT_GT(groups_with_two_visits_of_a_cadre, 20u);
  EXPECT_GT(groups_with_a_correction, 5u);
}

}  // namespace
}  // namespace fieldsync::domain::assessment
