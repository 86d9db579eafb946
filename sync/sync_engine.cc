// SyncEngine: see sync_engine.h for the contract and docs/sync.md for the
// protocol.
//
// Push runs in two phases.
//  1. On the calling thread (PushRun::Plan): limits, the replay checks
//     (stored rejections by content hash, the signer's event ids in the log),
//     the device and its signature, sequencing against the committed
//     high-water marks, the envelope, the signer's role and scope, the
//     policy's stateless validation, references and the client clock.
//     Everything that decides an authenticated event is its signer's (role,
//     scope, sequence, event ids): the pushing device is transport, so
//     nothing that depends on who pushed is ever remembered for the event.
//     Each event becomes a plan item: a duplicate or a replayed rejection
//     (nothing to write), a rejection, or an acceptance.
//  2. In the store's commit, on the committer thread, in log order: every
//     rejection and every acceptance is one AppendEntry whose prepare hook
//     re-checks the device's high-water mark (another push may have moved it
//     meanwhile), merges through the MergePolicy, writes the projections and
//     fills StoredEvent.writes. A state-dependent rejection from the policy
//     turns the entry into a rejection marker in place.
// Rejections need projection writes (the record, the device's sequence) but
// the store writes projections only with a log record, so a rejection is a
// body-less marker record (sync/event_codec.h IsRejectionMarker) that readers
// skip.
#include "sync/sync_engine.h"

#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <deque>
#include <set>
#include <unordered_map>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "base/area_code.h"
#include "base/big_endian.h"
#include "base/status_macros.h"
#include "base/text.h"
#include "base/time.h"
#include "google/protobuf/reflection.h"
#include "storage/sha256.h"
#include "sync/commit_view.h"
#include "sync/event_codec.h"
#include "sync/sync_keys.h"

namespace fieldsync::sync {
namespace {

// `s` with every byte that starts no well-formed UTF-8 sequence replaced by
// U+FFFD.
std::string ValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t code_point = 0;
    const size_t length = base::Utf8SequenceLength(s, i, &code_point);
    if (length == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, length));
      i += length;
    }
  }
  return out;
}

// Makes every string field of `message` (nested, repeated, map entries) valid
// UTF-8. A rejection record copies claims out of bytes that may not parse
// (ParseEventBytes's envelope): protobuf serializes a string that is not
// UTF-8 but refuses to parse it back, so the record would be unreadable and
// the replay of the same bytes, or ListRejections, DATA_LOSS.
void RepairUtf8(google::protobuf::Message& message) {
  const google::protobuf::Reflection* reflection = message.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const google::protobuf::FieldDescriptor* field : fields) {
    if (field->type() == google::protobuf::FieldDescriptor::TYPE_STRING) {
      if (field->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
          const std::string value = reflection->GetRepeatedString(message, field, i);
          if (!base::IsValidUtf8(value)) {
            reflection->SetRepeatedString(&message, field, i, ValidUtf8(value));
          }
        }
      } else {
        const std::string value = reflection->GetString(message, field);
        if (!base::IsValidUtf8(value)) reflection->SetString(&message, field, ValidUtf8(value));
      }
    } else if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
          RepairUtf8(*reflection->MutableRepeatedMessage(&message, field, i));
        }
      } else {
        RepairUtf8(*reflection->MutableMessage(&message, field));
      }
    }
  }
}

constexpr size_t kSignatureBytes = crypto_sign_BYTES;
constexpr size_t kPublicKeyBytes = crypto_sign_PUBLICKEYBYTES;
constexpr size_t kMaxEventIdBytes = 128;
constexpr size_t kMaxSubjectIdBytes = 256;
constexpr size_t kMaxDeviceIdBytes = 128;
constexpr std::string_view kMarkerIdPrefix = "~rej/";
// The store's max_event_id_bytes: LogEventId keys must fit.
constexpr size_t kMaxLogEventIdBytes = 128;

// "hq_analyst" for ROLE_HQ_ANALYST, for messages.
std::string RoleName(v1::Role role) {
  std::string name = v1::Role_Name(role);
  if (name.rfind("ROLE_", 0) == 0) name = name.substr(5);
  if (name.empty()) return absl::StrCat(static_cast<int>(role));
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return name;
}

// Printable ASCII without '/' (device ids are server-made).
bool IsValidDeviceId(std::string_view s) {
  if (s.empty() || s.size() > kMaxDeviceIdBytes) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c < 0x7f && c != '/'; });
}

std::optional<Rejection> CheckLocation(const v1::Location& location, const std::string& field) {
  auto bad = [&field](std::string message) {
    return Rejection{v1::REJECTION_CODE_INVALID_VALUE, field, std::move(message)};
  };
  if (!std::isfinite(location.lat()) || location.lat() < -90 || location.lat() > 90) {
    return bad("latitude must be within [-90, 90]");
  }
  if (!std::isfinite(location.lng()) || location.lng() < -180 || location.lng() > 180) {
    return bad("longitude must be within [-180, 180]");
  }
  if (!std::isfinite(location.accuracy_m()) || location.accuracy_m() < 0) {
    return bad("accuracy must be a non-negative number");
  }
  return std::nullopt;
}

// The envelope checks that need no state (docs/sync.md "Envelope"). Which
// subject kinds and area codes are valid is the policy's to say.
std::optional<Rejection> CheckEnvelope(const v1::Event& event, const MergePolicy& policy) {
  auto malformed = [](std::string field, std::string message) {
    return Rejection{v1::REJECTION_CODE_MALFORMED, std::move(field), std::move(message)};
  };
  if (!base::IsUuid(event.event_id())) {
    return malformed("event_id", "event_id must be a lowercase RFC 4122 UUID");
  }
  if (event.hlc() == 0) return malformed("hlc", "hlc is required");
  if (!event.has_device_time()) return malformed("device_time", "device_time is required");
  if (!base::IsValidTimestamp(event.device_time())) {
    return Rejection{v1::REJECTION_CODE_INVALID_VALUE, "device_time", "device_time out of range"};
  }
  if (event.body_case() == v1::Event::BODY_NOT_SET) {
    return malformed("body", "no body this server knows");
  }
  if (!event.has_subject() || event.subject().kind() == v1::SUBJECT_KIND_UNSPECIFIED ||
      event.subject().id().empty()) {
    return malformed("subject", "subject (kind and id) is required");
  }
  if (!v1::SubjectKind_IsValid(event.subject().kind()) ||
      !policy.IsEventSubjectKind(event.subject().kind())) {
    return Rejection{v1::REJECTION_CODE_SUBJECT_MISMATCH, "subject.kind",
                     "this subject kind is never an event subject"};
  }
  const std::string& id = event.subject().id();
  if (id.size() > kMaxSubjectIdBytes ||
      std::any_of(id.begin(), id.end(), [](char c) { return c == '\0' || c == '/'; })) {
    return Rejection{v1::REJECTION_CODE_INVALID_VALUE, "subject.id",
                     "subject id is too long or contains '/' or NUL"};
  }
  if (std::optional<std::string> wrong = policy.CheckAreaCode(event.area_code())) {
    return Rejection{v1::REJECTION_CODE_INVALID_VALUE, "area_code", *std::move(wrong)};
  }
  if (event.has_location()) {
    if (auto r = CheckLocation(event.location(), "location")) return r;
  }
  return std::nullopt;
}

// Why a commit found a device_seq gap the checks before it did not: another
// push cannot lower a high-water mark, so this is a defect, never the device's.
absl::Status CommitGapStatus(const std::string& device_id, uint64_t expected, uint64_t got) {
  return absl::InternalError(absl::StrCat("device ", device_id, ": device_seq ", got,
                                          " found a gap at commit; next expected was ", expected));
}

v1::PushResult RejectedResult(const v1::RejectionRecord& record) {
  v1::PushResult result;
  v1::Rejected* rejected = result.mutable_rejected();
  rejected->set_code(record.code());
  rejected->set_field(record.field());
  rejected->set_message(record.message());
  return result;
}

}  // namespace

// ---------------------------------------------------------------------------
// Push

// The state of one push, shared by its prepare hooks and its completion.
class SyncEngine::PushRun : public std::enable_shared_from_this<SyncEngine::PushRun> {
 public:
  PushRun(SyncEngine* engine, PushContext context, std::vector<v1::SignedEvent> events,
          PushCallback done)
      : engine_(engine),
        context_(std::move(context)),
        signed_(std::move(events)),
        done_(std::move(done)) {}

  // Plans, then appends; `done_` is called exactly once.
  void Start() {
    absl::Status planned = Plan();
    if (!planned.ok()) {
      Finish(planned);
      return;
    }
    std::vector<storage::AppendEntry> entries;
    for (size_t i = 0; i < items_.size(); ++i) {
      Item& item = items_[i];
      if (item.kind == Item::kAccepted) {
        item.entry_index = entries.size();
        entries.push_back(AcceptedEntry(i));
      } else if (item.kind == Item::kRejected) {
        item.entry_index = entries.size();
        entries.push_back(RejectionEntry(i));
      }
    }
    if (entries.empty()) {
      Finish(std::vector<storage::AppendResult>{});
      return;
    }
    std::shared_ptr<PushRun> self = shared_from_this();
    engine_->store_->AppendAsync(
        std::move(entries), [self](absl::StatusOr<std::vector<storage::AppendResult>> results) {
          self->Finish(std::move(results));
        });
  }

 private:
  struct Item {
    enum Kind { kDuplicate, kReplayedRejection, kRejected, kAccepted, kMirror, kHeld };
    Kind kind = kAccepted;
    std::string content_hash;
    // kDuplicate: the committed offset. kMirror: the earlier item with the
    // same content in this push.
    uint64_t duplicate_offset = 0;
    size_t mirror_of = 0;
    // kRejected and kReplayedRejection.
    v1::RejectionRecord rejection;
    // kRejected: the rejection advances the device's sequence.
    bool advances = false;
    // kHeld: what the device must send next, and why.
    uint64_t held_expected = 0;
    std::string held_reason;
    // kAccepted.
    Author author;
    uint64_t adopted_hlc = 0;
    bool hlc_flagged = false;
    std::vector<std::string> pending_blobs;
    // Set by the prepare hook (committer thread) and read after the commit.
    size_t entry_index = 0;
    bool converted = false;  // The hook turned the acceptance into a rejection.
    MergeResult merge;
  };

  absl::Status Plan();
  absl::StatusOr<uint64_t> Expected(const std::string& device_id);
  absl::StatusOr<std::optional<DeviceInfo>> LookupDevice(const std::string& device_id);
  absl::StatusOr<std::optional<Scope>> ScopeOfUser(const std::string& user_id);
  absl::StatusOr<std::optional<Rejection>> CheckReferences(size_t index, const Author& author,
                                                           Item& item);
  // Where the subject of `event` really lives (SyncOptions::subject_area), or
  // why the server cannot place it.
  struct Placement {
    std::string area;
    std::optional<Rejection> rejection;
    // The event brings its subject into being here (MergePolicy::CreatesSubject).
    bool creates = false;
  };
  absl::StatusOr<Placement> RealArea(const v1::Event& event);
  v1::RejectionRecord MakeRecord(const v1::Event& event, const Rejection& rejection,
                                 const std::string& actor, bool keep_event) const;
  v1::RejectionRecord MakeUnprovenRecord(const v1::Event& event, const Rejection& rejection,
                                         bool keep_event) const;
  storage::AppendEntry AcceptedEntry(size_t index);
  storage::AppendEntry RejectionEntry(size_t index);
  absl::Status PrepareAccepted(size_t index, storage::CommitContext& context);
  absl::Status PrepareRejection(size_t index, storage::CommitContext& context);
  void WriteRejection(storage::CommitContext& context, Item& item, const v1::Event& event);
  void Finish(absl::StatusOr<std::vector<storage::AppendResult>> results);

  SyncEngine* const engine_;
  const PushContext context_;
  // The events as received, and each one's Event parsed from its bytes (empty
  // when they do not parse): Plan fills events_.
  const std::vector<v1::SignedEvent> signed_;
  std::vector<v1::Event> events_;
  PushCallback done_;

  absl::Time received_at_;
  google::protobuf::Timestamp received_at_proto_;
  std::vector<Item> items_;
  std::map<std::string, uint64_t> expected_;  // Next expected device_seq by device.
  std::map<std::string, std::optional<DeviceInfo>> devices_;
  std::map<std::string, std::optional<Scope>> user_scopes_;
  std::unordered_map<std::string, size_t> ids_;  // LogEventId → first item with it.
  // event_id → the items accepted so far with it (any signer), in order.
  std::unordered_map<std::string, std::vector<size_t>> accepted_ids_;
  // Subject key → area of subjects created by an earlier acceptance of this
  // push (not in the server's records until the commit).
  std::unordered_map<std::string, std::string> created_areas_;
  std::unordered_map<std::string, size_t> hashes_;  // content hash → first item.
};

absl::StatusOr<uint64_t> SyncEngine::PushRun::Expected(const std::string& device_id) {
  if (auto it = expected_.find(device_id); it != expected_.end()) return it->second;
  ASSIGN_OR_RETURN(std::optional<std::string> hwm,
                   engine_->store_->GetProjection(sync_keys::Device(device_id)));
  ASSIGN_OR_RETURN(const uint64_t last, LastDeviceSeq(hwm, device_id));
  const uint64_t next = last + 1;
  expected_[device_id] = next;
  return next;
}

absl::StatusOr<std::optional<DeviceInfo>> SyncEngine::PushRun::LookupDevice(
    const std::string& device_id) {
  if (auto it = devices_.find(device_id); it != devices_.end()) return it->second;
  ASSIGN_OR_RETURN(std::optional<DeviceInfo> info, engine_->keys_->Lookup(device_id));
  devices_[device_id] = info;
  return info;
}

absl::StatusOr<std::optional<Scope>> SyncEngine::PushRun::ScopeOfUser(const std::string& user_id) {
  if (!context_.scope_of_user) return std::optional<Scope>();
  if (auto it = user_scopes_.find(user_id); it != user_scopes_.end()) return it->second;
  ASSIGN_OR_RETURN(Scope scope, context_.scope_of_user(user_id));
  user_scopes_[user_id] = Normalize(scope);
  return user_scopes_[user_id];
}

v1::RejectionRecord SyncEngine::PushRun::MakeRecord(const v1::Event& event,
                                                    const Rejection& rejection,
                                                    const std::string& actor,
                                                    bool keep_event) const {
  v1::RejectionRecord record;
  record.set_event_id(event.event_id());
  record.set_device_id(event.device_id());
  record.set_device_seq(event.device_seq());
  record.set_code(rejection.code);
  record.set_field(rejection.field);
  record.set_message(rejection.message);
  *record.mutable_received_at() = received_at_proto_;
  record.set_actor(actor);
  if (event.device_id() != context_.device_id) record.set_relayed_by(context_.device_id);
  record.set_kind(static_cast<v1::EventKind>(event.body_case()));
  if (event.has_subject()) *record.mutable_subject() = event.subject();
  record.set_area_code(event.area_code());
  if (keep_event) *record.mutable_event() = event;
  return record;
}

v1::RejectionRecord SyncEngine::PushRun::MakeUnprovenRecord(const v1::Event& event,
                                                            const Rejection& rejection,
                                                            bool keep_event) const {
  // Nothing proves who made the event, so nothing it claims (device, subject,
  // area) may file the record: it is the pushing device's, listed to its user
  // and to the supervisors of its user's area, and the claims stay inside
  // `event` as evidence. Otherwise anyone could plant text in another area's
  // or another device's list.
  v1::RejectionRecord record;
  record.set_event_id(event.event_id());
  record.set_device_id(context_.device_id);
  record.set_device_seq(event.device_seq());
  record.set_code(rejection.code);
  record.set_field(rejection.field);
  record.set_message(rejection.message);
  *record.mutable_received_at() = received_at_proto_;
  record.set_actor(context_.actor);
  record.set_kind(static_cast<v1::EventKind>(event.body_case()));
  record.mutable_subject()->set_kind(v1::SUBJECT_KIND_DEVICE);
  record.mutable_subject()->set_id(context_.device_id);
  record.set_area_code(context_.area_code);
  record.set_unproven_origin(true);
  if (keep_event) *record.mutable_event() = event;
  return record;
}

absl::StatusOr<SyncEngine::PushRun::Placement> SyncEngine::PushRun::RealArea(
    const v1::Event& event) {
  Placement placed;
  const auto& subject_area = engine_->options_.subject_area;
  if (!subject_area) {
    placed.area = event.area_code();
    return placed;
  }
  ASSIGN_OR_RETURN(std::optional<std::string> known, subject_area(event.subject()));
  if (known) {
    placed.area = *std::move(known);
    return placed;
  }
  const std::string subject_key = SubjectKey(event.subject());
  if (auto it = created_areas_.find(subject_key); it != created_areas_.end()) {
    placed.area = it->second;
    return placed;
  }
  if (engine_->policy_->CreatesSubject(event)) {
    // A new subject lives where its creation says, if the subject it is
    // created in (the policy names it) is known there.
    if (std::optional<v1::SubjectRef> home = engine_->policy_->HomeOfCreatedSubject(event)) {
      ASSIGN_OR_RETURN(std::optional<std::string> home_area, subject_area(*home));
      if (!home_area || *home_area != event.area_code()) {
        placed.rejection = Rejection{
            v1::REJECTION_CODE_UNKNOWN_REFERENCE, "area_code",
            absl::StrCat("area_code ", event.area_code(), " is not a ",
                         SubjectKindName(home->kind()), " the server knows")};
        return placed;
      }
    }
    placed.area = event.area_code();
    placed.creates = true;
    return placed;
  }
  // A village or area subject is its own area code (the envelope check):
  // one the imported tree lacks (at the subject's level) is a reference to
  // nothing, named by the code.
  if (event.subject().kind() == v1::SUBJECT_KIND_VILLAGE ||
      event.subject().kind() == v1::SUBJECT_KIND_AREA) {
    placed.rejection = Rejection{
        v1::REJECTION_CODE_UNKNOWN_REFERENCE, "area_code",
        absl::StrCat("area_code ", event.area_code(), " is not ",
                     event.subject().kind() == v1::SUBJECT_KIND_VILLAGE
                         ? "a village"
                         : "an area (other than a village)",
                     " the server knows")};
    return placed;
  }
  placed.rejection = Rejection{v1::REJECTION_CODE_UNKNOWN_SUBJECT, "subject",
                               absl::StrCat(subject_key, " is not known to the server")};
  return placed;
}

absl::StatusOr<std::optional<Rejection>> SyncEngine::PushRun::CheckReferences(size_t index,
                                                                              const Author& author,
                                                                              Item& item) {
  const v1::Event& event = events_[index];
  const References refs = engine_->policy_->ReferencesOf(event);
  for (const References::EventRef& ref : refs.events) {
    // Event ids are unique per signing device only, so a reference names a
    // set of candidates: the accepted events with that id, in log order
    // (committed ones, then earlier ones of this push). A required reference
    // resolves to the first candidate the policy accepts; if none fits, the
    // first candidate's refusal is the answer. So a device that takes someone
    // else's event_id for an event of its own can never hide the real one.
    struct Candidate {
      LoggedEvent stored;                // A committed candidate.
      const v1::Event* event = nullptr;  // Else an event of this push.
      std::string actor;
      const v1::Event& Event() const { return event != nullptr ? *event : stored.event(); }
    };
    std::vector<Candidate> candidates;
    const std::string prefix = sync_keys::EventIdPrefix(ref.event_id);
    std::string position;
    while (true) {
      ASSIGN_OR_RETURN(auto batch, engine_->store_->ScanProjections(prefix, position, 64));
      for (const auto& [key, value] : batch) {
        position = key;
        ASSIGN_OR_RETURN(storage::LogRecord record,
                         engine_->store_->Read(base::ParseBe64(value).value_or(0)));
        Candidate candidate;
        ASSIGN_OR_RETURN(candidate.stored, DecodeRecord(record));
        if (candidate.stored.is_marker()) continue;
        candidate.actor = candidate.stored.actor();
        candidates.push_back(std::move(candidate));
      }
      if (batch.size() < 64) break;
    }
    std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
      return a.stored.offset() < b.stored.offset();
    });
    if (auto it = accepted_ids_.find(ref.event_id); it != accepted_ids_.end()) {
      for (size_t j : it->second) {
        if (j >= index) break;
        Candidate candidate;
        candidate.event = &events_[j];
        candidate.actor = items_[j].author.actor;
        candidates.push_back(std::move(candidate));
      }
    }
    if (candidates.empty()) {
      if (ref.required) {
        return Rejection{v1::REJECTION_CODE_UNKNOWN_REFERENCE, ref.field,
                         absl::StrCat("event ", ref.event_id, " is not in the log")};
      }
      // An optional reference to an event not (yet) in the log is kept as
      // the event says; nothing reads a marker of it, so none is written.
      continue;
    }
    if (!ref.required) continue;
    std::optional<Rejection> first_refusal;
    bool fits = false;
    for (const Candidate& candidate : candidates) {
      std::optional<Rejection> refusal =
          engine_->policy_->CheckReference(event, author, ref, candidate.Event(), candidate.actor);
      if (!refusal) {
        fits = true;
        break;
      }
      if (!first_refusal) first_refusal = std::move(refusal);
    }
    if (!fits) return first_refusal;
  }
  for (const References::BlobRef& blob : refs.blobs) {
    if (blob.sha256.size() != storage::kSha256Size) {
      return Rejection{v1::REJECTION_CODE_INVALID_VALUE, blob.field,
                       "a blob reference must be a 32-byte SHA-256"};
    }
    ASSIGN_OR_RETURN(storage::BlobStatus status, engine_->store_->GetBlobStatus(blob.sha256));
    if (!status.complete) item.pending_blobs.push_back(blob.sha256);
  }
  return std::optional<Rejection>();
}

absl::Status SyncEngine::PushRun::Plan() {
  const SyncOptions& options = engine_->options_;
  if (signed_.size() > options.max_push_events) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a push of ", signed_.size(), " events exceeds max_push_events ", options.max_push_events));
  }
  size_t total = 0;
  for (const v1::SignedEvent& event : signed_) total += event.event().size();
  if (total > options.max_push_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a push of ", total, " bytes exceeds max_push_bytes ", options.max_push_bytes));
  }
  received_at_ = context_.now == absl::InfinitePast() ? engine_->Now() : context_.now;
  received_at_proto_ = base::ToTimestamp(received_at_);
  const Scope caller_scope = Normalize(context_.scope);

  items_.resize(signed_.size());
  events_.resize(signed_.size());
  for (size_t i = 0; i < signed_.size(); ++i) {
    const v1::SignedEvent& received = signed_[i];
    v1::Event& event = events_[i];
    Item& item = items_[i];
    item.content_hash = EventContentHash(received.event(), received.signature());

    // The same content earlier in this push: answer what that one got.
    if (auto it = hashes_.find(item.content_hash); it != hashes_.end()) {
      item.kind = Item::kMirror;
      item.mirror_of = it->second;
      continue;
    }
    hashes_.emplace(item.content_hash, i);

    // A replay of an event refused before: the same answer, nothing written.
    ASSIGN_OR_RETURN(std::optional<std::string> replayed,
                     engine_->store_->GetProjection(sync_keys::RejectionHash(item.content_hash)));
    if (replayed) {
      ASSIGN_OR_RETURN(std::optional<std::string> record,
                       engine_->store_->GetProjection(
                           sync_keys::Rejection(base::ParseBe64(*replayed).value_or(0))));
      if (!record || !item.rejection.ParseFromString(*record)) {
        return absl::DataLossError(
            absl::StrCat("rejection record of ", storage::ToHex(item.content_hash), " is missing"));
      }
      item.kind = Item::kReplayedRejection;
      continue;
    }

    // The bytes as received: parsed once (what they claim is only a claim until
    // the signature verifies over them). Bytes that do not parse still name
    // their envelope (ParseEventBytes): if the signature proves it, the
    // refusal takes the device_seq like any other, so the device's later
    // events are judged, not held.
    std::optional<BadEventBytes> bad_bytes = ParseEventBytes(received.event(), &event);
    const bool unparseable = bad_bytes && bad_bytes->field == "event";

    // The same event already in the log: a duplicate, whatever became of its
    // device since (it was authenticated when it was appended). Ids are the
    // signer's own: only this device's earlier event can take this one's id.
    bool id_taken = false;
    const std::string log_id = LogEventId(event.device_id(), event.event_id());
    const bool log_id_valid = IsValidDeviceId(event.device_id()) && !event.event_id().empty() &&
                              event.event_id().size() <= kMaxEventIdBytes &&
                              log_id.size() <= kMaxLogEventIdBytes;
    if (log_id_valid) {
      ASSIGN_OR_RETURN(std::optional<uint64_t> offset, engine_->store_->LookupEventId(log_id));
      if (offset) {
        ASSIGN_OR_RETURN(storage::LogRecord record, engine_->store_->Read(*offset));
        ASSIGN_OR_RETURN(LoggedEvent stored, DecodeRecord(record));
        if (!stored.is_marker() &&
            EventContentHash(stored.event_bytes(), stored.signature()) == item.content_hash) {
          item.kind = Item::kDuplicate;
          item.duplicate_offset = *offset;
          ids_.emplace(log_id, i);
          continue;
        }
        id_taken = true;
      }
    }

    std::optional<Rejection> reason;
    bool authenticated = false;
    std::optional<DeviceInfo> device;
    if (!IsValidDeviceId(event.device_id())) {
      reason = Rejection{v1::REJECTION_CODE_MALFORMED, "device_id", "device_id is malformed"};
    } else if (event.device_seq() == 0) {
      reason = Rejection{v1::REJECTION_CODE_MALFORMED, "device_seq", "device_seq starts at 1"};
    } else {
      ASSIGN_OR_RETURN(device, LookupDevice(event.device_id()));
      if (!device) {
        reason = Rejection{v1::REJECTION_CODE_UNKNOWN_DEVICE, "device_id",
                           "device_id is not an enrolled device"};
      } else if (device->revoked) {
        reason =
            Rejection{v1::REJECTION_CODE_DEVICE_REVOKED, "device_id", "the device was revoked"};
      } else if (device->public_key.size() != kPublicKeyBytes ||
                 received.signature().size() != kSignatureBytes) {
        reason = Rejection{v1::REJECTION_CODE_BAD_SIGNATURE, "signature",
                           "the signature must be 64 bytes of Ed25519"};
      } else {
        // Over the bytes received, exactly: no re-encoding, no canonical form.
        const std::string& bytes = received.event();
        if (crypto_sign_verify_detached(
                reinterpret_cast<const unsigned char*>(received.signature().data()),
                reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                reinterpret_cast<const unsigned char*>(device->public_key.data())) != 0) {
          reason = Rejection{v1::REJECTION_CODE_BAD_SIGNATURE, "signature",
                             "the signature does not verify over the event bytes with the "
                             "device's key"};
        } else {
          authenticated = true;
        }
      }
    }

    const bool relayed = event.device_id() != context_.device_id;
    Author author;
    author.device_id = event.device_id();
    if (relayed) author.relayed_by = context_.device_id;
    if (authenticated && relayed) {
      author.actor = device->user_id;
      author.role = device->role;
      author.unit_id = device->unit_id;
    } else {
      author.actor = context_.actor;
      author.role = context_.role;
      author.unit_id = context_.unit_id;
    }

    if (!authenticated) {
      if (unparseable)
        reason = Rejection{v1::REJECTION_CODE_MALFORMED, "event", bad_bytes->message};
      // Unproven origin: recorded as the pushing device's, and it never
      // touches the claimed device's sequence (a forged event must not be
      // able to take a real event's number).
      item.kind = Item::kRejected;
      item.advances = false;
      item.rejection = MakeUnprovenRecord(
          event, *reason, !unparseable && received.event().size() <= options.max_event_bytes);
      continue;
    }

    // Sequencing first: an event above the next expected number is not judged
    // at all (a gap, or an earlier event of this device that did not take its
    // number, such as a bad signature): held, nothing written, so the device
    // resends from the number named (docs/sync.md "Held").
    ASSIGN_OR_RETURN(const uint64_t expected, Expected(event.device_id()));
    if (event.device_seq() > expected) {
      item.kind = Item::kHeld;
      item.held_expected = expected;
      item.held_reason =
          absl::StrCat("device ", event.device_id(), ": device_seq ", event.device_seq(),
                       " leaves a gap; next expected is ", expected);
      continue;
    }

    // Authenticated and in sequence: from here on the event holds its device_seq.
    if (!log_id_valid) {
      reason = Rejection{v1::REJECTION_CODE_MALFORMED, "event_id", "event_id is malformed"};
    } else if (auto it = ids_.find(log_id); it != ids_.end()) {
      reason = Rejection{v1::REJECTION_CODE_EVENT_ID_REUSED, "event_id",
                         "event_id was used earlier in this push with other content"};
    } else if (id_taken) {
      reason = Rejection{v1::REJECTION_CODE_EVENT_ID_REUSED, "event_id",
                         "event_id was already used with other content"};
    }
    if (log_id_valid) ids_.emplace(log_id, i);

    if (event.device_seq() < expected) {
      // A reused event_id decided above stays the answer (docs/sync.md's
      // order): SEQUENCE_REUSED means a new event_id on an old number.
      if (!reason) {
        reason = Rejection{v1::REJECTION_CODE_SEQUENCE_REUSED, "device_seq",
                           absl::StrCat("device_seq ", event.device_seq(),
                                        " was already used; next expected is ", expected)};
      }
      item.advances = false;
    } else {
      expected_[event.device_id()] = expected + 1;
      item.advances = true;
    }

    if (!reason && received.event().size() > options.max_event_bytes) {
      reason = Rejection{v1::REJECTION_CODE_TOO_LARGE, "",
                         absl::StrCat("the event is ", received.event().size(),
                                      " bytes; the limit is ", options.max_event_bytes)};
    }
    // A field this server does not know: never kept (the stored bytes would
    // carry what no reader here understands), never a BAD_SIGNATURE.
    if (!reason && bad_bytes) {
      reason = Rejection{v1::REJECTION_CODE_MALFORMED, bad_bytes->field, bad_bytes->message};
    }
    if (!reason) reason = CheckEnvelope(event, *engine_->policy_);
    // The signer's role must be one that may push at all (the same rule as
    // the Push row of the server's policy table): a relay cannot write for a
    // read-only role.
    if (!reason && context_.may_push && !context_.may_push(author.role)) {
      reason = Rejection{v1::REJECTION_CODE_PERMISSION_DENIED, "device_id",
                         absl::StrCat("the signing device's user ", author.actor, " has role ",
                                      RoleName(author.role), ", which may not push events",
                                      relayed ? " (relaying does not change that)" : "")};
    }
    // The scope is judged on where the subject really lives, never on the
    // area_code the event claims (docs/sync.md "Scope").
    Placement placed;
    if (!reason) {
      ASSIGN_OR_RETURN(placed, RealArea(event));
      reason = placed.rejection;
    }
    const std::string& area = placed.area;
    if (!reason) {
      // The signer's scope: a relayed event is judged as its signer's, never
      // in the relay's scope (the relay is transport).
      const Scope* scope = &caller_scope;
      std::optional<Scope> signer_scope;
      if (relayed) {
        ASSIGN_OR_RETURN(signer_scope, ScopeOfUser(author.actor));
        if (signer_scope) scope = &*signer_scope;
      }
      const std::string subject_key = SubjectKey(event.subject());
      const bool in_scope = Contains(*scope, area, subject_key);
      if (!in_scope) {
        // The real area is not told to an actor outside it.
        const std::string where =
            area == event.area_code() ? absl::StrCat(" in area ", area) : std::string();
        reason = Rejection{v1::REJECTION_CODE_OUT_OF_SCOPE, "subject",
                           absl::StrCat(subject_key, where, " is outside the actor's scope")};
      }
    }
    if (!reason && area != event.area_code()) {
      // In scope, but the claim is wrong: refused rather than corrected, so
      // that the signed bytes in the log are the ones the device sent.
      const std::string real = area.empty() ? "it has no area" : absl::StrCat("it is in ", area);
      reason = Rejection{v1::REJECTION_CODE_SUBJECT_MISMATCH, "area_code",
                         absl::StrCat("area_code ", event.area_code(), " is not where ",
                                      SubjectKey(event.subject()), " lives: ", real)};
    }
    if (!reason) reason = engine_->policy_->Validate(event, author);
    if (!reason) {
      ASSIGN_OR_RETURN(reason, CheckReferences(i, author, item));
    }
    if (reason) {
      item.kind = Item::kRejected;
      item.rejection = MakeRecord(event, *reason, author.actor,
                                  !unparseable && reason->code != v1::REJECTION_CODE_TOO_LARGE);
      continue;
    }

    // Accepted (the merge may still refuse it for a state-dependent reason).
    if (placed.creates) created_areas_.emplace(SubjectKey(event.subject()), area);
    item.kind = Item::kAccepted;
    item.author = std::move(author);
    accepted_ids_[event.event_id()].push_back(i);
    const uint64_t limit = HlcAt(received_at_ + options.max_hlc_skew);
    if (event.hlc() > limit) {
      item.hlc_flagged = true;
      item.adopted_hlc = engine_->hlc_.Tick();
    } else {
      item.adopted_hlc = event.hlc();
      engine_->hlc_.Observe(event.hlc());
    }
  }
  // Every device the response must report.
  if (IsValidDeviceId(context_.device_id)) {
    RETURN_IF_ERROR(Expected(context_.device_id).status());
  }
  return absl::OkStatus();
}

storage::AppendEntry SyncEngine::PushRun::AcceptedEntry(size_t index) {
  const v1::Event& event = events_[index];
  storage::AppendEntry entry;
  entry.event_id = LogEventId(event.device_id(), event.event_id());
  entry.subject = SubjectKey(event.subject());
  entry.area_code = event.area_code();
  // A placeholder payload: the hook writes the real one (with the writes).
  entry.payload = "-";
  std::shared_ptr<PushRun> self = shared_from_this();
  entry.prepare = [self, index](storage::CommitContext& context) {
    return self->PrepareAccepted(index, context);
  };
  return entry;
}

storage::AppendEntry SyncEngine::PushRun::RejectionEntry(size_t index) {
  storage::AppendEntry entry;
  // One marker per distinct content: a concurrent push of the same refused
  // event is then a store duplicate and writes nothing twice.
  entry.event_id = std::string(kMarkerIdPrefix) + storage::ToHex(items_[index].content_hash);
  entry.payload = "-";
  std::shared_ptr<PushRun> self = shared_from_this();
  entry.prepare = [self, index](storage::CommitContext& context) {
    return self->PrepareRejection(index, context);
  };
  return entry;
}

void SyncEngine::PushRun::WriteRejection(storage::CommitContext& context, Item& item,
                                         const v1::Event& event) {
  const uint64_t offset = context.offset();
  RepairUtf8(item.rejection);
  const v1::RejectionRecord& record = item.rejection;
  context.Put(sync_keys::Rejection(offset), record.SerializeAsString());
  context.Put(sync_keys::RejectionHash(item.content_hash), base::Be64(offset));
  context.Put(sync_keys::RejectionAll(offset), "");
  if (IsValidDeviceId(record.device_id())) {
    context.Put(sync_keys::RejectionDevice(record.device_id(), offset), "");
  }
  // By area prefix, at the lengths the store indexes scopes at (ListRejections
  // narrows by the same lengths).
  const std::string& area = record.area_code();
  if (!engine_->policy_->CheckAreaCode(area).has_value()) {
    for (size_t length : engine_->store_->scope_prefix_lengths()) {
      if (length > area.size()) continue;
      context.Put(sync_keys::RejectionArea(area.substr(0, length), offset), "");
    }
  }
  if (item.advances) {
    context.Put(sync_keys::Device(event.device_id()), base::Be64(event.device_seq()));
  }
  // A marker has no event bytes (IsRejectionMarker); the record says the rest.
  v1::StoredEvent marker;
  *marker.mutable_received_at() = received_at_proto_;
  marker.set_actor(record.actor());
  marker.set_relayed_by(record.relayed_by());
  context.payload() = EncodePayload(marker);
}

absl::Status SyncEngine::PushRun::PrepareRejection(size_t index, storage::CommitContext& context) {
  Item& item = items_[index];
  const v1::Event& event = events_[index];
  if (item.advances) {
    ASSIGN_OR_RETURN(std::optional<std::string> hwm,
                     context.Get(sync_keys::Device(event.device_id())));
    ASSIGN_OR_RETURN(const uint64_t last, LastDeviceSeq(hwm, event.device_id()));
    if (last + 1 < event.device_seq()) {
      return CommitGapStatus(event.device_id(), last + 1, event.device_seq());
    }
    if (last >= event.device_seq()) {
      // Another push took this number meanwhile.
      item.advances = false;
      item.rejection.set_code(v1::REJECTION_CODE_SEQUENCE_REUSED);
      item.rejection.set_field("device_seq");
      item.rejection.set_message(
          absl::StrCat("device_seq ", event.device_seq(), " was taken by another event"));
    }
  }
  WriteRejection(context, item, event);
  return absl::OkStatus();
}

absl::Status SyncEngine::PushRun::PrepareAccepted(size_t index, storage::CommitContext& context) {
  Item& item = items_[index];
  const v1::Event& event = events_[index];
  ASSIGN_OR_RETURN(std::optional<std::string> hwm,
                   context.Get(sync_keys::Device(event.device_id())));
  ASSIGN_OR_RETURN(const uint64_t last, LastDeviceSeq(hwm, event.device_id()));
  if (last + 1 < event.device_seq()) {
    return CommitGapStatus(event.device_id(), last + 1, event.device_seq());
  }
  auto convert = [&](const Rejection& rejection, bool advances) {
    item.converted = true;
    item.advances = advances;
    item.rejection = MakeRecord(event, rejection, item.author.actor, true);
    WriteRejection(context, item, event);
  };
  if (last >= event.device_seq()) {
    convert(
        Rejection{v1::REJECTION_CODE_SEQUENCE_REUSED, "device_seq",
                  absl::StrCat("device_seq ", event.device_seq(), " was taken by another event")},
        false);
    return absl::OkStatus();
  }

  EventMeta meta;
  meta.author = item.author;
  meta.offset = context.offset();
  meta.adopted_hlc = item.adopted_hlc;
  meta.hlc_flagged = item.hlc_flagged;
  meta.received_at = received_at_;
  if (context_.device_time != absl::InfinitePast() && event.device_id() == context_.device_id) {
    meta.push_clock_offset = context_.device_time - received_at_;
  }
  BufferedView view(context);
  ASSIGN_OR_RETURN(item.merge, engine_->policy_->Merge(event, meta, view));
  if (item.merge.rejection) {
    convert(*item.merge.rejection, true);
    return absl::OkStatus();
  }
  view.Flush();

  RETURN_IF_ERROR(IndexSubject(context, event));
  for (const std::string& sha : item.pending_blobs) {
    context.Put(sync_keys::PendingBlob(sha, meta.offset), "");
  }
  context.Put(sync_keys::Device(event.device_id()), base::Be64(event.device_seq()));
  context.Put(sync_keys::EventId(event.event_id(), event.device_id()), base::Be64(meta.offset));

  // The device's bytes and signature verbatim: what readers verify.
  v1::StoredEvent stored;
  stored.set_event(signed_[index].event());
  stored.set_signature(signed_[index].signature());
  *stored.mutable_received_at() = received_at_proto_;
  stored.set_actor(item.author.actor);
  stored.set_relayed_by(item.author.relayed_by);
  stored.set_hlc_flagged(item.hlc_flagged);
  stored.set_adopted_hlc(item.adopted_hlc);
  for (const v1::WriteOutcome& write : item.merge.writes) *stored.add_writes() = write;
  context.payload() = EncodePayload(stored);
  return absl::OkStatus();
}

void SyncEngine::PushRun::Finish(absl::StatusOr<std::vector<storage::AppendResult>> results) {
  if (!results.ok()) {
    done_(std::move(results).status());
    return;
  }
  PushOutcome outcome;
  v1::PushResponse& response = outcome.response;
  for (size_t i = 0; i < items_.size(); ++i) {
    const Item& item = items_[i];
    v1::PushResult result;
    switch (item.kind) {
      case Item::kHeld: {
        v1::Held* held = result.mutable_held();
        held->set_expected_device_seq(item.held_expected);
        held->set_reason(item.held_reason);
        ++outcome.held;
        break;
      }
      case Item::kMirror: {
        // Copy the earlier identical event's answer; an acceptance becomes a
        // duplicate of it.
        result = response.results(static_cast<int>(item.mirror_of));
        if (result.has_accepted()) {
          const uint64_t offset = result.accepted().offset();
          result.mutable_duplicate()->set_original_offset(offset);
        } else if (result.has_conflict_recorded()) {
          const uint64_t offset = result.conflict_recorded().offset();
          result.mutable_duplicate()->set_original_offset(offset);
        }
        if (result.has_duplicate()) {
          ++outcome.duplicates;
        } else if (result.has_held()) {
          ++outcome.held;
        } else {
          ++outcome.rejected;
        }
        break;
      }
      case Item::kDuplicate:
        result.mutable_duplicate()->set_original_offset(item.duplicate_offset);
        ++outcome.duplicates;
        break;
      case Item::kReplayedRejection:
        result = RejectedResult(item.rejection);
        ++outcome.rejected;
        break;
      case Item::kRejected:
        result = RejectedResult(item.rejection);
        ++outcome.rejected;
        break;
      case Item::kAccepted: {
        const storage::AppendResult& appended = (*results)[item.entry_index];
        if (appended.duplicate) {
          // A concurrent push appended the same event_id first.
          result.mutable_duplicate()->set_original_offset(appended.offset);
          ++outcome.duplicates;
        } else if (item.converted) {
          result = RejectedResult(item.rejection);
          ++outcome.rejected;
        } else if (!item.merge.conflict_ids.empty()) {
          v1::ConflictRecorded* recorded = result.mutable_conflict_recorded();
          recorded->set_offset(appended.offset);
          for (const std::string& id : item.merge.conflict_ids) recorded->add_conflict_ids(id);
          ++outcome.conflicts;
        } else {
          result.mutable_accepted()->set_offset(appended.offset);
          ++outcome.accepted;
        }
        break;
      }
    }
    *response.add_results() = std::move(result);
  }
  for (const auto& [device, next] : expected_)
    (*response.mutable_next_expected_seq())[device] = next;
  *response.mutable_server_time() = base::ToTimestamp(engine_->Now());
  done_(std::move(outcome));
}

SyncEngine::SyncEngine(storage::EventStore* store, const MergePolicy* policy,
                       const DeviceKeys* keys, SyncOptions options)
    : store_(store),
      policy_(policy),
      keys_(keys),
      options_([&options] {
        if (!options.clock) options.clock = [] { return absl::Now(); };
        return std::move(options);
      }()),
      reader_(store),
      hlc_(options_.clock) {
  // Thread-safe and idempotent; fails only if no entropy source exists, which
  // signature verification does not need.
  if (sodium_init() < 0) {
    // Ignored on purpose: crypto_sign_verify_detached works without it.
  }
}

SyncEngine::~SyncEngine() = default;

absl::Time SyncEngine::Now() const { return options_.clock(); }

absl::StatusOr<PushOutcome> SyncEngine::Push(const PushContext& context,
                                             const std::vector<v1::SignedEvent>& events) {
  absl::Notification done;
  absl::StatusOr<PushOutcome> answer = absl::UnknownError("push did not finish");
  PushAsync(context, events, [&](absl::StatusOr<PushOutcome> outcome) {
    answer = std::move(outcome);
    done.Notify();
  });
  done.WaitForNotification();
  return answer;
}

void SyncEngine::PushAsync(PushContext context, std::vector<v1::SignedEvent> events,
                           PushCallback done) {
  auto run =
      std::make_shared<PushRun>(this, std::move(context), std::move(events), std::move(done));
  run->Start();
}

absl::StatusOr<uint64_t> SyncEngine::NextExpectedSeq(std::string_view device_id) const {
  ASSIGN_OR_RETURN(std::optional<std::string> hwm,
                   store_->GetProjection(sync_keys::Device(device_id)));
  ASSIGN_OR_RETURN(const uint64_t last, LastDeviceSeq(hwm, device_id));
  return last + 1;
}

}  // namespace fieldsync::sync
