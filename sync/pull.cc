// SyncEngine::Pull and the engine's queries (history, rejections). See
// docs/sync.md "Pull" for the cursor protocol.
#include <algorithm>
#include <deque>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/big_endian.h"
#include "base/status_macros.h"
#include "base/time.h"
#include "storage/sha256.h"
#include "sync/event_codec.h"
#include "sync/sync_engine.h"
#include "sync/sync_keys.h"

namespace fieldsync::sync {

// Where a snapshot being paged stands; travels in Checkpoint.snapshot_token.
struct SyncEngine::SnapshotCursor {
  // 'F': a full snapshot (first sync, reset). 'A': the subjects a scope
  // change added.
  char kind = 'F';
  // Head offset when the snapshot began.
  uint64_t snapshot_offset = 0;
  // 'A' only: the digests of the scope before and after the change.
  std::string old_digest;
  std::string new_digest;
  // 0: subjects under the scope's area prefixes (position = index key);
  // 1: the scope's named subjects (position = subject key);
  // 2: every subject, for an `all` scope (position = subject key).
  uint8_t phase = 0;
  std::string position;
};

namespace {

constexpr std::string_view kTokenMagic = "fs1";
constexpr size_t kScanBatch = 256;
constexpr size_t kDefaultPageSize = 100;

// Reads one length-prefixed (u8) field; false if the input is too short.
bool ReadShort(std::string_view& in, std::string* out) {
  if (in.empty()) return false;
  const size_t length = static_cast<uint8_t>(in[0]);
  if (in.size() < 1 + length) return false;
  *out = std::string(in.substr(1, length));
  in.remove_prefix(1 + length);
  return true;
}

size_t Capped(uint64_t requested, size_t cap) {
  return requested == 0 ? cap : static_cast<size_t>(std::min<uint64_t>(requested, cap));
}

// The index source that narrows a scope read for an area prefix: the prefix
// cut to the longest length the store indexes (`lengths`, the store's
// scope_prefix_lengths) not longer than it; empty if it is shorter than all.
std::string IndexedPrefix(const std::string& prefix, const std::vector<size_t>& lengths) {
  size_t best = 0;
  for (size_t length : lengths) {
    if (length <= prefix.size() && length > best) best = length;
  }
  return prefix.substr(0, best);
}

// True if the store indexes area prefixes of exactly this length.
bool IsIndexedLength(size_t length, const std::vector<size_t>& lengths) {
  return std::find(lengths.begin(), lengths.end(), length) != lengths.end();
}

std::string EncodeCursor(char kind, uint64_t snapshot_offset, const std::string& old_digest,
                         const std::string& new_digest, uint8_t phase,
                         const std::string& position) {
  std::string out(kTokenMagic);
  out.push_back(kind);
  out.append(base::Be64(snapshot_offset));
  out.push_back(static_cast<char>(old_digest.size()));
  out.append(old_digest);
  out.push_back(static_cast<char>(new_digest.size()));
  out.append(new_digest);
  out.push_back(static_cast<char>(phase));
  out.append(position);
  return out;
}

}  // namespace

void SyncEngine::RememberScope(const std::string& digest, const Scope& scope) {
  absl::MutexLock lock(&scopes_mu_);
  if (scopes_.contains(digest)) return;
  // A bounded memory: forgetting everything at the cap costs a few RESETs of
  // devices whose scope changed, never a wrong answer.
  if (scopes_.size() >= options_.scope_memory) scopes_.clear();
  scopes_.emplace(digest, scope);
}

std::optional<Scope> SyncEngine::RecallScope(const std::string& digest) const {
  absl::MutexLock lock(&scopes_mu_);
  auto it = scopes_.find(digest);
  if (it == scopes_.end()) return std::nullopt;
  return it->second;
}

absl::Status SyncEngine::AppendSnapshotPage(const Scope& scope, const Scope* old_scope,
                                            SnapshotCursor& cursor, size_t max_bytes, size_t* bytes,
                                            v1::Snapshot* out, bool* complete) const {
  *complete = false;
  size_t subjects = 0;
  // Subjects looked at, shown or skipped: the page also ends at
  // max_examined_records of them (after at least one), so a scope change
  // whose additions are few among many subjects pages too.
  size_t examined = 0;
  std::set<std::string> page_areas;
  for (const v1::Area& area : out->areas()) page_areas.insert(area.code());
  // Visits one subject; false stops the page before it.
  auto visit = [&](const std::string& subject_key, const std::string& area,
                   bool* stop) -> absl::Status {
    *stop = false;
    if (examined >= options_.max_examined_records) {
      *stop = true;
      return absl::OkStatus();
    }
    ++examined;
    if (old_scope != nullptr && Contains(*old_scope, area, subject_key)) return absl::OkStatus();
    std::optional<v1::SubjectRef> ref = ParseSubjectKey(subject_key);
    if (!ref) return absl::OkStatus();
    v1::Snapshot part;
    RETURN_IF_ERROR(policy_->AppendSnapshot(reader_, *ref, &part));
    // An area the page already carries (the village of the previous
    // household, say) is not sent twice.
    auto* part_areas = part.mutable_areas();
    part_areas->erase(std::remove_if(part_areas->begin(), part_areas->end(),
                                     [&](const v1::Area& area) {
                                       return page_areas.contains(area.code());
                                     }),
                      part_areas->end());
    const size_t size = part.ByteSizeLong();
    if (size == 0) return absl::OkStatus();
    if (subjects >= options_.snapshot_page_subjects || (*bytes > 0 && *bytes + size > max_bytes)) {
      *stop = true;
      return absl::OkStatus();
    }
    for (const v1::Area& area : part.areas()) page_areas.insert(area.code());
    out->MergeFrom(part);
    *bytes += size;
    ++subjects;
    return absl::OkStatus();
  };

  if (scope.all) {
    cursor.phase = 2;
    while (true) {
      const std::string start = cursor.position.empty()
                                    ? std::string()
                                    : std::string(sync_keys::kSubjectPrefix) + cursor.position;
      ASSIGN_OR_RETURN(auto batch,
                       store_->ScanProjections(sync_keys::kSubjectPrefix, start, kScanBatch));
      for (const auto& [key, area] : batch) {
        const std::string subject_key = key.substr(sync_keys::kSubjectPrefix.size());
        bool stop = false;
        RETURN_IF_ERROR(visit(subject_key, area, &stop));
        if (stop) return absl::OkStatus();
        cursor.position = subject_key;
      }
      if (batch.size() < kScanBatch) break;
    }
    *complete = true;
    return absl::OkStatus();
  }

  if (cursor.phase == 0) {
    for (const std::string& prefix : scope.area_prefixes) {
      const std::string scan = sync_keys::AreaScan(prefix);
      while (true) {
        ASSIGN_OR_RETURN(auto batch, store_->ScanProjections(scan, cursor.position, kScanBatch));
        for (const auto& [key, value] : batch) {
          const size_t nul = key.find('\0', sync_keys::kAreaPrefix.size());
          if (nul == std::string::npos) continue;
          const std::string area =
              key.substr(sync_keys::kAreaPrefix.size(), nul - sync_keys::kAreaPrefix.size());
          const std::string subject_key = key.substr(nul + 1);
          bool stop = false;
          RETURN_IF_ERROR(visit(subject_key, area, &stop));
          if (stop) return absl::OkStatus();
          cursor.position = key;
        }
        if (batch.size() < kScanBatch) break;
      }
    }
    cursor.phase = 1;
    cursor.position.clear();
  }
  for (auto it = scope.subject_keys.upper_bound(cursor.position); it != scope.subject_keys.end();
       ++it) {
    ASSIGN_OR_RETURN(std::optional<std::string> area,
                     store_->GetProjection(sync_keys::Subject(*it)));
    if (!area) continue;                     // No event about it yet: nothing to show.
    if (CoversArea(scope, *area)) continue;  // Already visited under its prefix.
    bool stop = false;
    RETURN_IF_ERROR(visit(*it, *area, &stop));
    if (stop) return absl::OkStatus();
    cursor.position = *it;
  }
  *complete = true;
  return absl::OkStatus();
}

absl::Status SyncEngine::AppendEvents(const Scope& scope, uint64_t after, uint64_t head,
                                      size_t max_events, size_t max_bytes, bool omit_proofs,
                                      size_t* bytes, v1::PullResponse* out) const {
  struct Source {
    enum Type { kAll, kScope, kSubject } type;
    std::string key;
    std::deque<storage::LogRecord> buffer;
    uint64_t after = 0;
    bool exhausted = false;
  };
  std::vector<Source> sources;
  bool read_all = scope.all;
  std::set<std::string> scope_keys;
  for (const std::string& prefix : scope.area_prefixes) {
    const std::string indexed = IndexedPrefix(prefix, store_->scope_prefix_lengths());
    if (indexed.empty()) read_all = true;
    scope_keys.insert(indexed);
  }
  if (read_all) {
    sources.push_back(Source{Source::kAll, "", {}, after, false});
  } else {
    for (const std::string& key : scope_keys) {
      sources.push_back(Source{Source::kScope, key, {}, after, false});
    }
    for (const std::string& key : scope.subject_keys) {
      sources.push_back(Source{Source::kSubject, key, {}, after, false});
    }
  }

  // Records read from the store by this call, whether they are returned or
  // filtered out: bounded by max_examined_records (a short prefix reads the
  // whole log through the kAll source). Every refill reads at least one
  // record, so the first record is always examined (progress).
  size_t read = 0;
  const size_t budget = std::max<size_t>(options_.max_examined_records, 1);
  auto refill = [&](Source& source) -> absl::Status {
    const size_t left = read < budget ? budget - read : 1;
    const storage::ReadLimits limits{
        .max_records = std::clamp<size_t>(std::min<size_t>(max_events + 1, kScanBatch), 1, left),
        .max_bytes = max_bytes};
    absl::StatusOr<std::vector<storage::LogRecord>> records;
    switch (source.type) {
      case Source::kAll:
        records = store_->ReadAfter(source.after, limits);
        break;
      case Source::kScope:
        records = store_->ReadScope(source.key, source.after, limits);
        break;
      case Source::kSubject:
        records = store_->ReadSubject(source.key, source.after, limits);
        break;
    }
    RETURN_IF_ERROR(records.status());
    read += records->size();
    if (records->empty()) source.exhausted = true;
    for (storage::LogRecord& record : *records) {
      if (record.offset > head) {
        source.exhausted = true;
        break;
      }
      source.after = record.offset;
      source.buffer.push_back(std::move(record));
    }
    return absl::OkStatus();
  };

  uint64_t examined = after;
  size_t count = 0;
  bool complete = false;
  while (true) {
    if (count >= max_events || *bytes >= max_bytes) break;
    uint64_t next = UINT64_MAX;
    bool out_of_budget = false;
    for (Source& source : sources) {
      if (source.buffer.empty() && !source.exhausted) {
        // Out of budget, and past at least one record: stop before reading
        // more (what is buffered was used up first).
        if (read >= budget && examined > after) {
          out_of_budget = true;
          break;
        }
        RETURN_IF_ERROR(refill(source));
      }
      if (!source.buffer.empty()) next = std::min(next, source.buffer.front().offset);
    }
    if (out_of_budget) break;
    if (next == UINT64_MAX) {
      complete = true;
      break;
    }
    const storage::LogRecord* record = nullptr;
    for (Source& source : sources) {
      if (!source.buffer.empty() && source.buffer.front().offset == next) {
        if (record == nullptr) record = &source.buffer.front();
      }
    }
    ASSIGN_OR_RETURN(v1::StoredEvent stored, DecodeRecord(*record));
    bool keep = !IsRejectionMarker(stored) &&
                Contains(scope, stored.event().area_code(), SubjectKey(stored.event().subject()));
    if (keep) {
      if (omit_proofs) {
        stored.mutable_event()->clear_signature();
        stored.clear_prev_hash();
        stored.clear_hash();
      }
      const size_t size = stored.ByteSizeLong();
      if (*bytes > 0 && *bytes + size > max_bytes) break;
      *bytes += size;
      ++count;
      // The conflicts it opened or closed travel with it, so a client keeps
      // its conflict list from incremental pulls alone.
      RETURN_IF_ERROR(policy_->AppendConflictsOf(reader_, stored, out->mutable_conflicts()));
      *out->add_events() = std::move(stored);
    }
    examined = next;
    for (Source& source : sources) {
      if (!source.buffer.empty() && source.buffer.front().offset == next) source.buffer.pop_front();
    }
  }
  out->mutable_checkpoint()->set_offset(complete ? head : examined);
  out->set_more(!complete);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::SubjectRef>> SyncEngine::RemovedSubjects(const Scope& old_scope,
                                                                        const Scope& new_scope,
                                                                        bool* too_many) const {
  *too_many = false;
  std::vector<v1::SubjectRef> removed;
  size_t examined = 0;
  auto consider = [&](const std::string& subject_key, const std::string& area) {
    ++examined;
    if (Contains(new_scope, area, subject_key)) return;
    if (std::optional<v1::SubjectRef> ref = ParseSubjectKey(subject_key)) {
      removed.push_back(*std::move(ref));
    }
  };
  if (new_scope.all) return removed;
  auto scan = [&](const std::string& prefix, bool area_index) -> absl::Status {
    std::string position;
    while (true) {
      ASSIGN_OR_RETURN(auto batch, store_->ScanProjections(prefix, position, kScanBatch));
      for (const auto& [key, value] : batch) {
        if (area_index) {
          const size_t nul = key.find('\0', sync_keys::kAreaPrefix.size());
          if (nul == std::string::npos) continue;
          consider(key.substr(nul + 1),
                   key.substr(sync_keys::kAreaPrefix.size(), nul - sync_keys::kAreaPrefix.size()));
        } else {
          consider(key.substr(sync_keys::kSubjectPrefix.size()), value);
        }
        if (examined > options_.max_scope_change_subjects) {
          *too_many = true;
          return absl::OkStatus();
        }
        position = key;
      }
      if (batch.size() < kScanBatch) return absl::OkStatus();
    }
  };
  if (old_scope.all) {
    RETURN_IF_ERROR(scan(std::string(sync_keys::kSubjectPrefix), false));
    return removed;
  }
  for (const std::string& prefix : old_scope.area_prefixes) {
    if (CoversPrefix(new_scope, prefix)) continue;  // Everything under it stays.
    RETURN_IF_ERROR(scan(sync_keys::AreaScan(prefix), true));
    if (*too_many) return removed;
  }
  for (const std::string& key : old_scope.subject_keys) {
    ASSIGN_OR_RETURN(std::optional<std::string> area,
                     store_->GetProjection(sync_keys::Subject(key)));
    if (CoversArea(old_scope, area.value_or(""))) continue;  // Handled with its prefix.
    consider(key, area.value_or(""));
  }
  return removed;
}

absl::StatusOr<v1::PullResponse> SyncEngine::ResetAndSnapshot(const Scope& scope,
                                                              const std::string& digest,
                                                              v1::ResetReason reason, uint64_t head,
                                                              size_t max_events, size_t max_bytes,
                                                              bool omit_proofs) {
  v1::PullResponse response;
  if (reason != v1::RESET_REASON_UNSPECIFIED) {
    response.mutable_reset()->set_reason(reason);
    response.mutable_reset()->set_snapshot_offset(head);
  }
  SnapshotCursor cursor;
  cursor.kind = 'F';
  cursor.snapshot_offset = head;
  size_t bytes = 0;
  bool complete = false;
  RETURN_IF_ERROR(AppendSnapshotPage(scope, nullptr, cursor, max_bytes, &bytes,
                                     response.mutable_snapshot(), &complete));
  v1::Checkpoint* checkpoint = response.mutable_checkpoint();
  if (!complete) {
    checkpoint->set_offset(0);
    checkpoint->set_scope_digest(digest);
    checkpoint->set_snapshot_token(EncodeCursor('F', head, "", "", cursor.phase, cursor.position));
    response.set_more(true);
  } else {
    RETURN_IF_ERROR(AppendEvents(scope, head, store_->Head(), max_events, max_bytes, omit_proofs,
                                 &bytes, &response));
    checkpoint->set_scope_digest(digest);
  }
  response.set_head_offset(store_->Head());
  *response.mutable_server_time() = base::ToTimestamp(Now());
  return response;
}

absl::StatusOr<v1::PullResponse> SyncEngine::Pull(const Scope& scope_in,
                                                  const v1::PullRequest& request) {
  const Scope scope = Normalize(scope_in);
  const std::string digest = ScopeDigest(scope, options_.scope_digest_salt);
  RememberScope(digest, scope);
  const uint64_t head = store_->Head();
  const size_t max_events = Capped(request.max_events(), options_.max_pull_events);
  const size_t max_bytes = Capped(request.max_bytes(), options_.max_pull_bytes);
  const bool omit = request.omit_proofs();
  const v1::Checkpoint& cursor = request.cursor();
  auto reset = [&](v1::ResetReason reason) {
    return ResetAndSnapshot(scope, digest, reason, head, max_events, max_bytes, omit);
  };

  const bool first =
      !request.has_cursor() ||
      (cursor.offset() == 0 && cursor.scope_digest().empty() && cursor.snapshot_token().empty());
  if (first) return reset(v1::RESET_REASON_UNSPECIFIED);
  // A digest this deployment never issued (invented, mangled, or another
  // deployment's) is an unknown cursor; only an issued one whose scope is not
  // the caller's any more is a scope change.
  if (!IsIssuedScopeDigest(cursor.scope_digest(), options_.scope_digest_salt)) {
    return reset(v1::RESET_REASON_UNKNOWN_CURSOR);
  }

  v1::PullResponse response;
  size_t bytes = 0;
  std::optional<SnapshotCursor> paging;
  std::optional<Scope> old_scope;
  if (!cursor.snapshot_token().empty()) {
    SnapshotCursor decoded;
    std::string_view in = cursor.snapshot_token();
    if (!in.starts_with(kTokenMagic)) return reset(v1::RESET_REASON_UNKNOWN_CURSOR);
    in.remove_prefix(kTokenMagic.size());
    if (in.size() < 1 + 8) return reset(v1::RESET_REASON_UNKNOWN_CURSOR);
    decoded.kind = in[0];
    decoded.snapshot_offset = base::ParseBe64(in.substr(1, 8)).value_or(0);
    in.remove_prefix(9);
    if (!ReadShort(in, &decoded.old_digest) || !ReadShort(in, &decoded.new_digest) || in.empty() ||
        (decoded.kind != 'F' && decoded.kind != 'A')) {
      return reset(v1::RESET_REASON_UNKNOWN_CURSOR);
    }
    decoded.phase = static_cast<uint8_t>(in[0]);
    decoded.position = std::string(in.substr(1));
    if (decoded.phase > 2) return reset(v1::RESET_REASON_UNKNOWN_CURSOR);
    if (decoded.snapshot_offset > head) return reset(v1::RESET_REASON_FUTURE);
    if (decoded.kind == 'F') {
      // The scope changed while the snapshot was paged: start again.
      if (cursor.scope_digest() != digest) return reset(v1::RESET_REASON_SCOPE_CHANGED);
      bool complete = false;
      RETURN_IF_ERROR(AppendSnapshotPage(scope, nullptr, decoded, max_bytes, &bytes,
                                         response.mutable_snapshot(), &complete));
      v1::Checkpoint* checkpoint = response.mutable_checkpoint();
      checkpoint->set_scope_digest(digest);
      if (!complete) {
        checkpoint->set_offset(0);
        checkpoint->set_snapshot_token(
            EncodeCursor('F', decoded.snapshot_offset, "", "", decoded.phase, decoded.position));
        response.set_more(true);
      } else {
        RETURN_IF_ERROR(AppendEvents(scope, decoded.snapshot_offset, head, max_events, max_bytes,
                                     omit, &bytes, &response));
      }
      response.set_head_offset(head);
      *response.mutable_server_time() = base::ToTimestamp(Now());
      return response;
    }
    // An additions page; continue it only if the scope is still the one it
    // was computed for, else recompute the change from the old scope.
    if (decoded.new_digest == digest && decoded.old_digest == cursor.scope_digest()) {
      paging = std::move(decoded);
    }
  }

  if (cursor.offset() > head) return reset(v1::RESET_REASON_FUTURE);
  if (cursor.offset() < options_.oldest_incremental_offset) {
    return reset(v1::RESET_REASON_COMPACTED);
  }

  if (cursor.scope_digest() != digest) {
    old_scope = RecallScope(cursor.scope_digest());
    if (!old_scope) return reset(v1::RESET_REASON_SCOPE_CHANGED);
    if (!paging) {
      bool too_many = false;
      ASSIGN_OR_RETURN(std::vector<v1::SubjectRef> removed,
                       RemovedSubjects(*old_scope, scope, &too_many));
      if (too_many) return reset(v1::RESET_REASON_SCOPE_CHANGED);
      for (v1::SubjectRef& ref : removed) *response.add_removed_from_scope() = std::move(ref);
      SnapshotCursor fresh;
      fresh.kind = 'A';
      fresh.snapshot_offset = head;
      fresh.old_digest = cursor.scope_digest();
      fresh.new_digest = digest;
      paging = std::move(fresh);
    }
    bool complete = false;
    RETURN_IF_ERROR(AppendSnapshotPage(scope, &*old_scope, *paging, max_bytes, &bytes,
                                       response.mutable_snapshot(), &complete));
    v1::Checkpoint* checkpoint = response.mutable_checkpoint();
    if (!complete) {
      // Keep the old digest: a client that drops the token recomputes the change.
      checkpoint->set_offset(cursor.offset());
      checkpoint->set_scope_digest(cursor.scope_digest());
      checkpoint->set_snapshot_token(EncodeCursor('A', paging->snapshot_offset, paging->old_digest,
                                                  paging->new_digest, paging->phase,
                                                  paging->position));
      response.set_more(true);
    } else {
      RETURN_IF_ERROR(AppendEvents(scope, cursor.offset(), head, max_events, max_bytes, omit,
                                   &bytes, &response));
      checkpoint->set_scope_digest(digest);
    }
    response.set_head_offset(head);
    *response.mutable_server_time() = base::ToTimestamp(Now());
    return response;
  }

  RETURN_IF_ERROR(
      AppendEvents(scope, cursor.offset(), head, max_events, max_bytes, omit, &bytes, &response));
  response.mutable_checkpoint()->set_scope_digest(digest);
  response.set_head_offset(head);
  *response.mutable_server_time() = base::ToTimestamp(Now());
  return response;
}

// ---------------------------------------------------------------------------
// Queries

absl::StatusOr<v1::GetHistoryResponse> SyncEngine::GetHistory(
    const Scope& scope, const v1::GetHistoryRequest& request) const {
  if (request.subject().kind() == v1::SUBJECT_KIND_UNSPECIFIED || request.subject().id().empty()) {
    return absl::InvalidArgumentError("subject (kind and id) is required");
  }
  const std::string key = SubjectKey(request.subject());
  ASSIGN_OR_RETURN(std::optional<std::string> area, store_->GetProjection(sync_keys::Subject(key)));
  if (!Contains(Normalize(scope), area.value_or(""), key)) {
    return absl::PermissionDeniedError(absl::StrCat(key, " is outside the caller's scope"));
  }
  const size_t limit = request.limit() == 0
                           ? std::min(kDefaultPageSize, options_.max_page_size)
                           : std::min<size_t>(request.limit(), options_.max_page_size);
  v1::GetHistoryResponse response;
  uint64_t after = request.after_offset();
  response.set_next_after_offset(after);
  // Records read, returned or skipped (rejection markers): at most
  // max_examined_records per call, then `more` from the last one read.
  const size_t budget = std::max<size_t>(options_.max_examined_records, 1);
  size_t examined = 0;
  while (true) {
    const size_t left = budget - examined;
    ASSIGN_OR_RETURN(std::vector<storage::LogRecord> records,
                     store_->ReadSubject(key, after,
                                         {.max_records = std::min(limit + 1, left + 1),
                                          .max_bytes = 16 << 20}));
    if (records.empty()) return response;
    for (const storage::LogRecord& record : records) {
      if (examined == budget) {
        response.set_next_after_offset(after);
        response.set_more(true);
        return response;
      }
      ++examined;
      after = record.offset;
      ASSIGN_OR_RETURN(v1::StoredEvent stored, DecodeRecord(record));
      if (IsRejectionMarker(stored)) continue;
      if (static_cast<size_t>(response.events_size()) == limit) {
        response.set_more(true);
        return response;
      }
      response.set_next_after_offset(record.offset);
      *response.add_events() = std::move(stored);
    }
  }
}

absl::StatusOr<v1::ListRejectionsResponse> SyncEngine::ListRejections(
    const Scope& scope_in, const v1::ListRejectionsRequest& request) const {
  const Scope scope = Normalize(scope_in);
  const std::string& prefix = request.scope_prefix();
  const std::string& device = request.device_id();
  if (prefix.empty() && device.empty()) {
    return absl::InvalidArgumentError("scope_prefix or device_id is required");
  }
  if (!prefix.empty() && !CoversPrefix(scope, prefix)) {
    return absl::PermissionDeniedError(
        absl::StrCat("area prefix ", prefix, " is outside the caller's scope"));
  }
  std::string index;
  // Rejections are indexed by area prefix at the store's scope lengths
  // (SyncEngine::PushRun::WriteRejection).
  if (!prefix.empty() && IsIndexedLength(prefix.size(), store_->scope_prefix_lengths())) {
    index = sync_keys::RejectionAreaPrefix(prefix);
  } else if (!device.empty()) {
    index = sync_keys::RejectionDevicePrefix(device);
  } else {
    index = std::string(sync_keys::kRejectionAllPrefix);
  }
  std::string position;
  if (!request.page_token().empty()) {
    std::string suffix;
    if (!absl::WebSafeBase64Unescape(request.page_token(), &suffix)) {
      return absl::InvalidArgumentError("page_token is malformed");
    }
    position = index + suffix;
  }
  const size_t page_size = request.page_size() == 0
                               ? std::min(kDefaultPageSize, options_.max_page_size)
                               : std::min<size_t>(request.page_size(), options_.max_page_size);
  v1::ListRejectionsResponse response;
  // Index entries looked at, listed or filtered out (a device's records in an
  // area, an unindexed prefix through the all-rejections index): at most
  // max_examined_records per page, which may then hold fewer (even none) and
  // still carry a next_page_token.
  size_t examined = 0;
  while (true) {
    ASSIGN_OR_RETURN(auto batch, store_->ScanProjections(index, position, kScanBatch));
    for (const auto& [key, value] : batch) {
      if (static_cast<size_t>(response.rejections_size()) == page_size ||
          examined >= options_.max_examined_records) {
        response.set_next_page_token(absl::WebSafeBase64Escape(position.substr(index.size())));
        return response;
      }
      position = key;
      ++examined;
      const uint64_t offset = sync_keys::TrailingOffset(key, /*complemented=*/true);
      ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                       store_->GetProjection(sync_keys::Rejection(offset)));
      v1::RejectionRecord record;
      if (!bytes || !record.ParseFromString(*bytes)) {
        return absl::DataLossError(absl::StrCat("rejection record at ", offset, " is missing"));
      }
      if (!device.empty() && record.device_id() != device) continue;
      if (!prefix.empty() && !record.area_code().starts_with(prefix)) continue;
      if (!Contains(scope, record.area_code(), SubjectKey(record.subject()))) continue;
      *response.add_rejections() = std::move(record);
    }
    if (batch.size() < kScanBatch) return response;
  }
}

absl::StatusOr<std::vector<std::string>> SyncEngine::ListMissingBlobs(size_t limit) const {
  std::vector<std::string> missing;
  std::string position;
  std::string last;
  while (missing.size() < limit) {
    ASSIGN_OR_RETURN(auto batch,
                     store_->ScanProjections(sync_keys::kPendingBlobPrefix, position, kScanBatch));
    for (const auto& [key, value] : batch) {
      position = key;
      const std::string sha =
          key.substr(sync_keys::kPendingBlobPrefix.size(), storage::kSha256Size);
      if (sha == last) continue;
      last = sha;
      ASSIGN_OR_RETURN(storage::BlobStatus status, store_->GetBlobStatus(sha));
      if (!status.complete) missing.push_back(sha);
      if (missing.size() == limit) break;
    }
    if (batch.size() < kScanBatch) break;
  }
  return missing;
}

absl::StatusOr<std::vector<BlobReference>> SyncEngine::BlobReferences(std::string_view sha256,
                                                                      size_t limit) const {
  std::vector<BlobReference> references;
  if (sha256.size() != storage::kSha256Size || limit == 0) return references;
  std::string prefix(sync_keys::kPendingBlobPrefix);
  prefix.append(sha256);
  prefix.push_back('\0');
  std::string position;
  while (references.size() < limit) {
    ASSIGN_OR_RETURN(auto batch, store_->ScanProjections(prefix, position, kScanBatch));
    for (const auto& [key, value] : batch) {
      position = key;
      const uint64_t offset = sync_keys::TrailingOffset(key, false);
      absl::StatusOr<storage::LogRecord> record = store_->Read(offset);
      if (absl::IsNotFound(record.status())) {
        return absl::DataLossError(
            absl::StrCat("the event at ", offset, " that refers to a blob is missing"));
      }
      RETURN_IF_ERROR(record.status());
      ASSIGN_OR_RETURN(v1::StoredEvent stored, DecodeRecord(*record));
      BlobReference reference;
      reference.offset = offset;
      reference.device_id = stored.event().device_id();
      reference.area_code = stored.event().area_code();
      if (stored.event().has_subject())
        reference.subject_key = SubjectKey(stored.event().subject());
      references.push_back(std::move(reference));
      if (references.size() == limit) break;
    }
    if (batch.size() < kScanBatch) break;
  }
  return references;
}

}  // namespace fieldsync::sync
