// SyncEngine's entry for server-made events (admin changes), and the commit
// helpers both of its append paths share (commit_view.h). A server event
// takes the same path as a pushed one: one AppendEntry per event whose
// prepare hook, on the committer thread and in log order, takes the signer's
// next number from the engine's high-water mark, ticks the engine's HLC,
// signs, runs the server's own projection writes, merges through the
// policy and indexes the subject, all in the push's group commit.
#include <sodium.h>

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "base/big_endian.h"
#include "base/status_macros.h"
#include "base/time.h"
#include "storage/sha256.h"
#include "sync/commit_view.h"
#include "sync/event_codec.h"
#include "sync/sync_engine.h"
#include "sync/sync_keys.h"

namespace fieldsync::sync {
namespace {

// A random RFC 4122 version 4 UUID, lowercase (the envelope check of pushed
// events asks the same of devices).
std::string NewEventId() {
  unsigned char b[16];
  randombytes_buf(b, sizeof b);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  const std::string hex = storage::ToHex(std::string(reinterpret_cast<char*>(b), sizeof b));
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-",
                      hex.substr(16, 4), "-", hex.substr(20));
}

}  // namespace

absl::StatusOr<std::optional<std::string>> BufferedView::Get(std::string_view key) {
  if (auto it = writes_.find(key); it != writes_.end()) return it->second;
  return context_.Get(key);
}

absl::StatusOr<std::optional<std::pair<std::string, std::string>>> BufferedView::Nearest(
    std::string_view prefix, std::string_view key, bool forward) {
  return storage::NearestThrough(writes_, prefix, key, forward, [&](std::string_view cursor) {
    return context_.Nearest(prefix, cursor, forward);
  });
}

void BufferedView::Put(std::string_view key, std::string_view value) {
  writes_[std::string(key)] = std::string(value);
}

void BufferedView::Delete(std::string_view key) { writes_[std::string(key)] = std::nullopt; }

void BufferedView::Flush() {
  for (auto& [key, value] : writes_) {
    if (value) {
      context_.Put(key, *value);
    } else {
      context_.Delete(key);
    }
  }
  writes_.clear();
}

absl::Status IndexSubject(storage::CommitContext& context, const v1::Event& event) {
  if (!event.has_subject()) return absl::OkStatus();
  const std::string subject_key = SubjectKey(event.subject());
  ASSIGN_OR_RETURN(std::optional<std::string> known, context.Get(sync_keys::Subject(subject_key)));
  if (known) return absl::OkStatus();
  context.Put(sync_keys::Subject(subject_key), event.area_code());
  if (!event.area_code().empty()) {
    context.Put(sync_keys::Area(event.area_code(), subject_key), "");
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> LastDeviceSeq(const std::optional<std::string>& mark,
                                       std::string_view device_id) {
  if (!mark.has_value()) return 0;
  if (mark->size() != 8) {
    return absl::DataLossError(absl::StrCat("the high-water mark of device ", std::string(device_id), " (",
                                            sync_keys::Device(device_id), ") holds ", mark->size(),
                                            " bytes, not 8: the store is corrupt"));
  }
  return *base::ParseBe64(*mark);
}

// The state of one AppendServerEventsAsync, shared by its prepare hooks and
// its completion.
class SyncEngine::ServerAppend {
 public:
  ServerAppend(SyncEngine* engine, const EventSigner& signer, std::vector<ServerEvent> events)
      : engine_(engine), signer_(signer), events_(std::move(events)), stored_(events_.size()) {}

  std::vector<storage::AppendEntry> Entries(const std::shared_ptr<ServerAppend>& self) {
    std::vector<storage::AppendEntry> entries;
    entries.reserve(events_.size());
    for (size_t i = 0; i < events_.size(); ++i) {
      v1::Event& event = events_[i].event;
      event.set_event_id(NewEventId());
      event.set_device_id(signer_.device_id());
      storage::AppendEntry entry;
      entry.event_id = LogEventId(event.device_id(), event.event_id());
      entry.subject = SubjectKey(event.subject());
      entry.area_code = event.area_code();
      // A placeholder payload: the hook writes the real one. (Assigned as a
      // count and char: GCC 12 at -O3 reports a false -Werror=restrict on
      // the assignment of a one-character literal here.)
      entry.payload.assign(1, '-');
      entry.prepare = [self, i](storage::CommitContext& context) {
        return self->Prepare(i, context);
      };
      entries.push_back(std::move(entry));
    }
    return entries;
  }

  absl::StatusOr<std::vector<LoggedEvent>> Finish(
      absl::StatusOr<std::vector<storage::AppendResult>> results) {
    if (!results.ok()) return std::move(results).status();
    for (size_t i = 0; i < stored_.size(); ++i) stored_[i].offset_ = (*results)[i].offset;
    return std::move(stored_);
  }

 private:
  // Committer thread, in log order.
  absl::Status Prepare(size_t index, storage::CommitContext& context) {
    const ServerEvent& server_event = events_[index];
    LoggedEvent& logged = stored_[index];
    v1::StoredEvent& stored = logged.stored;
    logged.parsed = server_event.event;
    v1::Event& event = logged.parsed;

    // The signer is a device like any other: its numbers come from the same
    // high-water mark pushes check, so a relayed copy of its events is judged
    // against them too.
    ASSIGN_OR_RETURN(std::optional<std::string> mark,
                     context.Get(sync_keys::Device(event.device_id())));
    ASSIGN_OR_RETURN(uint64_t last, LastDeviceSeq(mark, event.device_id()));
    last = std::max(last, signer_.sequence_floor());
    event.set_device_seq(last + 1);
    const absl::Time now = engine_->Now();
    event.set_hlc(engine_->hlc_.Tick());
    *event.mutable_device_time() = base::ToTimestamp(now);
    // The node is a device like any other: it encodes its event once and
    // signs those bytes, which the log keeps verbatim.
    stored.set_event(DeterministicBytes(event));
    ASSIGN_OR_RETURN(std::string signature, signer_.Sign(stored.event()));
    stored.set_signature(std::move(signature));
    *stored.mutable_received_at() = base::ToTimestamp(now);
    stored.set_actor(server_event.actor);
    stored.set_adopted_hlc(event.hlc());
    logged.offset_ = context.offset();

    if (server_event.apply) RETURN_IF_ERROR(server_event.apply(context, logged));

    EventMeta meta;
    meta.author.actor = server_event.actor;
    meta.author.role = server_event.actor_role;
    meta.author.device_id = event.device_id();
    meta.offset = context.offset();
    meta.adopted_hlc = event.hlc();
    meta.received_at = now;
    BufferedView view(context);
    ASSIGN_OR_RETURN(MergeResult merge, engine_->policy_->Merge(event, meta, view));
    if (merge.rejection.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the domain refuses ", merge.rejection->field, ": ", merge.rejection->message, " (",
          v1::RejectionCode_Name(merge.rejection->code), ")"));
    }
    view.Flush();
    for (v1::WriteOutcome& write : merge.writes) *stored.add_writes() = std::move(write);

    RETURN_IF_ERROR(IndexSubject(context, event));
    context.Put(sync_keys::Device(event.device_id()), base::Be64(event.device_seq()));
    context.Put(sync_keys::EventId(event.event_id(), event.device_id()),
                base::Be64(context.offset()));
    context.payload() = EncodePayload(stored);
    return absl::OkStatus();
  }

  SyncEngine* const engine_;
  const EventSigner& signer_;
  std::vector<ServerEvent> events_;
  // Filled by the prepare hooks, handed to `done` after the commit.
  std::vector<LoggedEvent> stored_;
};

void SyncEngine::AppendServerEventsAsync(const EventSigner& signer, std::vector<ServerEvent> events,
                                         ServerEventsCallback done) {
  if (events.empty()) {
    done(std::vector<LoggedEvent>{});
    return;
  }
  auto run = std::make_shared<ServerAppend>(this, signer, std::move(events));
  std::vector<storage::AppendEntry> entries = run->Entries(run);
  store_->AppendAsync(std::move(entries),
                      [run, done = std::move(done)](
                          absl::StatusOr<std::vector<storage::AppendResult>> results) mutable {
                        done(run->Finish(std::move(results)));
                      });
}

absl::StatusOr<std::vector<LoggedEvent>> SyncEngine::AppendServerEvents(
    const EventSigner& signer, std::vector<ServerEvent> events) {
  absl::Notification finished;
  absl::StatusOr<std::vector<LoggedEvent>> out;
  AppendServerEventsAsync(signer, std::move(events),
                          [&](absl::StatusOr<std::vector<LoggedEvent>> result) {
                            out = std::move(result);
                            finished.Notify();
                          });
  finished.WaitForNotification();
  return out;
}

}  // namespace fieldsync::sync
