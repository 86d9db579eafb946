#include "clients/sdk/client.h"

#include <zlib.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "base/time.h"
#include "clients/sdk/bundle.h"
#include "clients/sdk/event_signing.h"
#include "fieldsync/v1/query_service.grpc.pb.h"
#include "fieldsync/v1/sync_service.grpc.pb.h"

namespace fieldsync::client {
namespace {

using base::FromTimestamp;
using base::ToTimestamp;

constexpr int kSchemaVersion = 1;

// The local database (docs/client.md "Local database"). Entity tables keep
// the server's protobuf records whole (`state`) plus the columns they are
// looked up by.
constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox(
  device_seq INTEGER PRIMARY KEY,
  event_id TEXT NOT NULL UNIQUE,
  kind INTEGER NOT NULL,
  subject_kind INTEGER NOT NULL,
  subject_id TEXT NOT NULL,
  event BLOB NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending',
  log_offset INTEGER NOT NULL DEFAULT 0,
  code TEXT NOT NULL DEFAULT '',
  field TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL DEFAULT '',
  conflict_ids TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS outbox_state ON outbox(state, device_seq);
CREATE INDEX IF NOT EXISTS outbox_subject ON outbox(subject_id);
CREATE TABLE IF NOT EXISTS relay(
  device_id TEXT NOT NULL,
  device_seq INTEGER NOT NULL,
  event_id TEXT NOT NULL,
  kind INTEGER NOT NULL,
  subject_kind INTEGER NOT NULL,
  subject_id TEXT NOT NULL,
  event BLOB NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending',
  log_offset INTEGER NOT NULL DEFAULT 0,
  code TEXT NOT NULL DEFAULT '',
  field TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL DEFAULT '',
  conflict_ids TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(device_id, device_seq));
CREATE TABLE IF NOT EXISTS blobs(
  sha256 BLOB PRIMARY KEY, content_type TEXT NOT NULL, data BLOB NOT NULL,
  uploaded INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS households(
  id TEXT PRIMARY KEY, village_code TEXT NOT NULL, household_number TEXT NOT NULL,
  last_offset INTEGER NOT NULL, local_only INTEGER NOT NULL DEFAULT 0, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS members(
  id TEXT PRIMARY KEY, household_id TEXT NOT NULL, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS plans(id TEXT PRIMARY KEY, subject_id TEXT NOT NULL, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS links(id TEXT PRIMARY KEY, target_id TEXT NOT NULL, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS conflicts(
  id TEXT PRIMARY KEY, household_id TEXT NOT NULL, open INTEGER NOT NULL, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS areas(code TEXT PRIMARY KEY, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS events(
  log_offset INTEGER PRIMARY KEY, subject_id TEXT NOT NULL, kind INTEGER NOT NULL,
  stored BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS events_subject ON events(subject_id, log_offset);
)sql";

uint64_t HlcAt(absl::Time time) {
  const int64_t ms = absl::ToUnixMillis(time);
  return ms <= 0 ? 0 : static_cast<uint64_t>(ms) << 16;
}

absl::Status FromGrpc(const grpc::Status& status, absl::string_view call) {
  if (status.ok()) return absl::OkStatus();
  std::string message = absl::StrCat(call, ": ", status.error_message());
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    absl::StrAppend(&message, " (is the server running and --server right?)");
  }
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), message);
}

uint64_t GzipSize(const std::string& bytes) {
  if (bytes.empty()) return 0;
  z_stream stream{};
  // 15 + 16: a gzip wrapper, as gRPC's gzip message compression writes.
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    return bytes.size();
  }
  std::string out(deflateBound(&stream, bytes.size()) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  stream.avail_in = static_cast<uInt>(bytes.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  deflate(&stream, Z_FINISH);
  uint64_t size = stream.total_out;
  deflateEnd(&stream);
  return size;
}

std::string StateWord(const v1::PushResult& result) {
  switch (result.outcome_case()) {
    case v1::PushResult::kAccepted:
      return "accepted";
    case v1::PushResult::kDuplicate:
      return "duplicate";
    case v1::PushResult::kRejected:
      return "rejected";
    case v1::PushResult::kConflictRecorded:
      return "conflict";
    default:
      return "pending";
  }
}

OutboxEntry::State StateOf(absl::string_view word) {
  if (word == "accepted") return OutboxEntry::State::kAccepted;
  if (word == "duplicate") return OutboxEntry::State::kDuplicate;
  if (word == "rejected") return OutboxEntry::State::kRejected;
  if (word == "conflict") return OutboxEntry::State::kConflict;
  if (word == "held") return OutboxEntry::State::kHeld;
  return OutboxEntry::State::kPending;
}

// Reads a whole file; NOT_FOUND when it cannot.
absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The household an entity of a pulled record belongs to, for refreshes and
// removals; "" when none.
std::string HouseholdOfSubject(const v1::SubjectRef& subject) {
  return subject.kind() == v1::SUBJECT_KIND_HOUSEHOLD ? subject.id() : "";
}

// Today's date in China Standard Time (links' dates are CST civil dates).
v1::Date TodayCst(absl::Time now) {
  absl::CivilDay day = absl::ToCivilDay(now, absl::FixedTimeZone(8 * 3600));
  v1::Date date;
  date.set_year(static_cast<int32_t>(day.year()));
  date.set_month(day.month());
  date.set_day(day.day());
  return date;
}

bool DateBefore(const v1::Date& a, const v1::Date& b) {
  return std::make_tuple(a.year(), a.month(), a.day()) <
         std::make_tuple(b.year(), b.month(), b.day());
}

}  // namespace

std::string StateName(OutboxEntry::State state) {
  switch (state) {
    case OutboxEntry::State::kPending:
      return "pending";
    case OutboxEntry::State::kAccepted:
      return "accepted";
    case OutboxEntry::State::kDuplicate:
      return "duplicate";
    case OutboxEntry::State::kRejected:
      return "rejected";
    case OutboxEntry::State::kConflict:
      return "conflict";
    case OutboxEntry::State::kHeld:
      return "held";
  }
  return "pending";
}

Client::Client(std::unique_ptr<SqliteDb> db, ClientOptions options)
    : db_(std::move(db)), options_(std::move(options)) {}

Client::~Client() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::Open(const std::string& db_path,
                                                     ClientOptions options) {
  ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(db_path));
  std::unique_ptr<Client> client(new Client(std::move(db), std::move(options)));
  RETURN_IF_ERROR(client->Migrate());
  return client;
}

absl::Status Client::Migrate() {
  ASSIGN_OR_RETURN(auto tx, db_->Begin());
  RETURN_IF_ERROR(db_->Exec(kSchema));
  ASSIGN_OR_RETURN(std::string version, Meta("schema_version"));
  if (version.empty()) {
    RETURN_IF_ERROR(SetMeta("schema_version", std::to_string(kSchemaVersion)));
  } else if (version != std::to_string(kSchemaVersion)) {
    return absl::FailedPreconditionError(absl::StrCat("local database has schema version ", version,
                                                      ", this fieldctl knows ", kSchemaVersion,
                                                      ": use a matching fieldctl"));
  }
  return tx->Commit();
}

absl::StatusOr<std::string> Client::Meta(const std::string& key) {
  ASSIGN_OR_RETURN(Statement stmt, db_->Prepare("SELECT value FROM meta WHERE key = ?"));
  stmt.Bind(1, key);
  ASSIGN_OR_RETURN(bool row, stmt.Step());
  return row ? stmt.Text(0) : std::string();
}

absl::Status Client::SetMeta(const std::string& key, const std::string& value) {
  ASSIGN_OR_RETURN(Statement stmt,
                   db_->Prepare("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)"));
  stmt.Bind(1, key).BindBlob(2, value);
  return stmt.Run();
}

absl::Time Client::Now() const { return options_.clock ? options_.clock() : absl::Now(); }

absl::Status Client::ObserveHlc(uint64_t hlc) {
  ASSIGN_OR_RETURN(std::string current, Meta("hlc"));
  uint64_t last = 0;
  if (!current.empty() && !absl::SimpleAtoi(current, &last)) last = 0;
  if (hlc <= last) return absl::OkStatus();
  return SetMeta("hlc", std::to_string(hlc));
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> Client::Channel() {
  if (channel_ != nullptr) return channel_;
  if (options_.channel != nullptr) {
    channel_ = options_.channel;
    return channel_;
  }
  std::string server = options_.server;
  if (server.empty()) {
    ASSIGN_OR_RETURN(server, Meta("server"));
  }
  if (server.empty()) {
    return absl::FailedPreconditionError(
        "no server: pass --server HOST:PORT or set server in fieldctl.toml");
  }
  channel_ = MakeChannel(server, options_.tls_ca_pem);
  return channel_;
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& server,
                                           const std::string& tls_ca_pem) {
  grpc::ChannelArguments args;
  // Events and pull pages are text-heavy protobufs: gzip roughly halves them
  // on the slow links of the field (docs/client.md "Compression").
  args.SetCompressionAlgorithm(GRPC_COMPRESS_GZIP);
  args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
  if (tls_ca_pem.empty()) {
    return grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args);
  }
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = tls_ca_pem;
  return grpc::CreateCustomChannel(server, grpc::SslCredentials(tls), args);
}

std::unique_ptr<grpc::ClientContext> MakeContext(const std::string& token, absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  context->set_compression_algorithm(GRPC_COMPRESS_GZIP);
  return context;
}

absl::StatusOr<std::unique_ptr<grpc::ClientContext>> Client::Context() {
  std::string token = options_.token_override;
  if (token.empty()) {
    ASSIGN_OR_RETURN(token, Meta("token"));
  }
  return MakeContext(token, options_.rpc_timeout);
}

void Client::Count(uint64_t, uint64_t, const std::string& sent_bytes,
                   const std::string& received_bytes, SyncReport& report) {
  report.bytes_sent += sent_bytes.size();
  report.bytes_received += received_bytes.size();
  report.gzip_bytes_sent += GzipSize(sent_bytes);
  report.gzip_bytes_received += GzipSize(received_bytes);
}

// ---------------------------------------------------------------------------
// Identity

absl::StatusOr<Identity> Client::identity() {
  Identity id;
  ASSIGN_OR_RETURN(id.device_id, Meta("device_id"));
  if (id.device_id.empty()) {
    return absl::FailedPreconditionError("not enrolled: run `fieldctl enroll --code CODE` first");
  }
  ASSIGN_OR_RETURN(id.server, Meta("server"));
  ASSIGN_OR_RETURN(id.user_id, Meta("user_id"));
  ASSIGN_OR_RETURN(id.user_name, Meta("user_name"));
  ASSIGN_OR_RETURN(std::string role, Meta("role"));
  int role_number = 0;
  if (absl::SimpleAtoi(role, &role_number) && v1::Role_IsValid(role_number)) {
    id.role = static_cast<v1::Role>(role_number);
  }
  ASSIGN_OR_RETURN(id.public_key, Meta("public_key"));
  return id;
}

absl::StatusOr<Identity> Client::Enroll(const std::string& code, const std::string& device_name,
                                        const std::string& device_model) {
  ASSIGN_OR_RETURN(std::string existing, Meta("device_id"));
  if (!existing.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("this database is already enrolled as device ", existing,
                     ": use another --db for another device"));
  }
  ASSIGN_OR_RETURN(DeviceKey key, MakeDeviceKey());
  ASSIGN_OR_RETURN(auto channel, Channel());
  auto stub = v1::SyncService::NewStub(channel);
  v1::EnrollRequest request;
  request.set_code(code);
  request.set_ed25519_public_key(key.public_key);
  request.set_device_name(device_name);
  request.set_device_model(device_model);
  request.set_app_version("fieldctl 0.1");
  v1::EnrollResponse response;
  grpc::Status status;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
    status = stub->Enroll(&context, request, &response);
    if (status.ok() || !Retryable(status) || attempt >= options_.retry.max_attempts) break;
    Wait(options_.retry, Backoff(options_.retry, attempt, RetryAfter(context)));
  }
  RETURN_IF_ERROR(FromGrpc(status, "enroll"));
  ASSIGN_OR_RETURN(auto tx, db_->Begin());
  RETURN_IF_ERROR(SetMeta("device_id", response.device_id()));
  RETURN_IF_ERROR(SetMeta("token", response.token()));
  RETURN_IF_ERROR(SetMeta("user_id", response.user_id()));
  RETURN_IF_ERROR(SetMeta("user_name", response.user_name()));
  RETURN_IF_ERROR(SetMeta("role", std::to_string(response.role())));
  RETURN_IF_ERROR(SetMeta("public_key", key.public_key));
  RETURN_IF_ERROR(SetMeta("secret_key", key.secret_key));
  RETURN_IF_ERROR(SetMeta("next_seq", "1"));
  if (!options_.server.empty()) RETURN_IF_ERROR(SetMeta("server", options_.server));
  RETURN_IF_ERROR(ObserveHlc(HlcAt(FromTimestamp(response.server_time()))));
  RETURN_IF_ERROR(tx->Commit());
  return identity();
}

// ---------------------------------------------------------------------------
// Recording

absl::StatusOr<std::string> Client::AddPhoto(const std::string& path,
                                             const std::string& content_type) {
  ASSIGN_OR_RETURN(std::string data, ReadFile(path));
  if (data.empty()) return absl::InvalidArgumentError(absl::StrCat("photo ", path, " is empty"));
  const std::string sha = Sha256(data);
  ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("INSERT OR IGNORE INTO blobs(sha256, content_type, data) VALUES (?, ?, ?)"));
  stmt.BindBlob(1, sha).Bind(2, content_type).BindBlob(3, data);
  RETURN_IF_ERROR(stmt.Run());
  return sha;
}

absl::StatusOr<v1::Event> Client::Record(v1::Event event,
                                         const std::vector<std::string>& photo_paths) {
  if (event.body_case() == v1::Event::BODY_NOT_SET) {
    return absl::InvalidArgumentError("event has no body");
  }
  ASSIGN_OR_RETURN(Identity id, identity());
  ASSIGN_OR_RETURN(auto tx, db_->Begin());
  ASSIGN_OR_RETURN(std::string secret_key, Meta("secret_key"));
  ASSIGN_OR_RETURN(std::string next_seq_text, Meta("next_seq"));
  uint64_t next_seq = 1;
  if (!absl::SimpleAtoi(next_seq_text, &next_seq) || next_seq == 0) {
    return absl::DataLossError("local database: next_seq is damaged");
  }
  if (event.area_code().empty()) {
    if (event.subject().kind() != v1::SUBJECT_KIND_HOUSEHOLD) {
      return absl::InvalidArgumentError("area code required for a subject that is not a household");
    }
    ASSIGN_OR_RETURN(Statement stmt,
                     db_->Prepare("SELECT village_code FROM households WHERE id = ?"));
    stmt.Bind(1, event.subject().id());
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) {
      return absl::FailedPreconditionError(absl::StrCat(
          "household ", event.subject().id(), " is not in local state: run `fieldctl sync` first"));
    }
    event.set_area_code(stmt.Text(0));
  }
  for (const std::string& path : photo_paths) {
    ASSIGN_OR_RETURN(std::string sha, AddPhoto(path));
    if (event.has_visit_recorded()) event.mutable_visit_recorded()->add_photo_sha256(sha);
  }
  ASSIGN_OR_RETURN(std::string hlc_text, Meta("hlc"));
  uint64_t last_hlc = 0;
  if (!hlc_text.empty() && !absl::SimpleAtoi(hlc_text, &last_hlc)) last_hlc = 0;
  const absl::Time now = Now();
  const uint64_t hlc = std::max(HlcAt(now), last_hlc + 1);

  if (event.event_id().empty()) event.set_event_id(NewUuid());
  event.set_device_id(id.device_id);
  event.set_device_seq(next_seq);
  event.set_hlc(hlc);
  *event.mutable_device_time() = ToTimestamp(now);
  // Encoded once and signed; the outbox keeps these bytes, so every resend
  // sends exactly what was signed (event.proto SignedEvent).
  ASSIGN_OR_RETURN(const v1::SignedEvent signed_event, SignEvent(secret_key, event));
  const std::string bytes = signed_event.SerializeAsString();
  if (signed_event.event().size() > options_.max_event_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("event is ", signed_event.event().size(),
                                                   " bytes, the server takes at most ",
                                                   options_.max_event_bytes, ": shorten the text"));
  }
  ASSIGN_OR_RETURN(
      Statement insert,
      db_->Prepare("INSERT INTO outbox(device_seq, event_id, kind, subject_kind, subject_id, event)"
                   " VALUES (?, ?, ?, ?, ?, ?)"));
  insert.Bind(1, static_cast<int64_t>(next_seq))
      .Bind(2, event.event_id())
      .Bind(3, static_cast<int64_t>(event.body_case()))
      .Bind(4, static_cast<int64_t>(event.subject().kind()))
      .Bind(5, event.subject().id())
      .BindBlob(6, bytes);
  RETURN_IF_ERROR(insert.Run());

  // The local effect: a registered household is listed at once (local only
  // until pulled); other edits show as the pending rows overlaid by readers.
  if (event.has_household_registered()) {
    const v1::HouseholdRegistered& r = event.household_registered();
    v1::Household household;
    household.set_id(event.subject().id());
    household.set_household_number(r.household_number());
    household.set_village_code(event.area_code());
    household.set_head_name(r.head_name());
    household.set_status(r.initial_status());
    RETURN_IF_ERROR(PutHousehold(household, /*local_only=*/true));
  }
  RETURN_IF_ERROR(SetMeta("next_seq", std::to_string(next_seq + 1)));
  RETURN_IF_ERROR(SetMeta("hlc", std::to_string(hlc)));
  RETURN_IF_ERROR(tx->Commit());
  return event;
}

// ---------------------------------------------------------------------------
// Push

namespace {

struct Row {
  uint64_t device_seq = 0;
  std::string device_id;
  v1::SignedEvent signed_event;  // As signed and stored: sent as it is.
  v1::Event event;               // Parsed from it, for the report.
  size_t bytes = 0;
};

// Reads an outbox or relay blob (a SignedEvent) into `r`; false if damaged.
bool ParseRow(const std::string& blob, Row& r) {
  if (!r.signed_event.ParseFromString(blob)) return false;
  return r.event.ParseFromString(r.signed_event.event());
}

}  // namespace

// One pulled LogEntry, parsed: its record (StoredEvent) and the Event inside,
// read through the accessors a stored event had, so ApplyEvent reads the same.
struct Client::PulledEvent {
  const v1::LogEntry* entry = nullptr;
  v1::StoredEvent stored;
  v1::Event parsed;
  uint64_t offset() const { return entry->offset(); }
  const v1::Event& event() const { return parsed; }
  uint64_t adopted_hlc() const { return stored.adopted_hlc(); }
  const std::string& actor() const { return stored.actor(); }
  const google::protobuf::Timestamp& received_at() const { return stored.received_at(); }
  const google::protobuf::RepeatedPtrField<v1::WriteOutcome>& writes() const {
    return stored.writes();
  }
};

absl::Status Client::PushOutbox(SyncReport& report,
                                const std::function<void(const SyncProgress&)>& progress) {
  RETURN_IF_ERROR(PushOwn(report, progress));
  return PushRelayed(report);
}

absl::Status Client::PushOwn(SyncReport& report,
                             const std::function<void(const SyncProgress&)>& progress) {
  uint64_t total = 0;
  {
    ASSIGN_OR_RETURN(Statement count,
                     db_->Prepare("SELECT COUNT(*) FROM outbox WHERE state = 'pending'"));
    ASSIGN_OR_RETURN(bool row, count.Step());
    total = row ? static_cast<uint64_t>(count.Int(0)) : 0;
  }
  uint64_t done = 0;
  return PushRows(/*device=*/"", report, [&](size_t sent) {
    done += sent;
    if (progress) progress({"push", done, std::max(total, done)});
  });
}

absl::Status Client::PushRelayed(SyncReport& report) {
  // Devices with relay rows to send, each pushed on its own so that one
  // device's missing events never hold another's (or this device's own).
  std::vector<std::string> devices;
  {
    ASSIGN_OR_RETURN(
        Statement select,
        db_->Prepare("SELECT DISTINCT device_id FROM relay WHERE state IN ('pending', 'held')"));
    while (true) {
      ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) break;
      devices.push_back(select.Text(0));
    }
  }
  for (const std::string& device : devices) {
    RETURN_IF_ERROR(PushRows(device, report, nullptr));
  }
  return absl::OkStatus();
}

// The one push loop, for this device's outbox (`device` empty) or for the
// relay rows of one other device: the oldest rows first, in batches within
// both bounds (at least one), the SignedEvents sent exactly as stored, every
// result stored with its batch in one transaction.
absl::Status Client::PushRows(const std::string& device, SyncReport& report,
                              const std::function<void(size_t sent)>& sent) {
  const bool relayed = !device.empty();
  const std::string what = relayed ? "push (relay)" : "push";
  ASSIGN_OR_RETURN(auto channel, Channel());
  auto stub = v1::SyncService::NewStub(channel);
  uint32_t batch_events = options_.max_push_events;
  int attempt = 0;
  bool resent_after_gap = false;
  while (true) {
    std::vector<Row> batch;
    {
      ASSIGN_OR_RETURN(
          Statement select,
          db_->Prepare(relayed ? "SELECT device_seq, event FROM relay WHERE device_id = ? AND"
                                 " state IN ('pending', 'held') ORDER BY device_seq LIMIT ?"
                               : "SELECT device_seq, event FROM outbox WHERE state = 'pending'"
                                 " ORDER BY device_seq LIMIT ?"));
      if (relayed) {
        select.Bind(1, device).Bind(2, static_cast<int64_t>(batch_events));
      } else {
        select.Bind(1, static_cast<int64_t>(batch_events));
      }
      uint64_t bytes = 0;
      while (true) {
        ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        Row r;
        r.device_seq = static_cast<uint64_t>(select.Int(0));
        const std::string blob = select.Text(1);
        if (!ParseRow(blob, r)) {
          return absl::DataLossError(
              absl::StrCat("local database: ", relayed ? "relayed" : "outbox", " event ",
                           r.device_seq, " does not parse"));
        }
        r.bytes = r.signed_event.event().size();
        if (!batch.empty() && bytes + r.bytes > options_.max_push_bytes) break;
        bytes += r.bytes;
        batch.push_back(std::move(r));
      }
    }
    if (batch.empty()) break;
    v1::PushRequest request;
    for (const Row& r : batch) *request.add_events() = r.signed_event;
    // The clock offset is this device's evidence; a relay's clock says nothing of the signer.
    if (!relayed) *request.mutable_device_time() = ToTimestamp(Now());
    v1::PushResponse response;
    ASSIGN_OR_RETURN(auto context, Context());
    grpc::Status status = stub->Push(context.get(), request, &response);
    if (!status.ok()) {
      if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED && batch.size() > 1) {
        // Over the server's batch limits (or its rate): a smaller batch.
        batch_events = std::max<uint32_t>(1, static_cast<uint32_t>(batch.size() / 2));
        ++report.retries;
        continue;
      }
      if (Retryable(status) && ++attempt < options_.retry.max_attempts) {
        ++report.retries;
        Wait(options_.retry, Backoff(options_.retry, attempt, RetryAfter(*context)));
        continue;
      }
      return FromGrpc(status, what);
    }
    attempt = 0;
    if (response.results_size() != static_cast<int>(batch.size())) {
      return absl::InternalError(absl::StrCat(what, ": the server answered ",
                                              response.results_size(), " results for ",
                                              batch.size(), " events"));
    }
    Count(0, 0, request.SerializeAsString(), response.SerializeAsString(), report);
    ASSIGN_OR_RETURN(auto tx, db_->Begin());
    ASSIGN_OR_RETURN(
        Statement update,
        db_->Prepare(relayed ? "UPDATE relay SET state = ?, log_offset = ?, code = ?, field = ?,"
                               " message = ?, conflict_ids = ? WHERE device_id = ? AND"
                               " device_seq = ?"
                             : "UPDATE outbox SET state = ?, log_offset = ?, code = ?, field = ?,"
                               " message = ?, conflict_ids = ? WHERE device_seq = ? AND"
                               " event_id = ?"));
    // The lowest device_seq the server asked for in a Held result, if any.
    std::optional<uint64_t> held_from;
    for (size_t i = 0; i < batch.size(); ++i) {
      const v1::PushResult& result = response.results(static_cast<int>(i));
      uint64_t offset = 0;
      std::string state = StateWord(result);
      std::string code, field, message, conflicts;
      switch (result.outcome_case()) {
        case v1::PushResult::kHeld:
          // Not judged: resent, the same bytes, once the server has what it
          // expects first. An own row stays pending; a relayed one is held
          // until the phone syncs or a bundle with the earlier ones comes.
          held_from = std::min(held_from.value_or(UINT64_MAX), result.held().expected_device_seq());
          if (relayed) {
            state = "held";
            message = absl::StrCat("the server expects event ", result.held().expected_device_seq(),
                                   " of device ", device,
                                   " first; relay the bundle that has it, or let the phone sync");
          } else {
            message = result.held().reason();
          }
          ++report.held;
          break;
        case v1::PushResult::kAccepted:
          offset = result.accepted().offset();
          ++report.accepted;
          break;
        case v1::PushResult::kDuplicate:
          offset = result.duplicate().original_offset();
          ++report.duplicates;
          break;
        case v1::PushResult::kRejected:
          code = v1::RejectionCode_Name(result.rejected().code());
          field = result.rejected().field();
          message = result.rejected().message();
          ++report.rejected;
          break;
        case v1::PushResult::kConflictRecorded:
          offset = result.conflict_recorded().offset();
          conflicts = absl::StrJoin(result.conflict_recorded().conflict_ids(), ",");
          ++report.conflicts;
          break;
        default:
          return absl::InternalError(absl::StrCat(what, ": a result without an outcome"));
      }
      if (batch[i].event.has_visit_recorded()) ++report.visits;
      update.Bind(1, state)
          .Bind(2, static_cast<int64_t>(offset))
          .Bind(3, code)
          .Bind(4, field)
          .Bind(5, message)
          .Bind(6, conflicts);
      if (relayed) {
        update.Bind(7, device).Bind(8, static_cast<int64_t>(batch[i].device_seq));
      } else {
        update.Bind(7, static_cast<int64_t>(batch[i].device_seq))
            .Bind(8, batch[i].event.event_id());
      }
      RETURN_IF_ERROR(update.Run());
      update.Reset();
    }
    if (!relayed && response.has_server_time()) {
      RETURN_IF_ERROR(ObserveHlc(HlcAt(FromTimestamp(response.server_time()))));
    }
    RETURN_IF_ERROR(tx->Commit());
    report.pushed += static_cast<uint32_t>(batch.size());
    if (sent) sent(batch.size());
    if (held_from) {
      // The server misses this device's own events it acknowledged before
      // (restored from a backup): send them again from the number it named,
      // once. Otherwise nothing here fills the gap: the rows wait.
      if (!relayed && !resent_after_gap && *held_from < batch[0].device_seq) {
        ASSIGN_OR_RETURN(
            Statement again,
            db_->Prepare("UPDATE outbox SET state = 'pending' WHERE device_seq >= ? AND"
                         " device_seq < ?"));
        again.Bind(1, static_cast<int64_t>(*held_from))
            .Bind(2, static_cast<int64_t>(batch[0].device_seq));
        RETURN_IF_ERROR(again.Run());
        resent_after_gap = true;
        continue;
      }
      break;
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Blobs

absl::Status Client::UploadBlobs(SyncReport& report,
                                 const std::function<void(const SyncProgress&)>& progress) {
  struct Pending {
    std::string sha, content_type, data;
  };
  std::vector<Pending> pending;
  {
    ASSIGN_OR_RETURN(
        Statement select,
        db_->Prepare("SELECT sha256, content_type, data FROM blobs WHERE uploaded = 0"));
    while (true) {
      ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) break;
      pending.push_back({select.Text(0), select.Text(1), select.Text(2)});
    }
  }
  uint64_t done = 0;
  for (const Pending& blob : pending) {
    absl::Status status = UploadOne(blob.sha, blob.content_type, blob.data, report);
    if (absl::IsFailedPrecondition(status)) {
      // Its event is not on the server yet (rejected or still pending): the
      // photo waits for the next sync; the server takes no unnamed blob.
      continue;
    }
    RETURN_IF_ERROR(status);
    ++done;
    if (progress) progress({"blobs", done, pending.size()});
  }
  return absl::OkStatus();
}

absl::Status Client::UploadOne(const std::string& sha256, const std::string& content_type,
                               const std::string& data, SyncReport& report) {
  ASSIGN_OR_RETURN(auto channel, Channel());
  auto stub = v1::SyncService::NewStub(channel);
  for (int attempt = 1;; ++attempt) {
    // Resume from what the server holds of this device's upload.
    v1::GetBlobStatusRequest status_request;
    status_request.set_sha256(sha256);
    v1::GetBlobStatusResponse held;
    ASSIGN_OR_RETURN(auto status_context, Context());
    grpc::Status status = stub->GetBlobStatus(status_context.get(), status_request, &held);
    uint64_t from = 0;
    if (status.ok()) {
      if (held.complete()) break;
      if (held.total_size() == data.size()) from = held.received_bytes();
    } else if (!Retryable(status)) {
      return FromGrpc(status, "blob status");
    }
    v1::UploadBlobResponse response;
    ASSIGN_OR_RETURN(auto context, Context());
    auto writer = stub->UploadBlob(context.get(), &response);
    v1::UploadBlobRequest header;
    header.mutable_header()->set_sha256(sha256);
    header.mutable_header()->set_total_size(data.size());
    header.mutable_header()->set_content_type(content_type);
    bool open = writer->Write(header);
    for (uint64_t offset = from; open && offset < data.size();
         offset += options_.blob_chunk_bytes) {
      v1::UploadBlobRequest chunk;
      chunk.mutable_chunk()->set_offset(offset);
      chunk.mutable_chunk()->set_data(data.substr(offset, options_.blob_chunk_bytes));
      report.bytes_sent += chunk.chunk().data().size();
      report.gzip_bytes_sent += chunk.chunk().data().size();  // Photos do not compress.
      open = writer->Write(chunk);
    }
    writer->WritesDone();
    status = writer->Finish();
    if (status.ok() && response.complete()) break;
    if (status.ok() || Retryable(status)) {
      if (attempt >= options_.retry.max_attempts) {
        return absl::UnavailableError("blob upload did not complete; sync again to resume");
      }
      ++report.retries;
      Wait(options_.retry, Backoff(options_.retry, attempt, RetryAfter(*context)));
      continue;
    }
    return FromGrpc(status, "blob upload");
  }
  ASSIGN_OR_RETURN(Statement done, db_->Prepare("UPDATE blobs SET uploaded = 1 WHERE sha256 = ?"));
  done.BindBlob(1, sha256);
  RETURN_IF_ERROR(done.Run());
  ++report.blobs_uploaded;
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Pull

absl::StatusOr<v1::Checkpoint> Client::Cursor() {
  ASSIGN_OR_RETURN(std::string bytes, Meta("cursor"));
  v1::Checkpoint cursor;
  if (!bytes.empty() && !cursor.ParseFromString(bytes)) {
    return absl::DataLossError("local database: the pull cursor is damaged");
  }
  return cursor;
}

absl::Status Client::Pull(SyncReport& report,
                          const std::function<void(const SyncProgress&)>& progress) {
  ASSIGN_OR_RETURN(auto channel, Channel());
  auto stub = v1::SyncService::NewStub(channel);
  std::vector<std::string> refresh;
  int attempt = 0;
  while (true) {
    ASSIGN_OR_RETURN(v1::Checkpoint cursor, Cursor());
    v1::PullRequest request;
    *request.mutable_cursor() = cursor;
    v1::PullResponse response;
    ASSIGN_OR_RETURN(auto context, Context());
    grpc::Status status = stub->Pull(context.get(), request, &response);
    if (!status.ok()) {
      if (Retryable(status) && ++attempt < options_.retry.max_attempts) {
        ++report.retries;
        Wait(options_.retry, Backoff(options_.retry, attempt, RetryAfter(*context)));
        continue;
      }
      return FromGrpc(status, "pull");
    }
    attempt = 0;
    Count(0, 0, request.SerializeAsString(), response.SerializeAsString(), report);
    if (response.has_reset()) {
      // Drop local state, never the outbox: push what is pending first so
      // that nothing recorded waits on state about to be rebuilt.
      report.reset = true;
      RETURN_IF_ERROR(PushOutbox(report, progress));
    }
    RETURN_IF_ERROR(ApplyPullPage(response, report, refresh));
    report.head_offset = response.head_offset();
    if (progress) progress({"pull", response.checkpoint().offset(), response.head_offset()});
    if (!response.more()) break;
  }
  std::sort(refresh.begin(), refresh.end());
  refresh.erase(std::unique(refresh.begin(), refresh.end()), refresh.end());
  for (const std::string& id : refresh) RETURN_IF_ERROR(RefreshHousehold(id, report));
  return absl::OkStatus();
}

absl::Status Client::ApplyPullPage(const v1::PullResponse& page, SyncReport& report,
                                   std::vector<std::string>& refresh) {
  ASSIGN_OR_RETURN(auto tx, db_->Begin());
  if (page.has_reset()) RETURN_IF_ERROR(DropLocalState());
  const v1::Snapshot& snapshot = page.snapshot();
  for (const v1::Area& area : snapshot.areas()) RETURN_IF_ERROR(PutArea(area));
  for (const v1::Household& household : snapshot.households()) {
    RETURN_IF_ERROR(PutHousehold(household, false));
  }
  for (const v1::Member& member : snapshot.members()) RETURN_IF_ERROR(PutMember(member));
  for (const v1::Plan& plan : snapshot.plans()) RETURN_IF_ERROR(PutPlan(plan));
  for (const v1::Link& link : snapshot.links()) RETURN_IF_ERROR(PutLink(link));
  for (const v1::Conflict& conflict : snapshot.conflicts()) {
    RETURN_IF_ERROR(PutConflict(conflict));
  }
  for (const v1::LogEntry& entry : page.events()) {
    PulledEvent stored;
    stored.entry = &entry;
    if (!stored.stored.ParseFromString(entry.record()) ||
        !stored.parsed.ParseFromString(stored.stored.event())) {
      return absl::DataLossError(
          absl::StrCat("pull: the record at offset ", entry.offset(), " does not parse"));
    }
    RETURN_IF_ERROR(ApplyEvent(stored, refresh));
    ++report.pulled_events;
  }
  for (const v1::SubjectRef& removed : page.removed_from_scope()) {
    RETURN_IF_ERROR(RemoveSubject(removed));
    ++report.removed_subjects;
    refresh.erase(std::remove(refresh.begin(), refresh.end(), removed.id()), refresh.end());
  }
  RETURN_IF_ERROR(SetMeta("cursor", page.checkpoint().SerializeAsString()));
  if (page.has_server_time()) {
    RETURN_IF_ERROR(ObserveHlc(HlcAt(FromTimestamp(page.server_time()))));
  }
  return tx->Commit();
}

absl::Status Client::DropLocalState() {
  return db_->Exec(
      "DELETE FROM households; DELETE FROM members; DELETE FROM plans; DELETE FROM links;"
      " DELETE FROM conflicts; DELETE FROM areas; DELETE FROM events;");
}

// Replays one pulled event from what the server says it did (its
// WriteOutcomes), never from merge rules of its own: an APPLIED or WON write
// sets the field at the server's version, a LOST one changes nothing, and
// whatever the event alone cannot tell (a conflict's records, a resolution by
// side, a status decision) is read back from the server after the pull.
absl::Status Client::ApplyEvent(const PulledEvent& stored, std::vector<std::string>& refresh) {
  const v1::Event& event = stored.event();
  {
    ASSIGN_OR_RETURN(
        Statement insert,
        db_->Prepare("INSERT OR IGNORE INTO events(log_offset, subject_id, kind, stored)"
                     " VALUES (?, ?, ?, ?)"));
    insert.Bind(1, static_cast<int64_t>(stored.offset()))
        .Bind(2, event.subject().id())
        .Bind(3, static_cast<int64_t>(event.body_case()))
        .BindBlob(4, stored.entry->record());
    RETURN_IF_ERROR(insert.Run());
  }
  RETURN_IF_ERROR(ObserveHlc(stored.adopted_hlc()));
  const std::string household_id = HouseholdOfSubject(event.subject());

  if (event.has_link_started()) {
    const v1::LinkStarted& started = event.link_started();
    v1::Link link;
    link.set_id(started.link_id());
    if (started.holder_case() == v1::LinkStarted::kCadreId) link.set_cadre_id(started.cadre_id());
    if (started.holder_case() == v1::LinkStarted::kUnitId) link.set_unit_id(started.unit_id());
    *link.mutable_target() = event.subject();
    link.set_target_kind(
        event.subject().kind() == v1::SUBJECT_KIND_HOUSEHOLD ? v1::LINK_TARGET_KIND_HOUSEHOLD
        : event.subject().kind() == v1::SUBJECT_KIND_VILLAGE ? v1::LINK_TARGET_KIND_VILLAGE
                                                             : v1::LINK_TARGET_KIND_COUNTY);
    link.set_role(started.role());
    *link.mutable_valid_from() = started.valid_from();
    link.set_active(true);
    link.set_replaces_link_id(started.replaces_link_id());
    link.set_start_reason(started.reason());
    link.set_started_offset(stored.offset());
    link.set_area_code(event.area_code());
    return PutLink(link);
  }
  if (event.has_link_ended()) {
    ASSIGN_OR_RETURN(Statement select, db_->Prepare("SELECT state FROM links WHERE id = ?"));
    select.Bind(1, event.link_ended().link_id());
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) return absl::OkStatus();
    v1::Link link;
    if (!link.ParseFromString(select.Text(0))) return absl::DataLossError("local link damaged");
    *link.mutable_valid_to() = event.link_ended().valid_to();
    link.set_end_reason(event.link_ended().reason());
    link.set_end_note(event.link_ended().note());
    link.set_ended_offset(stored.offset());
    link.set_active(!DateBefore(link.valid_to(), TodayCst(Now())));
    return PutLink(link);
  }
  if (household_id.empty()) return absl::OkStatus();  // Villages, units: history only.

  // The household as held locally.
  v1::Household household;
  bool known = false;
  {
    ASSIGN_OR_RETURN(Statement select,
                     db_->Prepare("SELECT state, local_only FROM households WHERE id = ?"));
    select.Bind(1, household_id);
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (row) {
      if (!household.ParseFromString(select.Text(0))) {
        return absl::DataLossError("local household damaged");
      }
      known = select.Int(1) == 0;
    }
  }
  if (event.has_household_registered()) {
    if (known && household.last_offset() >= stored.offset()) return absl::OkStatus();
    const v1::HouseholdRegistered& r = event.household_registered();
    household.Clear();
    household.set_id(household_id);
    household.set_household_number(r.household_number());
    household.set_village_code(event.area_code());
    household.set_head_name(r.head_name());
    if (r.has_location()) *household.mutable_location() = r.location();
    household.set_status(r.initial_status());
    household.set_status_version(1);
    household.set_monitoring_type(r.monitoring_type());
    auto set_initial = [&](const std::string& field, const v1::FieldValue& value) {
      v1::VersionedValue& v = (*household.mutable_fields())[field];
      *v.mutable_value() = value;
      v.set_version(1);
      v.set_offset(stored.offset());
      v.set_hlc(stored.adopted_hlc());
      v.set_device_id(event.device_id());
      v.set_actor(stored.actor());
    };
    v1::FieldValue text;
    text.set_string_value(r.head_name());
    set_initial("head_name", text);
    text.set_string_value(r.head_id_number());
    set_initial("head_id_number", text);
    if (r.has_location()) {
      v1::FieldValue location;
      *location.mutable_location_value() = r.location();
      set_initial("location", location);
    }
    for (const auto& [name, value] : r.fields()) set_initial(name, value);
    household.set_version(1);
    household.set_first_offset(stored.offset());
    household.set_last_offset(stored.offset());
    *household.mutable_status_changed_at() = stored.received_at();
    return PutHousehold(household, false);
  }
  if (!known) {
    // An event on a household this device has no record of: read it whole.
    refresh.push_back(household_id);
    return absl::OkStatus();
  }
  if (stored.offset() <= household.last_offset()) return absl::OkStatus();  // Already reflected.

  bool changed = false;
  bool needs_refresh = event.has_conflict_resolved() || event.has_status_change_proposed() ||
                       event.has_status_change_confirmed() || event.has_member_removed();
  for (const v1::WriteOutcome& write : stored.writes()) {
    if (!write.conflict_id().empty()) needs_refresh = true;
    if (write.result() != v1::WRITE_RESULT_APPLIED && write.result() != v1::WRITE_RESULT_WON) {
      continue;
    }
    // The value the event carried for this field, when the event says it.
    const v1::FieldValue* value = nullptr;
    const google::protobuf::RepeatedPtrField<v1::FieldPatch>* patches = nullptr;
    if (event.has_household_fields_set()) patches = &event.household_fields_set().patches();
    if (event.has_member_updated()) patches = &event.member_updated().patches();
    if (patches != nullptr) {
      for (const v1::FieldPatch& patch : *patches) {
        if (patch.field() == write.field()) value = &patch.value();
      }
    }
    if (event.has_conflict_resolved() && event.conflict_resolved().has_value()) {
      value = &event.conflict_resolved().value();
    }
    if (write.entity().kind() == v1::SUBJECT_KIND_HOUSEHOLD && value != nullptr) {
      v1::VersionedValue& v = (*household.mutable_fields())[write.field()];
      *v.mutable_value() = *value;
      v.set_version(write.version());
      v.set_offset(stored.offset());
      v.set_hlc(stored.adopted_hlc());
      v.set_device_id(event.device_id());
      v.set_actor(stored.actor());
      if (write.field() == "head_name") household.set_head_name(value->string_value());
      if (write.field() == "location") *household.mutable_location() = value->location_value();
      changed = true;
    } else if (write.entity().kind() == v1::SUBJECT_KIND_PLAN && event.has_plan_revised()) {
      const v1::PlanRevised& revised = event.plan_revised();
      v1::Plan plan;
      {
        ASSIGN_OR_RETURN(Statement select, db_->Prepare("SELECT state FROM plans WHERE id = ?"));
        select.Bind(1, revised.plan_id());
        ASSIGN_OR_RETURN(bool row, select.Step());
        if (row && !plan.ParseFromString(select.Text(0))) {
          return absl::DataLossError("local plan damaged");
        }
        if (!row) plan.set_first_offset(stored.offset());
      }
      plan.set_id(revised.plan_id());
      plan.set_kind(revised.kind());
      *plan.mutable_subject() = event.subject();
      plan.set_unit_id(revised.unit_id());
      plan.set_year(revised.year());
      *plan.mutable_items() = revised.items();
      plan.set_version(write.version());
      plan.set_revisions(plan.revisions() + 1);
      plan.set_last_offset(stored.offset());
      plan.set_hlc(stored.adopted_hlc());
      RETURN_IF_ERROR(PutPlan(plan));
      changed = true;
    } else {
      needs_refresh = true;  // A member write, a status, a resolution by side.
    }
  }
  if (event.has_member_added()) needs_refresh = true;
  if (changed) {
    household.set_version(household.version() + 1);
  }
  household.set_last_offset(stored.offset());
  RETURN_IF_ERROR(PutHousehold(household, false));
  if (needs_refresh) refresh.push_back(household_id);
  return absl::OkStatus();
}

absl::Status Client::RefreshHousehold(const std::string& id, SyncReport& report) {
  ASSIGN_OR_RETURN(auto channel, Channel());
  auto stub = v1::QueryService::NewStub(channel);
  v1::GetHouseholdRequest request;
  request.set_id(id);
  v1::GetHouseholdResponse response;
  grpc::Status status;
  for (int attempt = 1;; ++attempt) {
    ASSIGN_OR_RETURN(auto context, Context());
    status = stub->GetHousehold(context.get(), request, &response);
    if (status.ok() || !Retryable(status) || attempt >= options_.retry.max_attempts) break;
    ++report.retries;
    Wait(options_.retry, Backoff(options_.retry, attempt, RetryAfter(*context)));
  }
  if (status.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
      status.error_code() == grpc::StatusCode::NOT_FOUND) {
    return absl::OkStatus();  // Left the scope meanwhile: the next pull removes it.
  }
  RETURN_IF_ERROR(FromGrpc(status, "get household"));
  Count(0, 0, request.SerializeAsString(), response.SerializeAsString(), report);
  ASSIGN_OR_RETURN(auto tx, db_->Begin());
  {
    ASSIGN_OR_RETURN(Statement select, db_->Prepare("SELECT state FROM households WHERE id = ?"));
    select.Bind(1, id);
    ASSIGN_OR_RETURN(bool row, select.Step());
    v1::Household local;
    if (row && local.ParseFromString(select.Text(0)) &&
        local.last_offset() > response.household().last_offset()) {
      return absl::OkStatus();  // A later pull already brought newer state.
    }
  }
  RETURN_IF_ERROR(PutHousehold(response.household(), false));
  {
    ASSIGN_OR_RETURN(Statement drop, db_->Prepare("DELETE FROM conflicts WHERE household_id = ?"));
    drop.Bind(1, id);
    RETURN_IF_ERROR(drop.Run());
  }
  for (const v1::Member& member : response.members()) RETURN_IF_ERROR(PutMember(member));
  for (const v1::Plan& plan : response.plans()) RETURN_IF_ERROR(PutPlan(plan));
  for (const v1::Link& link : response.links()) RETURN_IF_ERROR(PutLink(link));
  for (const v1::Conflict& conflict : response.conflicts()) {
    v1::Conflict copy = conflict;
    RETURN_IF_ERROR(PutConflict(copy));
  }
  return tx->Commit();
}

// ---------------------------------------------------------------------------
// Local state

absl::Status Client::PutHousehold(const v1::Household& household, bool local_only) {
  ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("INSERT OR REPLACE INTO households(id, village_code, household_number,"
                   " last_offset, local_only, state) VALUES (?, ?, ?, ?, ?, ?)"));
  stmt.Bind(1, household.id())
      .Bind(2, household.village_code())
      .Bind(3, household.household_number())
      .Bind(4, static_cast<int64_t>(household.last_offset()))
      .Bind(5, local_only ? 1 : 0)
      .BindBlob(6, household.SerializeAsString());
  return stmt.Run();
}

absl::Status Client::PutMember(const v1::Member& member) {
  ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("INSERT OR REPLACE INTO members(id, household_id, state) VALUES (?, ?, ?)"));
  stmt.Bind(1, member.id()).Bind(2, member.household_id()).BindBlob(3, member.SerializeAsString());
  return stmt.Run();
}

absl::Status Client::PutPlan(const v1::Plan& plan) {
  ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("INSERT OR REPLACE INTO plans(id, subject_id, state) VALUES (?, ?, ?)"));
  stmt.Bind(1, plan.id()).Bind(2, plan.subject().id()).BindBlob(3, plan.SerializeAsString());
  return stmt.Run();
}

absl::Status Client::PutLink(const v1::Link& link) {
  ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("INSERT OR REPLACE INTO links(id, target_id, state) VALUES (?, ?, ?)"));
  stmt.Bind(1, link.id()).Bind(2, link.target().id()).BindBlob(3, link.SerializeAsString());
  return stmt.Run();
}

absl::Status Client::PutConflict(const v1::Conflict& conflict) {
  // The household a conflict hangs off: itself, a member's or a plan's.
  std::string household_id = HouseholdOfSubject(conflict.subject());
  if (conflict.subject().kind() == v1::SUBJECT_KIND_MEMBER) {
    ASSIGN_OR_RETURN(Statement select,
                     db_->Prepare("SELECT household_id FROM members WHERE id = ?"));
    select.Bind(1, conflict.subject().id());
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (row) household_id = select.Text(0);
  } else if (conflict.subject().kind() == v1::SUBJECT_KIND_PLAN) {
    ASSIGN_OR_RETURN(Statement select, db_->Prepare("SELECT subject_id FROM plans WHERE id = ?"));
    select.Bind(1, conflict.subject().id());
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (row) household_id = select.Text(0);
  }
  ASSIGN_OR_RETURN(Statement stmt,
                   db_->Prepare("INSERT OR REPLACE INTO conflicts(id, household_id, open, state)"
                                " VALUES (?, ?, ?, ?)"));
  stmt.Bind(1, conflict.id())
      .Bind(2, household_id)
      .Bind(3, conflict.open() ? 1 : 0)
      .BindBlob(4, conflict.SerializeAsString());
  return stmt.Run();
}

absl::Status Client::PutArea(const v1::Area& area) {
  ASSIGN_OR_RETURN(Statement stmt,
                   db_->Prepare("INSERT OR REPLACE INTO areas(code, state) VALUES (?, ?)"));
  stmt.Bind(1, area.code()).BindBlob(2, area.SerializeAsString());
  return stmt.Run();
}

absl::Status Client::RemoveSubject(const v1::SubjectRef& subject) {
  const char* statements[] = {
      "DELETE FROM households WHERE id = ?1",
      "DELETE FROM members WHERE household_id = ?1",
      "DELETE FROM plans WHERE subject_id = ?1",
      "DELETE FROM links WHERE target_id = ?1",
      "DELETE FROM conflicts WHERE household_id = ?1",
  };
  for (const char* sql : statements) {
    ASSIGN_OR_RETURN(Statement stmt, db_->Prepare(sql));
    stmt.Bind(1, subject.id());
    RETURN_IF_ERROR(stmt.Run());
  }
  return absl::OkStatus();
}

namespace {

template <typename Message>
absl::StatusOr<std::vector<Message>> ReadAll(SqliteDb& db, const std::string& sql,
                                             const std::string& arg = "", bool bind = false) {
  ASSIGN_OR_RETURN(Statement stmt, db.Prepare(sql));
  if (bind) stmt.Bind(1, arg);
  std::vector<Message> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    Message message;
    if (!message.ParseFromString(stmt.Text(0))) {
      return absl::DataLossError("local database: a stored record does not parse");
    }
    out.push_back(std::move(message));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<v1::Household>> Client::Households() {
  return ReadAll<v1::Household>(
      *db_, "SELECT state FROM households ORDER BY village_code, household_number");
}

absl::StatusOr<v1::Household> Client::Household(const std::string& id) {
  ASSIGN_OR_RETURN(auto rows, ReadAll<v1::Household>(*db_,
                                                     "SELECT state FROM households WHERE id = ?1 OR"
                                                     " household_number = ?1",
                                                     id, true));
  if (rows.empty()) {
    return absl::NotFoundError(
        absl::StrCat("household ", id, " is not in local state (not in scope, or sync first)"));
  }
  return rows.front();
}

absl::StatusOr<std::vector<v1::Member>> Client::MembersOf(const std::string& household_id) {
  return ReadAll<v1::Member>(*db_, "SELECT state FROM members WHERE household_id = ? ORDER BY id",
                             household_id, true);
}

absl::StatusOr<std::vector<v1::Link>> Client::Links() {
  return ReadAll<v1::Link>(*db_, "SELECT state FROM links ORDER BY id");
}

absl::StatusOr<std::vector<v1::Conflict>> Client::Conflicts(bool open_only) {
  return ReadAll<v1::Conflict>(*db_, open_only
                                         ? "SELECT state FROM conflicts WHERE open = 1 ORDER BY id"
                                         : "SELECT state FROM conflicts ORDER BY id");
}

absl::StatusOr<std::optional<v1::Conflict>> Client::Conflict(const std::string& id) {
  ASSIGN_OR_RETURN(
      auto rows, ReadAll<v1::Conflict>(*db_, "SELECT state FROM conflicts WHERE id = ?", id, true));
  if (rows.empty()) return std::optional<v1::Conflict>();
  return std::optional<v1::Conflict>(rows.front());
}

absl::StatusOr<std::vector<v1::Plan>> Client::PlansOf(const std::string& subject_id) {
  return ReadAll<v1::Plan>(*db_, "SELECT state FROM plans WHERE subject_id = ? ORDER BY id",
                           subject_id, true);
}

absl::StatusOr<std::vector<v1::Event>> Client::PendingOn(const std::string& subject_id) {
  ASSIGN_OR_RETURN(
      std::vector<v1::SignedEvent> rows,
      ReadAll<v1::SignedEvent>(*db_,
                               "SELECT event FROM outbox WHERE subject_id = ? AND state = 'pending'"
                               " ORDER BY device_seq",
                               subject_id, true));
  std::vector<v1::Event> out;
  for (const v1::SignedEvent& row : rows) {
    ASSIGN_OR_RETURN(v1::Event event, EventOf(row));
    out.push_back(std::move(event));
  }
  return out;
}

absl::StatusOr<std::vector<OutboxEntry>> Client::Outbox(bool with_relayed) {
  std::vector<OutboxEntry> out;
  auto read = [&](const std::string& sql, bool relayed) -> absl::Status {
    ASSIGN_OR_RETURN(Statement stmt, db_->Prepare(sql));
    while (true) {
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      OutboxEntry entry;
      entry.device_seq = static_cast<uint64_t>(stmt.Int(0));
      v1::SignedEvent signed_event;
      if (!signed_event.ParseFromString(stmt.Text(1)) ||
          !entry.event.ParseFromString(signed_event.event())) {
        return absl::DataLossError("local database: an outbox event does not parse");
      }
      entry.state = StateOf(stmt.Text(2));
      entry.offset = static_cast<uint64_t>(stmt.Int(3));
      entry.code = stmt.Text(4);
      entry.field = stmt.Text(5);
      entry.message = stmt.Text(6);
      const std::string conflicts = stmt.Text(7);
      if (!conflicts.empty()) entry.conflict_ids = absl::StrSplit(conflicts, ',');
      entry.device_id = entry.event.device_id();
      entry.event_id = entry.event.event_id();
      entry.kind = static_cast<v1::EventKind>(entry.event.body_case());
      entry.subject = entry.event.subject();
      entry.relayed = relayed;
      out.push_back(std::move(entry));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(
      read("SELECT device_seq, event, state, log_offset, code, field, message, conflict_ids"
           " FROM outbox ORDER BY device_seq",
           false));
  if (with_relayed) {
    RETURN_IF_ERROR(
        read("SELECT device_seq, event, state, log_offset, code, field, message, conflict_ids"
             " FROM relay ORDER BY device_id, device_seq",
             true));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Relay

absl::StatusOr<uint32_t> Client::ExportBundle(const std::string& path) {
  ASSIGN_OR_RETURN(Identity id, identity());
  ASSIGN_OR_RETURN(auto events,
                   ReadAll<v1::SignedEvent>(*db_,
                                            "SELECT event FROM outbox WHERE state = 'pending'"
                                            " ORDER BY device_seq"));
  (void)id;
  RETURN_IF_ERROR(WriteBundle(path, events));
  return static_cast<uint32_t>(events.size());
}

absl::StatusOr<uint32_t> Client::ImportBundle(const std::string& path) {
  ASSIGN_OR_RETURN(Identity id, identity());
  ASSIGN_OR_RETURN(std::vector<v1::SignedEvent> bundle, ReadBundle(path));
  ASSIGN_OR_RETURN(auto tx, db_->Begin());
  ASSIGN_OR_RETURN(Statement insert,
                   db_->Prepare("INSERT OR IGNORE INTO relay(device_id, device_seq, event_id, kind,"
                                " subject_kind, subject_id, event) VALUES (?, ?, ?, ?, ?, ?, ?)"));
  uint32_t added = 0;
  for (const v1::SignedEvent& signed_event : bundle) {
    ASSIGN_OR_RETURN(const v1::Event event, EventOf(signed_event));
    if (event.device_id() == id.device_id) {
      return absl::InvalidArgumentError(
          "this bundle holds this device's own events: they are already in its outbox");
    }
    insert.Bind(1, event.device_id())
        .Bind(2, static_cast<int64_t>(event.device_seq()))
        .Bind(3, event.event_id())
        .Bind(4, static_cast<int64_t>(event.body_case()))
        .Bind(5, static_cast<int64_t>(event.subject().kind()))
        .Bind(6, event.subject().id())
        .BindBlob(7, signed_event.SerializeAsString());
    RETURN_IF_ERROR(insert.Run());
    added += static_cast<uint32_t>(sqlite3_changes(db_->handle()));
    insert.Reset();
  }
  RETURN_IF_ERROR(tx->Commit());
  return added;
}

// ---------------------------------------------------------------------------
// Sync

absl::StatusOr<SyncReport> Client::Sync(const std::function<void(const SyncProgress&)>& progress) {
  // A device that never enrolled has nothing to sync with: say so before any
  // call (the server would only answer UNAUTHENTICATED).
  RETURN_IF_ERROR(identity().status());
  SyncReport report;
  RETURN_IF_ERROR(PushOutbox(report, progress));
  // Photos after their events: the server takes a blob only once an event
  // that names it is in the log (sync_service.proto UploadBlob).
  RETURN_IF_ERROR(UploadBlobs(report, progress));
  RETURN_IF_ERROR(Pull(report, progress));
  ASSIGN_OR_RETURN(Statement count,
                   db_->Prepare("SELECT COUNT(*) FROM outbox WHERE state = 'pending'"));
  ASSIGN_OR_RETURN(bool row, count.Step());
  report.pending_left = row ? static_cast<uint32_t>(count.Int(0)) : 0;
  return report;
}

}  // namespace fieldsync::client
