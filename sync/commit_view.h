// What the engine's two commit paths (pushes, sync_engine.cc; server-made
// events, server_events.cc) share inside the store's commit. Internal to
// sync/: nothing outside the engine writes these keys.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fieldsync/v1/event.pb.h"
#include "storage/event_store.h"
#include "storage/write_overlay.h"
#include "sync/merge_policy.h"

namespace fieldsync::sync {

// A ProjectionView that buffers a Merge's writes so that a rejection can drop
// them; reads see the buffer first, then the commit context. Committer thread
// only; valid while its CommitContext is.
class BufferedView : public ProjectionView {
 public:
  explicit BufferedView(storage::CommitContext& context) : context_(context) {}

  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) override;
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Nearest(
      std::string_view prefix, std::string_view key, bool forward) override;
  void Put(std::string_view key, std::string_view value) override;
  void Delete(std::string_view key) override;
  // Writes the buffered writes into the commit context.
  void Flush();

 private:
  storage::CommitContext& context_;
  storage::WriteOverlay writes_;
};

// The ProjectionView of a CommitContext itself: writes go straight into the
// commit (for a prepare hook that never rejects, as the tests' and
// benchmarks' loaders).
class ContextView final : public ProjectionView {
 public:
  explicit ContextView(storage::CommitContext& context) : context_(context) {}
  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) override {
    return context_.Get(key);
  }
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Nearest(
      std::string_view prefix, std::string_view key, bool forward) override {
    return context_.Nearest(prefix, key, forward);
  }
  void Put(std::string_view key, std::string_view value) override { context_.Put(key, value); }
  void Delete(std::string_view key) override { context_.Delete(key); }

 private:
  storage::CommitContext& context_;
};

// Records the subject of `event` in the subject index (sync/subj, sync/area;
// see sync_keys.h) unless it is there already, so that pull snapshots and
// scope changes find it. Every appended event goes through it.
absl::Status IndexSubject(storage::CommitContext& context, const v1::Event& event);

// The last device_seq of `device_id` from its stored high-water mark
// (sync/dev/<device_id>; nullopt: none yet, 0). DATA_LOSS for a value that is
// not 8 bytes: sequencing must never silently restart from 1 (the device's
// next event would reuse numbers its earlier events hold).
absl::StatusOr<uint64_t> LastDeviceSeq(const std::optional<std::string>& mark,
                                       std::string_view device_id);

}  // namespace fieldsync::sync
