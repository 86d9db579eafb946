// fieldctl: the command line of fieldsync for cadres, township staff, HQ
// and scripts (docs/client.md "fieldctl"). Device commands work on the
// local database of the client SDK (--db) and reach the server only in
// `sync`, `relay`, `enroll` and online queries; admin commands call
// AdminService with the token of --token-file.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <type_traits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "clients/export/export.h"
#include "clients/fieldctl/args.h"
#include "clients/fieldctl/output.h"
#include "clients/sdk/client.h"
#include "clients/sdk/event_signing.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "fieldsync/v1/query_service.grpc.pb.h"
#include "fieldsync/v1/report_service.grpc.pb.h"

namespace fieldsync::fieldctl {
namespace {

using client::Client;

constexpr char kGlobalUsage[] =
    R"(usage: fieldctl [--server HOST:PORT] [--db FILE] [--token-file FILE] [--json] [--retries N] [--tls-ca FILE] COMMAND ...

Device commands (local database --db, synced with `sync`):
  enroll --code CODE [--name NAME] [--model MODEL]   make the device key and enroll
  visit record --household ID --start RFC3339 --end RFC3339 [--purpose P] [--notes T] [--photo FILE]...
  household list | show ID | register ... | set ID FIELD=VALUE...
  status propose ... | status confirm ...            status changes of a household
  plan revise ...                                    a new revision of a household exit plan
  sync                                               push the outbox, upload photos, pull
  outbox [list] [--state S] | outbox export FILE     what is pending / accepted / rejected / in conflict
  relay FILE                                         import a phone's bundle and push it
  conflicts list [--scope PREFIX] | conflicts resolve ID (--side N | --value V) [--note T]
Online commands (as a person: --token-file FILE, else the enrolled device of --db):
  export [--from OFFSET] [--format jsonl|csv] [--checkpoint FILE] [--output FILE]   the event log
  report assessment|evidence --scope PREFIX [--year Y] [--csv]   quotas / evidence flags
  report feedback|inspections --scope PREFIX                      信息服務 / 調研督查
Admin commands (--token-file with an admin token):
  admin areas import FILE [--dry-run]
  admin unit upsert --id ID --name NAME --area CODE [--level L] [--kind K] | admin unit list [--scope PREFIX]
  admin user upsert --id ID --name NAME --role ROLE [--unit U] [--rank R] [--scope CODE]...
  admin user list [--scope PREFIX]
  admin link start --cadre USER|--unit UNIT --target-kind household|village|county --target ID --role ROLE [--id ID] [--from DATE]
  admin link end ID --reason REASON [--to DATE] [--note T] [--replacement USER | --replacement-unit UNIT]
  admin link list [--cadre USER] [--scope PREFIX] [--active-only]
  admin code issue --user USER [--ttl DURATION]
  admin device list [--user USER] [--include-revoked] | admin device revoke ID --reason T
  admin backup [create [--label L] | list]

--retries N: attempts of a call the server answers UNAVAILABLE or RESOURCE_EXHAUSTED, with
  exponential back-off and jitter (default 6).
--tls-ca FILE: PEM CA certificates that verify the server's TLS certificate (else plaintext).
Settings: flags, else ~/.config/fieldsync/fieldctl.toml (or $FIELDCTL_CONFIG) with
  server = "HOST:PORT"   db = "FILE"   token_file = "FILE"   tls_ca = "FILE"
Exit codes: 0 done, 1 failed, 2 usage, 3 sync done but events were rejected, are in
conflict, or are held (see `fieldctl outbox`).
Every command takes --help.
)";

// The options every command may take.
const std::set<std::string> kBooleans = {
    "json",      "help",      "dry-run", "active-only", "include-revoked",        "all",
    "confirmed", "open-only", "follow",  "csv",         "group-leader-units-only"};

struct Settings {
  int retries = 6;  // Attempts of a call that failed UNAVAILABLE / RESOURCE_EXHAUSTED.
  std::string server;
  std::string db;
  std::string token_file;
  std::string tls_ca_pem;  // Contents of --tls-ca.
  bool json = false;
};

// One run of fieldctl: settings, arguments and where output goes.
class Cli {
 public:
  Cli(Settings settings, Args args) : settings_(std::move(settings)), args_(std::move(args)) {}

  int Run();

 private:
  // Words after the command path.
  const std::vector<std::string>& words() const { return args_.positional(); }
  std::string Word(size_t i) const { return i < words().size() ? words()[i] : ""; }

  int Usage(const std::string& message, const std::string& usage) {
    std::cerr << "fieldctl: " << message << "\n" << usage;
    return kExitUsage;
  }
  int Fail(const absl::Status& status) {
    if (settings_.json) {
      std::cout << JsonObject()
                       .Str("error", std::string(status.message()))
                       .Str("code", absl::StatusCodeToString(status.code()))
                       .Build()
                << "\n";
    }
    std::cerr << "fieldctl: " << status.message() << "\n";
    return kExitFailed;
  }
  bool Help(const std::string& usage) {
    if (!args_.Has("help")) return false;
    std::cout << usage;
    return true;
  }
  absl::StatusOr<std::unique_ptr<Client>> OpenClient();
  absl::StatusOr<std::string> AdminToken();
  std::shared_ptr<grpc::Channel> AdminChannel() {
    return client::MakeChannel(settings_.server, settings_.tls_ca_pem);
  }

  int Enroll();
  int Visit();
  int HouseholdCmd();
  int Status();
  int Plan();
  int Sync();
  int OutboxCmd();
  int Relay();
  int ConflictsCmd();
  int Admin();
  int Export();
  int Report();
  // The bearer token of an online command run as a person (export, report):
  // --token-file's, else the enrolled device's of --db.
  absl::StatusOr<std::string> UserToken(const std::string& command);
  int PrintOutbox(const std::vector<client::OutboxEntry>& entries);
  int PrintSync(const client::SyncReport& report, int extra_exit);

  // The admin commands' shared part (see Admin()).
  struct AdminCall;
  template <typename Request, typename Response>
  absl::Status CallAdmin(AdminCall& admin,
                         grpc::Status (v1::AdminService::Stub::*rpc)(grpc::ClientContext*,
                                                                     const Request&, Response*),
                         const Request& request, Response* response);
  template <typename Request, typename Response, typename Text>
  int AdminRpc(AdminCall& admin,
               grpc::Status (v1::AdminService::Stub::*rpc)(grpc::ClientContext*, const Request&,
                                                           Response*),
               const Request& request, Text text);
  // Prints `response` as JSON with --json, else `text`; returns kExitOk.
  int Print(const google::protobuf::Message& response, const std::string& text);
  // "<command> needs --<name>" for the first of `names` not given, else "".
  std::string Missing(const std::string& command, std::initializer_list<const char*> names);

  Settings settings_;
  Args args_;
};

absl::StatusOr<std::unique_ptr<Client>> Cli::OpenClient() {
  client::ClientOptions options;
  options.server = settings_.server;
  options.retry.max_attempts = settings_.retries;
  options.tls_ca_pem = settings_.tls_ca_pem;
  if (!settings_.token_file.empty()) {
    auto token = AdminToken();
    if (!token.ok()) return token.status();
    options.token_override = *token;
  }
  return Client::Open(settings_.db, std::move(options));
}

absl::StatusOr<std::string> Cli::AdminToken() {
  if (settings_.token_file.empty()) {
    return absl::FailedPreconditionError(
        "admin commands need --token-file FILE (the admin token fieldsyncd printed)");
  }
  std::ifstream in(settings_.token_file);
  if (!in)
    return absl::NotFoundError(absl::StrCat("cannot read token file ", settings_.token_file));
  std::string token;
  std::getline(in, token);
  token = std::string(absl::StripAsciiWhitespace(token));
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token file ", settings_.token_file, " is empty"));
  }
  return token;
}

// ---------------------------------------------------------------------------
// Value parsing

absl::StatusOr<absl::Time> ParseTime(const std::string& text, const std::string& flag) {
  absl::Time time;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, text, &time, &error)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " ", text, ": want RFC 3339, e.g. 2024-03-01T09:30:00+08:00"));
  }
  return time;
}

google::protobuf::Timestamp Ts(absl::Time time) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(absl::ToUnixSeconds(time));
  return ts;
}

absl::StatusOr<v1::Date> ParseDate(const std::string& text, const std::string& flag) {
  std::vector<std::string> parts = absl::StrSplit(text, '-');
  int y, m, d;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &y) || !absl::SimpleAtoi(parts[1], &m) ||
      !absl::SimpleAtoi(parts[2], &d)) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", text, ": want YYYY-MM-DD"));
  }
  v1::Date date;
  date.set_year(y);
  date.set_month(m);
  date.set_day(d);
  return date;
}

v1::Date Today() {
  absl::CivilDay day = absl::ToCivilDay(absl::Now(), absl::FixedTimeZone(8 * 3600));
  v1::Date date;
  date.set_year(static_cast<int32_t>(day.year()));
  date.set_month(day.month());
  date.set_day(day.day());
  return date;
}

// An enum value by its short name: "routine" for VISIT_PURPOSE_ROUTINE.
template <typename Enum>
absl::StatusOr<Enum> ParseEnum(const google::protobuf::EnumDescriptor* descriptor,
                               const std::string& prefix, const std::string& text,
                               const std::string& flag) {
  std::string name = absl::StrCat(prefix, absl::AsciiStrToUpper(text));
  std::replace(name.begin(), name.end(), '-', '_');
  const google::protobuf::EnumValueDescriptor* value = descriptor->FindValueByName(name);
  if (value == nullptr || value->number() == 0) {
    std::vector<std::string> names;
    for (int i = 1; i < descriptor->value_count(); ++i) {
      std::string n = absl::AsciiStrToLower(descriptor->value(i)->name().substr(prefix.size()));
      names.push_back(n);
    }
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " ", text, ": want one of ", absl::StrJoin(names, ", ")));
  }
  return static_cast<Enum>(value->number());
}

// The short name of an enum value: "not_exited" for HOUSEHOLD_STATUS_NOT_EXITED.
std::string EnumWord(const google::protobuf::EnumDescriptor* descriptor, int number,
                     const std::string& prefix) {
  const google::protobuf::EnumValueDescriptor* value = descriptor->FindValueByNumber(number);
  if (value == nullptr) return std::to_string(number);
  return absl::AsciiStrToLower(value->name().substr(prefix.size()));
}

std::string StatusWord(v1::HouseholdStatus status) {
  return EnumWord(v1::HouseholdStatus_descriptor(), status, "HOUSEHOLD_STATUS_");
}

// FIELD=VALUE with an optional type: name=text, size:int=5, insured:bool=true,
// area:double=1.5, phone:null (clears the field).
absl::StatusOr<std::pair<std::string, v1::FieldValue>> ParseAssignment(const std::string& text) {
  v1::FieldValue value;
  size_t eq = text.find('=');
  std::string left = eq == std::string::npos ? text : text.substr(0, eq);
  std::string right = eq == std::string::npos ? "" : text.substr(eq + 1);
  std::string type = "text";
  size_t colon = left.find(':');
  if (colon != std::string::npos) {
    type = left.substr(colon + 1);
    left = left.substr(0, colon);
  }
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(text, ": ", why,
                                                   " (FIELD=VALUE, FIELD:int=N, FIELD:bool=true,"
                                                   " FIELD:double=X, FIELD:null)"));
  };
  if (left.empty()) return bad("no field name");
  if (type == "null") return std::make_pair(left, value);
  if (eq == std::string::npos) return bad("no value");
  if (type == "text") {
    value.set_string_value(right);
  } else if (type == "int") {
    int64_t n;
    if (!absl::SimpleAtoi(right, &n)) return bad("not an integer");
    value.set_int_value(n);
  } else if (type == "bool") {
    bool b;
    if (!absl::SimpleAtob(right, &b)) return bad("not true or false");
    value.set_bool_value(b);
  } else if (type == "double") {
    double d;
    if (!absl::SimpleAtod(right, &d)) return bad("not a number");
    value.set_double_value(d);
  } else {
    return bad(absl::StrCat("unknown type ", type));
  }
  return std::make_pair(left, value);
}

std::string ValueText(const v1::FieldValue& value) {
  switch (value.value_case()) {
    case v1::FieldValue::kStringValue:
      return value.string_value();
    case v1::FieldValue::kIntValue:
      return std::to_string(value.int_value());
    case v1::FieldValue::kDoubleValue:
      return absl::StrCat(value.double_value());
    case v1::FieldValue::kBoolValue:
      return value.bool_value() ? "true" : "false";
    case v1::FieldValue::VALUE_NOT_SET:
      return "(null)";
    default:
      return value.ShortDebugString();
  }
}

v1::SubjectRef HouseholdRef(const std::string& id) {
  v1::SubjectRef ref;
  ref.set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
  ref.set_id(id);
  return ref;
}

// A household id from an id or a registry number held locally.
absl::StatusOr<v1::Household> LocalHousehold(Client& client, const std::string& key) {
  return client.Household(key);
}

// ---------------------------------------------------------------------------
// Commands

int Cli::Run() {
  const std::string command = Word(0);
  if (command.empty() || command == "help") {
    if (args_.Has("help") || command == "help") {
      std::cout << kGlobalUsage;
      return kExitOk;
    }
    return Usage("no command", kGlobalUsage);
  }
  if (command == "enroll") return Enroll();
  if (command == "visit") return Visit();
  if (command == "household") return HouseholdCmd();
  if (command == "status") return Status();
  if (command == "plan") return Plan();
  if (command == "sync") return Sync();
  if (command == "outbox") return OutboxCmd();
  if (command == "relay") return Relay();
  if (command == "conflicts") return ConflictsCmd();
  if (command == "admin") return Admin();
  if (command == "report") return Report();
  if (command == "export") return Export();
  return Usage(absl::StrCat("unknown command ", command), kGlobalUsage);
}

int Cli::Enroll() {
  constexpr char kUsage[] =
      "usage: fieldctl [--server HOST:PORT] [--db FILE] enroll --code CODE [--name NAME] "
      "[--model MODEL]\n  Makes the device key (it never leaves --db) and enrolls it with a "
      "one-time code\n  from `fieldctl admin code issue`.\n";
  if (Help(kUsage)) return kExitOk;
  auto code = args_.Get("code");
  if (!code) return Usage("enroll needs --code", kUsage);
  auto client = OpenClient();
  if (!client.ok()) return Fail(client.status());
  auto id = (*client)->Enroll(*code, args_.GetOr("name", ""), args_.GetOr("model", ""));
  if (!id.ok()) return Fail(id.status());
  std::string role = EnumWord(v1::Role_descriptor(), id->role, "ROLE_");
  if (settings_.json) {
    std::cout << JsonObject()
                     .Str("device_id", id->device_id)
                     .Str("user_id", id->user_id)
                     .Str("user_name", id->user_name)
                     .Str("role", role)
                     .Build()
              << "\n";
  } else {
    std::cout << "enrolled device " << id->device_id << " for " << id->user_name << " ("
              << id->user_id << ", " << role << ")\nnext: fieldctl sync\n";
  }
  return kExitOk;
}

// Prints a recorded event.
int PrintRecorded(bool json, const v1::Event& event, const std::string& what) {
  if (json) {
    std::cout << JsonObject()
                     .Str("event_id", event.event_id())
                     .Int("device_seq", static_cast<long long>(event.device_seq()))
                     .Str("subject", event.subject().id())
                     .Str("state", "pending")
                     .Build()
              << "\n";
  } else {
    std::cout << what << " recorded as event " << event.event_id() << " (#" << event.device_seq()
              << "), pending until `fieldctl sync`\n";
  }
  return kExitOk;
}

int Cli::Visit() {
  constexpr char kUsage[] =
      "usage: fieldctl visit record --household ID --start RFC3339 --end RFC3339 [--purpose P]\n"
      "         [--purpose-note T] [--notes T] [--photo FILE]... [--confirmed-by NAME]\n"
      "  P: routine (default), policy_explanation, planning, measure_delivery, income_survey,\n"
      "     registry, status_verification, other\n";
  if (Help(kUsage)) return kExitOk;
  if (Word(1) != "record") return Usage("want `visit record`", kUsage);
  auto household = args_.Get("household");
  auto start = args_.Get("start");
  auto end = args_.Get("end");
  if (!household || !start || !end)
    return Usage("visit record needs --household, --start, --end", kUsage);
  auto start_time = ParseTime(*start, "start");
  if (!start_time.ok()) return Usage(std::string(start_time.status().message()), kUsage);
  auto end_time = ParseTime(*end, "end");
  if (!end_time.ok()) return Usage(std::string(end_time.status().message()), kUsage);
  if (*end_time < *start_time) return Usage("--end is before --start", kUsage);
  auto purpose = ParseEnum<v1::VisitPurpose>(v1::VisitPurpose_descriptor(), "VISIT_PURPOSE_",
                                             args_.GetOr("purpose", "routine"), "purpose");
  if (!purpose.ok()) return Usage(std::string(purpose.status().message()), kUsage);
  auto client = OpenClient();
  if (!client.ok()) return Fail(client.status());
  auto local = LocalHousehold(**client, *household);
  if (!local.ok()) return Fail(local.status());
  v1::Event event;
  *event.mutable_subject() = HouseholdRef(local->id());
  v1::VisitRecorded* visit = event.mutable_visit_recorded();
  *visit->mutable_start_time() = Ts(*start_time);
  *visit->mutable_end_time() = Ts(*end_time);
  visit->set_purpose(*purpose);
  visit->set_purpose_note(args_.GetOr("purpose-note", ""));
  visit->set_notes(args_.GetOr("notes", ""));
  if (auto who = args_.Get("confirmed-by")) {
    visit->set_household_confirmed(true);
    visit->set_confirmer_name(*who);
  }
  auto recorded = (*client)->Record(event, args_.All("photo"));
  if (!recorded.ok()) return Fail(recorded.status());
  return PrintRecorded(settings_.json, *recorded, "visit");
}

int Cli::HouseholdCmd() {
  constexpr char kUsage[] =
      "usage: fieldctl household list\n"
      "       fieldctl household show ID|NUMBER\n"
      "       fieldctl household register --village CODE --number N --head NAME --head-id ID\n"
      "                [--id UUID] [FIELD=VALUE]...\n"
      "       fieldctl household set ID|NUMBER FIELD=VALUE... (FIELD:int=N, FIELD:bool=B,\n"
      "                FIELD:double=X, FIELD:null)\n";
  if (Help(kUsage)) return kExitOk;
  const std::string sub = Word(1);
  if (sub != "list" && sub != "show" && sub != "register" && sub != "set") {
    return Usage("want household list|show|register|set", kUsage);
  }
  if ((sub == "show" || sub == "set") && Word(2).empty()) {
    return Usage(absl::StrCat("household ", sub, " needs a household id or number"), kUsage);
  }
  if (sub == "set" && words().size() < 4) return Usage("household set needs FIELD=VALUE", kUsage);
  // A malformed FIELD=VALUE is a usage error, found before any lookup.
  for (size_t i = sub == "set" ? 3 : 2; (sub == "set" || sub == "register") && i < words().size();
       ++i) {
    auto assignment = ParseAssignment(words()[i]);
    if (!assignment.ok()) return Usage(std::string(assignment.status().message()), kUsage);
  }
  if (sub == "register" && (!args_.Has("village") || !args_.Has("number") || !args_.Has("head") ||
                            !args_.Has("head-id"))) {
    return Usage("household register needs --village, --number, --head, --head-id", kUsage);
  }
  auto client = OpenClient();
  if (!client.ok()) return Fail(client.status());
  if (sub == "list") {
    auto households = (*client)->Households();
    if (!households.ok()) return Fail(households.status());
    if (settings_.json) {
      std::vector<std::string> items;
      for (const v1::Household& h : *households) items.push_back(ProtoJson(h));
      std::cout << JsonObject().Raw("households", JsonArray(items)).Build() << "\n";
      return kExitOk;
    }
    Table table({"ID", "NUMBER", "VILLAGE", "HEAD", "STATUS", "CONFLICTS"});
    for (const v1::Household& h : *households) {
      table.Add({h.id(), h.household_number(), h.village_code(), h.head_name(),
                 StatusWord(h.status()), std::to_string(h.open_conflict_ids_size())});
    }
    std::cout << table.Render();
    if (table.empty()) std::cout << "(no households: run `fieldctl sync`)\n";
    return kExitOk;
  }
  if (sub == "show") {
    auto household = (*client)->Household(Word(2));
    if (!household.ok()) return Fail(household.status());
    auto pending = (*client)->PendingOn(household->id());
    if (!pending.ok()) return Fail(pending.status());
    auto members = (*client)->MembersOf(household->id());
    if (!members.ok()) return Fail(members.status());
    if (settings_.json) {
      std::vector<std::string> pend, mem;
      for (const v1::Event& e : *pending) pend.push_back(ProtoJson(e));
      for (const v1::Member& m : *members) mem.push_back(ProtoJson(m));
      std::cout << JsonObject()
                       .Raw("household", ProtoJson(*household))
                       .Raw("members", JsonArray(mem))
                       .Raw("pending", JsonArray(pend))
                       .Build()
                << "\n";
      return kExitOk;
    }
    std::cout << "household " << household->id() << "  number " << household->household_number()
              << "  village " << household->village_code() << "\nhead " << household->head_name()
              << "  status " << StatusWord(household->status()) << " (v"
              << household->status_version() << ")\n";
    Table fields({"FIELD", "VALUE", "VERSION"});
    std::map<std::string, v1::VersionedValue> sorted(household->fields().begin(),
                                                     household->fields().end());
    for (const auto& [name, v] : sorted) {
      if (name == "head_id_number") continue;  // Personal data stays off screens.
      fields.Add({name, ValueText(v.value()), std::to_string(v.version())});
    }
    std::cout << fields.Render();
    for (const v1::Member& m : *members)
      std::cout << "member " << m.id() << " " << m.name() << "\n";
    for (const std::string& c : household->open_conflict_ids())
      std::cout << "open conflict " << c << "\n";
    for (const v1::Event& e : *pending) {
      std::cout << "pending #" << e.device_seq() << " "
                << EnumWord(v1::EventKind_descriptor(), e.body_case(), "EVENT_KIND_") << "\n";
    }
    return kExitOk;
  }
  if (sub == "register") {
    v1::Event event;
    std::string id = args_.GetOr("id", client::NewUuid());
    *event.mutable_subject() = HouseholdRef(id);
    event.set_area_code(*args_.Get("village"));
    v1::HouseholdRegistered* r = event.mutable_household_registered();
    r->set_household_number(*args_.Get("number"));
    r->set_head_name(*args_.Get("head"));
    r->set_head_id_number(*args_.Get("head-id"));
    r->set_initial_status(v1::HOUSEHOLD_STATUS_IDENTIFIED);
    for (size_t i = 2; i < words().size(); ++i) {
      auto assignment = ParseAssignment(words()[i]);
      if (!assignment.ok()) return Usage(std::string(assignment.status().message()), kUsage);
      (*r->mutable_fields())[assignment->first] = assignment->second;
    }
    auto recorded = (*client)->Record(event);
    if (!recorded.ok()) return Fail(recorded.status());
    return PrintRecorded(settings_.json, *recorded, absl::StrCat("household ", id));
  }
  // set
  auto household = (*client)->Household(Word(2));
  if (!household.ok()) return Fail(household.status());
  v1::Event event;
  *event.mutable_subject() = HouseholdRef(household->id());
  v1::HouseholdFieldsSet* set = event.mutable_household_fields_set();
  for (size_t i = 3; i < words().size(); ++i) {
    auto assignment = ParseAssignment(words()[i]);
    if (!assignment.ok()) return Usage(std::string(assignment.status().message()), kUsage);
    v1::FieldPatch* patch = set->add_patches();
    patch->set_field(assignment->first);
    *patch->mutable_value() = assignment->second;
    // The version last pulled, never one assumed for own pending writes
    // (docs/sync.md "Merge": a device's own offline chain stays sequential).
    auto it = household->fields().find(assignment->first);
    patch->set_base_version(it == household->fields().end() ? 0 : it->second.version());
  }
  auto recorded = (*client)->Record(event);
  if (!recorded.ok()) return Fail(recorded.status());
  return PrintRecorded(settings_.json, *recorded, "change");
}

int Cli::Status() {
  constexpr char kUsage[] =
      "usage: fieldctl status propose --household ID --to STATUS --reason T [--from STATUS]\n"
      "       fieldctl status confirm --household ID --to STATUS --stage "
      "township_audit|county_decision\n"
      "                --decision approve|reject [--proposal EVENT_ID] [--from STATUS] [--note T]\n"
      "  STATUS: identified, not_exited, pre_exit, exited, returned, cancelled, monitored, "
      "risk_cleared\n";
  if (Help(kUsage)) return kExitOk;
  const std::string sub = Word(1);
  if (sub != "propose" && sub != "confirm") return Usage("want status propose|confirm", kUsage);
  auto household_key = args_.Get("household");
  auto to_text = args_.Get("to");
  if (!household_key || !to_text) return Usage("needs --household and --to", kUsage);
  auto to = ParseEnum<v1::HouseholdStatus>(v1::HouseholdStatus_descriptor(), "HOUSEHOLD_STATUS_",
                                           *to_text, "to");
  if (!to.ok()) return Usage(std::string(to.status().message()), kUsage);
  if (sub == "propose" && !args_.Has("reason"))
    return Usage("status propose needs --reason", kUsage);
  if (sub == "confirm" && (!args_.Has("stage") || !args_.Has("decision"))) {
    return Usage("status confirm needs --stage and --decision", kUsage);
  }
  auto client = OpenClient();
  if (!client.ok()) return Fail(client.status());
  auto household = (*client)->Household(*household_key);
  if (!household.ok()) return Fail(household.status());
  v1::HouseholdStatus from = household->status();
  if (auto from_text = args_.Get("from")) {
    auto parsed = ParseEnum<v1::HouseholdStatus>(v1::HouseholdStatus_descriptor(),
                                                 "HOUSEHOLD_STATUS_", *from_text, "from");
    if (!parsed.ok()) return Usage(std::string(parsed.status().message()), kUsage);
    from = *parsed;
  }
  v1::Event event;
  *event.mutable_subject() = HouseholdRef(household->id());
  if (sub == "propose") {
    v1::StatusChangeProposed* p = event.mutable_status_change_proposed();
    p->set_from_status(from);
    p->set_to_status(*to);
    p->set_reason(*args_.Get("reason"));
    p->set_base_status_version(household->status_version());
  } else {
    auto stage = ParseEnum<v1::ReviewStage>(v1::ReviewStage_descriptor(), "REVIEW_STAGE_",
                                            *args_.Get("stage"), "stage");
    if (!stage.ok()) return Usage(std::string(stage.status().message()), kUsage);
    auto decision = ParseEnum<v1::ReviewDecision>(
        v1::ReviewDecision_descriptor(), "REVIEW_DECISION_", *args_.Get("decision"), "decision");
    if (!decision.ok()) return Usage(std::string(decision.status().message()), kUsage);
    v1::StatusChangeConfirmed* c = event.mutable_status_change_confirmed();
    c->set_proposal_event_id(args_.GetOr("proposal", ""));
    c->set_from_status(from);
    c->set_to_status(*to);
    c->set_stage(*stage);
    c->set_decision(*decision);
    c->set_note(args_.GetOr("note", ""));
    c->set_base_status_version(household->status_version());
  }
  auto recorded = (*client)->Record(event);
  if (!recorded.ok()) return Fail(recorded.status());
  return PrintRecorded(settings_.json, *recorded, absl::StrCat("status ", sub));
}

int Cli::Plan() {
  constexpr char kUsage[] =
      "usage: fieldctl plan revise --household ID --year Y --item CATEGORY:CONTENT[:COST_FEN]...\n"
      "                [--note T]\n"
      "  The whole item list replaces the previous revision of the household's exit plan.\n"
      "  CATEGORY: industry, education, medical, housing_renovation, labour_transfer,\n"
      "            minimum_living, relocation, infrastructure, other\n";
  if (Help(kUsage)) return kExitOk;
  if (Word(1) != "revise") return Usage("want plan revise", kUsage);
  auto household_key = args_.Get("household");
  auto year_text = args_.Get("year");
  int year = 0;
  if (!household_key || !year_text || !absl::SimpleAtoi(*year_text, &year)) {
    return Usage("plan revise needs --household and --year", kUsage);
  }
  v1::Event event;
  v1::PlanRevised* plan = event.mutable_plan_revised();
  int n = 0;
  for (const std::string& item : args_.All("item")) {
    std::vector<std::string> parts = absl::StrSplit(item, absl::MaxSplits(':', 2));
    if (parts.size() < 2)
      return Usage(absl::StrCat("--item ", item, ": want CATEGORY:CONTENT"), kUsage);
    auto category = ParseEnum<v1::MeasureCategory>(v1::MeasureCategory_descriptor(),
                                                   "MEASURE_CATEGORY_", parts[0], "item");
    if (!category.ok()) return Usage(std::string(category.status().message()), kUsage);
    v1::PlanItem* p = plan->add_items();
    p->set_item_id(absl::StrCat("item-", ++n));
    p->set_category(*category);
    p->set_content(parts[1]);
    int64_t cost = 0;
    if (parts.size() == 3 && !absl::SimpleAtoi(parts[2], &cost)) {
      return Usage(absl::StrCat("--item ", item, ": cost is not a number of fen"), kUsage);
    }
    p->set_cost_fen(cost);
    p->set_year(year);
  }
  if (plan->items_size() == 0) return Usage("plan revise needs at least one --item", kUsage);
  auto client = OpenClient();
  if (!client.ok()) return Fail(client.status());
  auto household = (*client)->Household(*household_key);
  if (!household.ok()) return Fail(household.status());
  *event.mutable_subject() = HouseholdRef(household->id());
  plan->set_plan_id(absl::StrCat(household->id(), "/", year));
  plan->set_kind(v1::PLAN_KIND_HOUSEHOLD_EXIT);
  plan->set_year(year);
  plan->set_note(args_.GetOr("note", ""));
  auto plans = (*client)->PlansOf(household->id());
  if (!plans.ok()) return Fail(plans.status());
  for (const v1::Plan& p : *plans) {
    if (p.id() == plan->plan_id()) plan->set_base_version(p.version());
  }
  auto recorded = (*client)->Record(event);
  if (!recorded.ok()) return Fail(recorded.status());
  return PrintRecorded(settings_.json, *recorded, "plan revision");
}

int Cli::PrintSync(const client::SyncReport& r, int extra_exit) {
  const uint64_t visits = r.visits;
  const double per_visit = visits == 0 ? 0.0 : static_cast<double>(r.gzip_bytes_sent) / visits;
  const bool needs_review = r.rejected > 0 || r.conflicts > 0 || r.held > 0;
  if (settings_.json) {
    std::cout << JsonObject()
                     .Int("pushed", r.pushed)
                     .Int("accepted", r.accepted)
                     .Int("duplicates", r.duplicates)
                     .Int("rejected", r.rejected)
                     .Int("conflicts", r.conflicts)
                     .Int("held", r.held)
                     .Int("visits", r.visits)
                     .Int("blobs_uploaded", r.blobs_uploaded)
                     .Int("pulled_events", r.pulled_events)
                     .Int("removed_subjects", r.removed_subjects)
                     .Bool("reset", r.reset)
                     .Int("head_offset", static_cast<long long>(r.head_offset))
                     .Int("retries", r.retries)
                     .Int("pending_left", r.pending_left)
                     .Int("bytes_sent", static_cast<long long>(r.bytes_sent))
                     .Int("bytes_received", static_cast<long long>(r.bytes_received))
                     .Int("gzip_bytes_sent", static_cast<long long>(r.gzip_bytes_sent))
                     .Int("gzip_bytes_received", static_cast<long long>(r.gzip_bytes_received))
                     .Num("bytes_per_visit", per_visit)
                     .Build()
              << "\n";
  } else {
    std::cout << "pushed " << r.pushed << ": " << r.accepted << " accepted, " << r.duplicates
              << " duplicate, " << r.rejected << " rejected, " << r.conflicts << " in conflict";
    if (r.held > 0) std::cout << ", " << r.held << " held";
    std::cout << "\npulled " << r.pulled_events << " events";
    if (r.removed_subjects > 0) std::cout << ", " << r.removed_subjects << " left the scope";
    if (r.reset) std::cout << " (state rebuilt from a snapshot)";
    std::cout << "; photos uploaded " << r.blobs_uploaded << "\n";
    if (visits > 0) {
      std::cout << "bytes per synced visit: " << static_cast<uint64_t>(per_visit) << " (gzip)\n";
    }
    if (needs_review) std::cout << "some events need a look: fieldctl outbox\n";
  }
  if (extra_exit != kExitOk) return extra_exit;
  return needs_review ? kExitNeedsReview : kExitOk;
}

int Cli::Sync() {
  constexpr char kUsage[] =
      "usage: fieldctl sync\n  Pushes the outbox (and relayed bundles) in order, uploads photos,\n"
      "  pulls what changed in scope. Exit 3 if events were rejected, conflicted or held.\n";
  if (Help(kUsage)) return kExitOk;
  auto client = OpenClient();
  if (!client.ok()) return Fail(client.status());
  const bool tty = !settings_.json && isatty(STDERR_FILENO);
  auto progress = [&](const client::SyncProgress& p) {
    if (!tty) return;
    if (p.total > 0) {
      int width = 30;
      int filled = static_cast<int>(width * std::min<uint64_t>(p.done, p.total) / p.total);
      std::cerr << "\r" << p.phase << " [" << std::string(filled, '#')
                << std::string(width - filled, ' ') << "] " << p.done << "/" << p.total << "   "
                << std::flush;
    } else {
      std::cerr << "\r" << p.phase << " " << p.done << "   " << std::flush;
    }
  };
  auto report = (*client)->Sync(progress);
  if (tty) std::cerr << "\r\033[K" << std::flush;
  if (!report.ok()) return Fail(report.status());
  return PrintSync(*report, kExitOk);
}

int Cli::PrintOutbox(const std::vector<client::OutboxEntry>& entries) {
  if (settings_.json) {
    std::vector<std::string> items;
    for (const client::OutboxEntry& e : entries) {
      JsonObject o;
      o.Int("device_seq", static_cast<long long>(e.device_seq))
          .Str("device_id", e.device_id)
          .Str("event_id", e.event_id)
          .Str("kind", EnumWord(v1::EventKind_descriptor(), e.kind, "EVENT_KIND_"))
          .Str("subject", e.subject.id())
          .Str("state", client::StateName(e.state))
          .Int("offset", static_cast<long long>(e.offset))
          .Bool("relayed", e.relayed);
      if (!e.code.empty()) o.Str("code", e.code).Str("field", e.field);
      if (!e.message.empty()) o.Str("message", e.message);
      std::vector<std::string> ids;
      for (const std::string& id : e.conflict_ids) ids.push_back(JsonString(id));
      if (!ids.empty()) o.Raw("conflict_ids", JsonArray(ids));
      items.push_back(o.Build());
    }
    std::cout << JsonObject().Raw("events", JsonArray(items)).Build() << "\n";
    return kExitOk;
  }
  Table table({"SEQ", "KIND", "SUBJECT", "STATE", "OFFSET", "DETAIL"});
  std::map<std::string, int> counts;
  for (const client::OutboxEntry& e : entries) {
    std::string detail;
    if (e.state == client::OutboxEntry::State::kRejected) {
      detail = absl::StrCat(e.code, " ", e.field, ": ", e.message);
    } else if (e.state == client::OutboxEntry::State::kConflict) {
      detail = absl::StrCat("conflicts ", absl::StrJoin(e.conflict_ids, ","));
    } else if (e.state == client::OutboxEntry::State::kHeld) {
      detail = e.message;
    }
    if (e.relayed) detail = absl::StrCat("relayed for ", e.device_id, " ", detail);
    table.Add({std::to_string(e.device_seq),
               EnumWord(v1::EventKind_descriptor(), e.kind, "EVENT_KIND_"), e.subject.id(),
               client::StateName(e.state), e.offset == 0 ? "" : std::to_string(e.offset), detail});
    ++counts[client::StateName(e.state)];
  }
  std::cout << table.Render();
  std::vector<std::string> summary;
  for (const auto& [state, n] : counts) summary.push_back(absl::StrCat(n, " ", state));
  std::cout << (summary.empty() ? "outbox empty" : absl::StrJoin(summary, ", ")) << "\n";
  return kExitOk;
}

int Cli::OutboxCmd() {
  constexpr char kUsage[] =
      "usage: fieldctl outbox [list] [--state pending|accepted|duplicate|rejected|conflict|held]\n"
      "       fieldctl outbox export FILE   write the pending events to a relay bundle\n";
  if (Help(kUsage)) return kExitOk;
  const std::string sub = Word(1).empty() ? "list" : Word(1);
  if (sub != "list" && sub != "export") return Usage("want outbox list|export FILE", kUsage);
  if (sub == "export" && Word(2).empty()) return Usage("outbox export needs FILE", kUsage);
  auto client = OpenClient();
  if (!client.ok()) return Fail(client.status());
  if (sub == "export") {
    auto count = (*client)->ExportBundle(Word(2));
    if (!count.ok()) return Fail(count.status());
    if (settings_.json) {
      std::cout << JsonObject().Str("file", Word(2)).Int("events", *count).Build() << "\n";
    } else {
      std::cout << "wrote " << *count << " pending events to " << Word(2)
                << "\ncarry it to a township tablet: fieldctl relay " << Word(2) << "\n";
    }
    return kExitOk;
  }
  auto entries = (*client)->Outbox();
  if (!entries.ok()) return Fail(entries.status());
  std::vector<client::OutboxEntry> shown;
  auto state = args_.Get("state");
  for (auto& e : *entries) {
    if (!state || client::StateName(e.state) == *state) shown.push_back(std::move(e));
  }
  return PrintOutbox(shown);
}

int Cli::Relay() {
  constexpr char kUsage[] =
      "usage: fieldctl relay FILE\n  Imports a phone's bundle (fieldctl outbox export) and pushes "
      "it; the events stay the phone's.\n";
  if (Help(kUsage)) return kExitOk;
  if (Word(1).empty()) return Usage("relay needs FILE", kUsage);
  auto client = OpenClient();
  if (!client.ok()) return Fail(client.status());
  auto imported = (*client)->ImportBundle(Word(1));
  if (!imported.ok()) return Fail(imported.status());
  client::SyncReport report;
  absl::Status pushed = (*client)->PushOutbox(report);
  if (!pushed.ok()) {
    std::cerr << "fieldctl: imported " << *imported << " events; the push failed, they go with the"
              << " next `fieldctl sync`\n";
    return Fail(pushed);
  }
  if (!settings_.json) std::cout << "imported " << *imported << " events\n";
  return PrintSync(report, kExitOk);
}

int Cli::ConflictsCmd() {
  constexpr char kUsage[] =
      "usage: fieldctl conflicts list [--scope PREFIX] [--all]\n"
      "       fieldctl conflicts resolve ID (--side N | --value V | --value FIELD:int=N ...) "
      "[--note T]\n"
      "  list shows the open conflicts in local state (after sync); --scope asks the server.\n";
  if (Help(kUsage)) return kExitOk;
  const std::string sub = Word(1);
  if (sub != "list" && sub != "resolve") return Usage("want conflicts list|resolve", kUsage);
  if (sub == "resolve" && Word(2).empty()) return Usage("conflicts resolve needs ID", kUsage);
  if (sub == "resolve" && args_.Has("side") == args_.Has("value")) {
    return Usage("conflicts resolve needs exactly one of --side N, --value V", kUsage);
  }
  auto client = OpenClient();
  if (!client.ok()) return Fail(client.status());
  if (sub == "list") {
    std::vector<v1::Conflict> conflicts;
    if (auto scope = args_.Get("scope")) {
      auto channel = (*client)->Channel();
      if (!channel.ok()) return Fail(channel.status());
      auto stub = v1::QueryService::NewStub(*channel);
      std::string page;
      do {
        v1::ListConflictsRequest request;
        request.set_scope_prefix(*scope);
        request.set_open_only(!args_.Has("all"));
        request.set_page_token(page);
        v1::ListConflictsResponse response;
        auto context = (*client)->Context();
        if (!context.ok()) return Fail(context.status());
        grpc::Status status = stub->ListConflicts(context->get(), request, &response);
        if (!status.ok()) {
          return Fail(absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                                   absl::StrCat("list conflicts: ", status.error_message())));
        }
        conflicts.insert(conflicts.end(), response.conflicts().begin(), response.conflicts().end());
        page = response.next_page_token();
      } while (!page.empty());
    } else {
      auto local = (*client)->Conflicts(!args_.Has("all"));
      if (!local.ok()) return Fail(local.status());
      conflicts = *local;
    }
    if (settings_.json) {
      std::vector<std::string> items;
      for (const v1::Conflict& c : conflicts) items.push_back(ProtoJson(c));
      std::cout << JsonObject().Raw("conflicts", JsonArray(items)).Build() << "\n";
      return kExitOk;
    }
    Table table({"ID", "KIND", "SUBJECT", "FIELD", "SIDES", "WINNER", "OPEN"});
    for (const v1::Conflict& c : conflicts) {
      std::vector<std::string> sides;
      for (int i = 0; i < c.sides_size(); ++i) {
        const v1::ConflictSide& s = c.sides(i);
        std::string value = s.has_field_value() ? ValueText(s.field_value())
                            : s.has_status()    ? StatusWord(s.status().to_status())
                                                : "items";
        sides.push_back(absl::StrCat(i, "=", value, " (", s.actor(), ")"));
      }
      table.Add({c.id(), EnumWord(v1::ConflictKind_descriptor(), c.kind(), "CONFLICT_KIND_"),
                 c.subject().id(), c.field(), absl::StrJoin(sides, " | "),
                 std::to_string(c.winner_side()), c.open() ? "yes" : "no"});
    }
    std::cout << table.Render();
    if (table.empty()) std::cout << "(no open conflicts)\n";
    return kExitOk;
  }
  // resolve
  auto conflict = (*client)->Conflict(Word(2));
  if (!conflict.ok()) return Fail(conflict.status());
  if (!conflict->has_value()) {
    return Fail(absl::NotFoundError(
        absl::StrCat("conflict ", Word(2),
                     " is not in local state: run `fieldctl sync` (or it is out of scope)")));
  }
  const v1::Conflict& c = **conflict;
  v1::Event event;
  // A conflict's event subject is its household (members and plans hang off it).
  std::string household_id =
      c.subject().kind() == v1::SUBJECT_KIND_HOUSEHOLD ? c.subject().id() : "";
  if (household_id.empty()) {
    for (const v1::Household& h : (*client)->Households().value_or(std::vector<v1::Household>{})) {
      for (const std::string& id : h.open_conflict_ids()) {
        if (id == c.id()) household_id = h.id();
      }
    }
  }
  if (household_id.empty())
    return Fail(absl::NotFoundError("the conflict's household is not in local state"));
  *event.mutable_subject() = HouseholdRef(household_id);
  v1::ConflictResolved* r = event.mutable_conflict_resolved();
  r->set_conflict_id(c.id());
  r->set_note(args_.GetOr("note", ""));
  if (auto side = args_.Get("side")) {
    uint32_t n = 0;
    if (!absl::SimpleAtoi(*side, &n) || n >= static_cast<uint32_t>(c.sides_size())) {
      return Usage(absl::StrCat("--side ", *side, ": want 0..", c.sides_size() - 1), kUsage);
    }
    r->set_chosen_side(n);
  } else {
    auto assignment = ParseAssignment(absl::StrCat(c.field(), "=", *args_.Get("value")));
    if (args_.Get("value")->find('=') != std::string::npos) {
      assignment = ParseAssignment(*args_.Get("value"));
    }
    if (!assignment.ok()) return Usage(std::string(assignment.status().message()), kUsage);
    *r->mutable_value() = assignment->second;
  }
  auto recorded = (*client)->Record(event);
  if (!recorded.ok()) return Fail(recorded.status());
  return PrintRecorded(settings_.json, *recorded, absl::StrCat("resolution of ", c.id()));
}

// ---------------------------------------------------------------------------
// Export and reports (online, with a user's token)

absl::StatusOr<std::string> Cli::UserToken(const std::string& command) {
  if (!settings_.token_file.empty()) return AdminToken();
  // No --token-file: the token the device of --db enrolled with. Read from
  // the SDK's meta table, since opening a Client would create a database
  // where there is none.
  std::error_code error;
  if (!std::filesystem::exists(settings_.db, error)) {
    return absl::FailedPreconditionError(
        absl::StrCat(command, " needs --token-file FILE or the --db of an enrolled device"));
  }
  auto client = OpenClient();
  if (!client.ok()) return client.status();
  auto statement = (*client)->db().Prepare("SELECT value FROM meta WHERE key = 'token'");
  if (!statement.ok()) return statement.status();
  auto row = statement->Step();
  if (!row.ok()) return row.status();
  std::string token = *row ? statement->Text(0) : "";
  if (token.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        command, ": not enrolled: run `fieldctl enroll --code CODE` first, or pass --token-file"));
  }
  return token;
}

int Cli::Export() {
  constexpr char kUsage[] =
      "usage: fieldctl [--token-file FILE | --db FILE] export [--from OFFSET] [--format "
      "jsonl|csv]\n"
      "           [--checkpoint FILE] [--output FILE] [--scope PREFIX]... [--max-events N]\n"
      "           [--checkpoint-every N] [--follow] [--json]\n"
      "  Writes the server's events after OFFSET (default 0) as JSON Lines (default) or CSV\n"
      "  (docs/export.md), as an HQ analyst or admin. With --checkpoint a rerun resumes exactly\n"
      "  where the last run stopped (--output FILE: no event lost or repeated). Without\n"
      "  --checkpoint, --output FILE keeps its checkpoint in FILE.checkpoint; to stdout without\n"
      "  --checkpoint the export is one-shot. Progress on a terminal (stderr); --json prints a\n"
      "  summary (events_written, last_offset, resumed) on stdout, or on stderr when the events\n"
      "  go to stdout.\n";
  if (Help(kUsage)) return kExitOk;
  if (words().size() > 1) return Usage(absl::StrCat("export takes no word ", Word(1)), kUsage);
  clients::ExportOptions options;
  if (auto from = args_.Get("from")) {
    if (!absl::SimpleAtoi(*from, &options.from_offset)) {
      return Usage(absl::StrCat("--from ", *from, ": want a log offset (0 = from the start)"),
                   kUsage);
    }
  }
  auto format = clients::ParseExportFormat(args_.GetOr("format", "jsonl"));
  if (!format.ok()) return Usage(absl::StrCat("--format: want jsonl or csv"), kUsage);
  options.format = *format;
  for (const char* name : {"max-events", "checkpoint-every"}) {
    auto text = args_.Get(name);
    if (!text) continue;
    uint64_t n = 0;
    if (!absl::SimpleAtoi(*text, &n) || (n == 0 && std::string(name) == "checkpoint-every")) {
      return Usage(absl::StrCat("--", name, " ", *text, ": want a positive number"), kUsage);
    }
    (std::string(name) == "max-events" ? options.max_events : options.checkpoint_every) = n;
  }
  options.follow = args_.Has("follow");
  options.scope_prefixes = args_.All("scope");
  const std::string output = args_.GetOr("output", "");
  std::string checkpoint = args_.GetOr("checkpoint", "");
  // One-shot to stdout: the library always keeps a checkpoint; this one is
  // thrown away with its directory.
  std::string scratch_dir;
  if (checkpoint.empty() && !output.empty()) checkpoint = output + ".checkpoint";
  if (checkpoint.empty()) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "fieldctl-export-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      return Fail(absl::InternalError(absl::StrCat("cannot make a directory like ", pattern)));
    }
    scratch_dir = pattern;
    checkpoint = scratch_dir + "/checkpoint";
  }
  options.checkpoint_path = checkpoint;
  if (output.empty()) {
    options.output = &std::cout;
  } else {
    options.output_path = output;
  }
  if (settings_.server.empty()) {
    return Fail(absl::FailedPreconditionError("no server: pass --server HOST:PORT"));
  }
  auto token = UserToken("export");
  if (!token.ok()) return Fail(token.status());
  options.bearer_token = *token;
  options.channel = AdminChannel();
  const bool tty = !settings_.json && isatty(STDERR_FILENO) != 0;
  if (tty) {
    options.progress = [](const clients::ExportProgress& p) {
      std::cerr << "\rexported " << p.events_written << " events, offset " << p.last_offset;
      if (p.head_offset > 0) std::cerr << " of " << p.head_offset;
      std::cerr << std::flush;
    };
  }
  auto result = clients::ExportEvents(options);
  if (tty) std::cerr << "\n";
  if (!scratch_dir.empty()) {
    std::error_code error;
    std::filesystem::remove_all(scratch_dir, error);  // A leftover temp dir is harmless.
  }
  if (!result.ok()) {
    return Fail(
        absl::Status(result.status().code(), absl::StrCat("export: ", result.status().message())));
  }
  if (settings_.json) {
    std::ostream& out = output.empty() ? std::cerr : std::cout;
    out << JsonObject()
               .Int("events_written", static_cast<long long>(result->events_written))
               .Str("last_offset", std::to_string(result->last_offset))
               .Bool("resumed", result->resumed)
               .Str("format", options.format == clients::ExportFormat::kCsv ? "csv" : "jsonl")
               .Str("output", output)
               .Str("checkpoint", scratch_dir.empty() ? checkpoint : "")
               .Build()
        << "\n";
  } else if (!output.empty()) {
    std::cout << (result->resumed ? "resumed: " : "") << result->events_written
              << " events written to " << output << ", up to offset " << result->last_offset
              << " (checkpoint " << checkpoint << ")\n";
  }
  return kExitOk;
}

std::string DateText(const v1::Date& date) {
  return absl::StrFormat("%04d-%02d-%02d", date.year(), date.month(), date.day());
}

std::string TimeText(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "";
  return absl::FormatTime(absl::RFC3339_sec, absl::FromUnixSeconds(ts.seconds()),
                          absl::UTCTimeZone());
}

std::string YesNo(bool value) { return value ? "yes" : "no"; }

std::string Ratio(uint32_t part, uint32_t whole) { return absl::StrCat(part, "/", whole); }

// The measurements of an evidence flag, for a table cell.
std::string FlagDetail(const v1::EvidenceFlag& flag) {
  switch (flag.detail_case()) {
    case v1::EvidenceFlag::kGpsFar:
      return absl::StrFormat("%.0f m from the household (threshold %.0f m)",
                             flag.gps_far().distance_m(), flag.gps_far().threshold_m());
    case v1::EvidenceFlag::kTravel:
      return absl::StrFormat("%.1f km in %.2f h = %.0f km/h (threshold %.0f)",
                             flag.travel().distance_km(), flag.travel().hours(),
                             flag.travel().speed_kmh(), flag.travel().threshold_kmh());
    case v1::EvidenceFlag::kDuplicatePhoto:
      return absl::StrCat("photo on ", flag.duplicate_photo().subjects_size(), " households");
    case v1::EvidenceFlag::kTimeSkew:
      return absl::StrCat("clock off ", flag.time_skew().skew_ms(), " ms (threshold ",
                          flag.time_skew().threshold_ms(), ")",
                          flag.time_skew().hlc_flagged() ? ", HLC not adopted" : "");
    default:
      return "";
  }
}

int Cli::Report() {
  constexpr char kUsage[] =
      "usage: fieldctl [--token-file FILE | --db FILE] report assessment --scope PREFIX [--year Y] "
      "[--csv]\n"
      "       ... report evidence --scope PREFIX [--year Y] [--kind K]... [--cadre USER] [--csv]\n"
      "       ... report feedback --scope PREFIX [--kind K] [--group-leader-units-only]\n"
      "       ... report inspections --scope PREFIX [--household ID]\n"
      "  ReportService (docs/assessment.md) as county staff, an HQ analyst or an admin, every\n"
      "  page read. PREFIX: an area code of 2, 4, 6, 9 or 12 digits; Y: default this year.\n"
      "  Tables for people; --json: the whole report as one JSON document (the pages merged);\n"
      "  --csv: the cadre rows (assessment) or the flag rows (evidence) as CSV.\n"
      "  evidence --kind: gps_far, impossible_travel, duplicate_photo, no_fix, device_time_skew\n"
      "  feedback --kind: a FeedbackKind without its prefix, e.g. project_need\n";
  if (Help(kUsage)) return kExitOk;
  const std::string what = Word(1);
  if (what != "assessment" && what != "evidence" && what != "feedback" && what != "inspections") {
    return Usage(what.empty() ? "report needs assessment, evidence, feedback or inspections"
                              : absl::StrCat("unknown report ", what),
                 kUsage);
  }
  auto scope = args_.Get("scope");
  if (!scope) return Usage(absl::StrCat("report ", what, " needs --scope PREFIX"), kUsage);
  int32_t year = Today().year();
  if (auto text = args_.Get("year")) {
    if (!absl::SimpleAtoi(*text, &year)) {
      return Usage(absl::StrCat("--year ", *text, ": want a year, e.g. 2024"), kUsage);
    }
  }
  const bool csv = args_.Has("csv");
  if (csv && (what == "feedback" || what == "inspections")) {
    return Usage(absl::StrCat("report ", what, " has no --csv"), kUsage);
  }
  if (csv && settings_.json) return Usage("want one of --csv, --json", kUsage);
  uint32_t page_size = 0;
  if (auto text = args_.Get("page-size")) {
    if (!absl::SimpleAtoi(*text, &page_size)) {
      return Usage(absl::StrCat("--page-size ", *text, ": want a number"), kUsage);
    }
  }
  if (settings_.server.empty()) {
    return Fail(absl::FailedPreconditionError("no server: pass --server HOST:PORT"));
  }
  auto token = UserToken(absl::StrCat("report ", what));
  if (!token.ok()) return Fail(token.status());
  auto stub = v1::ReportService::NewStub(AdminChannel());
  client::RetryPolicy policy;
  policy.max_attempts = settings_.retries;
  // Reports only read: every page retries UNAVAILABLE and RESOURCE_EXHAUSTED.
  auto call = [&](auto rpc, const auto& request, auto* response) -> absl::Status {
    grpc::Status status;
    for (int attempt = 1;; ++attempt) {
      auto context = client::MakeContext(*token);
      status = (stub.get()->*rpc)(context.get(), request, response);
      const bool again = status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
                         status.error_code() == grpc::StatusCode::UNAVAILABLE;
      if (status.ok() || !again || attempt >= policy.max_attempts) break;
      client::Wait(policy, client::Backoff(policy, attempt, client::RetryAfter(*context)));
    }
    if (status.ok()) return absl::OkStatus();
    std::string hint;
    if (status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      hint = " (reports are for county staff, HQ analysts and admins, within their scope)";
    }
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("report ", what, ": ", status.error_message(), hint));
  };
  // Every page of a paged report, merged into `all` (lists append; the
  // summary and as_of of GetAssessment take the last page's).
  auto all_pages = [&](auto rpc, auto request, auto* all) -> absl::Status {
    do {
      std::remove_pointer_t<decltype(all)> page;
      if (absl::Status s = call(rpc, request, &page); !s.ok()) return s;
      request.set_page_token(page.next_page_token());
      page.clear_next_page_token();
      all->MergeFrom(page);
    } while (!request.page_token().empty());
    return absl::OkStatus();
  };

  if (what == "assessment") {
    v1::GetAssessmentRequest request;
    request.set_scope_prefix(*scope);
    request.set_year(year);
    request.set_page_size(page_size);
    v1::GetAssessmentResponse all;
    if (absl::Status s = all_pages(&v1::ReportService::Stub::GetAssessment, request, &all); !s.ok())
      return Fail(s);
    if (settings_.json) {
      std::cout << ProtoJson(all) << "\n";
      return kExitOk;
    }
    const std::vector<std::string> kCadreColumns = {"user_id",           "name",
                                                    "unit_id",           "rank",
                                                    "linked_households", "household_quota",
                                                    "linked_villages",   "visits",
                                                    "visits_required",   "days_on_site",
                                                    "days_required",     "link_quota_met",
                                                    "visits_met",        "days_met",
                                                    "quota_met",         "flagged_visits"};
    auto rank = [](const v1::CadreAssessment& c) {
      return EnumWord(v1::CadreRank_descriptor(), c.rank(), "CADRE_RANK_");
    };
    if (csv) {
      std::cout << CsvRow(kCadreColumns);
      for (const v1::CadreAssessment& c : all.cadres()) {
        auto b = [](bool v) { return std::string(v ? "true" : "false"); };
        std::cout << CsvRow(
            {c.user_id(), c.name(), c.unit_id(), rank(c), std::to_string(c.linked_households()),
             std::to_string(c.household_quota()), std::to_string(c.linked_villages()),
             std::to_string(c.visits()), std::to_string(c.visits_required()),
             std::to_string(c.days_on_site()), std::to_string(c.days_required()),
             b(c.link_quota_met()), b(c.visits_met()), b(c.days_met()), b(c.quota_met()),
             std::to_string(c.flagged_visits())});
      }
      return kExitOk;
    }
    const v1::AssessmentSummary& s = all.summary();
    std::cout << "assessment of " << *scope << " for " << year << " (log offset "
              << all.as_of_offset() << ")\n"
              << "  cadres meeting all requirements  " << Ratio(s.cadres_meeting_all(), s.cadres())
              << "\n"
              << "  households covered               "
              << Ratio(s.households_covered(), s.households_requiring_link()) << "\n"
              << "  poor villages covered            "
              << Ratio(s.villages_covered(), s.poor_villages()) << "\n"
              << "  visits (flagged)                 " << s.visits() << " (" << s.flagged_visits()
              << ")\n"
              << "  plans present                    "
              << Ratio(s.plans_present(), s.plans_required()) << "\n";
    Table cadres(
        {"CADRE", "NAME", "UNIT", "RANK", "HOUSEHOLDS", "VISITS", "DAYS", "FLAGGED", "QUOTA_MET"});
    for (const v1::CadreAssessment& c : all.cadres()) {
      cadres.Add({c.user_id(), c.name(), c.unit_id(), rank(c),
                  Ratio(c.linked_households(), c.household_quota()),
                  Ratio(c.visits(), c.visits_required()),
                  Ratio(c.days_on_site(), c.days_required()), std::to_string(c.flagged_visits()),
                  YesNo(c.quota_met())});
    }
    std::cout << "\n" << cadres.Render();
    if (all.coverage_gaps_size() > 0) {
      Table gaps({"GAP", "SUBJECT", "NAME", "AREA", "OPEN_SINCE", "DAYS", "GRACE"});
      for (const v1::CoverageGap& g : all.coverage_gaps()) {
        gaps.Add({EnumWord(v1::CoverageGapKind_descriptor(), g.kind(), "COVERAGE_GAP_KIND_"),
                  g.subject().id(), g.display_name(), g.area_code(), DateText(g.open_since()),
                  std::to_string(g.days_open()), YesNo(g.in_grace_period())});
      }
      std::cout << "\ncoverage gaps\n" << gaps.Render();
    }
    if (all.missing_plans_size() > 0) {
      Table plans({"PLAN", "SUBJECT", "AREA", "UNIT", "RESPONSIBLE"});
      for (const v1::MissingPlan& p : all.missing_plans()) {
        plans.Add({EnumWord(v1::PlanKind_descriptor(), p.kind(), "PLAN_KIND_"), p.subject().id(),
                   p.area_code(), p.unit_id(), absl::StrJoin(p.responsible_user_ids(), ",")});
      }
      std::cout << "\nmissing plans\n" << plans.Render();
    }
    return kExitOk;
  }

  if (what == "evidence") {
    v1::GetEvidenceReportRequest request;
    request.set_scope_prefix(*scope);
    request.set_year(year);
    request.set_cadre_id(args_.GetOr("cadre", ""));
    request.set_page_size(page_size);
    for (const std::string& kind : args_.All("kind")) {
      auto parsed = ParseEnum<v1::EvidenceFlagKind>(v1::EvidenceFlagKind_descriptor(),
                                                    "EVIDENCE_FLAG_KIND_", kind, "kind");
      if (!parsed.ok()) return Usage(std::string(parsed.status().message()), kUsage);
      request.add_kinds(*parsed);
    }
    v1::GetEvidenceReportResponse all;
    if (absl::Status s = all_pages(&v1::ReportService::Stub::GetEvidenceReport, request, &all);
        !s.ok())
      return Fail(s);
    if (settings_.json) {
      std::cout << ProtoJson(all) << "\n";
      return kExitOk;
    }
    auto kind = [](const v1::EvidenceFlag& f) {
      return EnumWord(v1::EvidenceFlagKind_descriptor(), f.kind(), "EVIDENCE_FLAG_KIND_");
    };
    auto offsets = [](const v1::EvidenceFlag& f) { return absl::StrJoin(f.offsets(), " "); };
    if (csv) {
      std::cout << CsvRow({"kind", "cadre_id", "subject_kind", "subject_id", "area_code",
                           "visit_time", "event_ids", "offsets", "detail"});
      for (const v1::EvidenceFlag& f : all.flags()) {
        std::cout << CsvRow(
            {kind(f), f.cadre_id(),
             EnumWord(v1::SubjectKind_descriptor(), f.subject().kind(), "SUBJECT_KIND_"),
             f.subject().id(), f.area_code(), TimeText(f.visit_time()),
             absl::StrJoin(f.event_ids(), " "), offsets(f), FlagDetail(f)});
      }
      return kExitOk;
    }
    std::cout << "evidence flags in " << *scope << " for " << year << " (log offset "
              << all.as_of_offset() << ")\n";
    std::map<int32_t, uint32_t> counts;  // By kind number: a stable order.
    for (const auto& entry : all.counts_by_kind()) counts[entry.first] = entry.second;
    for (const auto& [number, count] : counts) {
      std::cout << "  "
                << EnumWord(v1::EvidenceFlagKind_descriptor(), number, "EVIDENCE_FLAG_KIND_") << " "
                << count << "\n";
    }
    Table flags({"KIND", "CADRE", "SUBJECT", "AREA", "VISIT_TIME", "OFFSETS", "DETAIL"});
    for (const v1::EvidenceFlag& f : all.flags()) {
      flags.Add({kind(f), f.cadre_id(), f.subject().id(), f.area_code(), TimeText(f.visit_time()),
                 offsets(f), FlagDetail(f)});
    }
    std::cout << "\n" << flags.Render();
    return kExitOk;
  }

  if (what == "feedback") {
    v1::ListFeedbackRequest request;
    request.set_scope_prefix(*scope);
    request.set_group_leader_units_only(args_.Has("group-leader-units-only"));
    request.set_page_size(page_size);
    if (auto kind = args_.Get("kind")) {
      auto parsed = ParseEnum<v1::FeedbackKind>(v1::FeedbackKind_descriptor(), "FEEDBACK_KIND_",
                                                *kind, "kind");
      if (!parsed.ok()) return Usage(std::string(parsed.status().message()), kUsage);
      request.set_kind(*parsed);
    }
    v1::ListFeedbackResponse all;
    if (absl::Status s = all_pages(&v1::ReportService::Stub::ListFeedback, request, &all); !s.ok())
      return Fail(s);
    if (settings_.json) {
      std::cout << ProtoJson(all) << "\n";
      return kExitOk;
    }
    Table table({"OFFSET", "COUNTY", "AREA", "UNIT", "GROUP_LEADER", "KIND", "TITLE", "FILED"});
    for (const v1::FeedbackEntry& e : all.entries()) {
      table.Add({std::to_string(e.offset()), e.county_code(), e.area_code(), e.from_unit_id(),
                 YesNo(e.from_group_leader_unit()),
                 EnumWord(v1::FeedbackKind_descriptor(), e.kind(), "FEEDBACK_KIND_"), e.title(),
                 TimeText(e.filed_at())});
    }
    std::cout << table.Render();
    return kExitOk;
  }

  // inspections
  v1::ListInspectionsRequest request;
  request.set_scope_prefix(*scope);
  request.set_page_size(page_size);
  if (auto household = args_.Get("household"))
    *request.mutable_subject() = HouseholdRef(*household);
  v1::ListInspectionsResponse all;
  if (absl::Status s = all_pages(&v1::ReportService::Stub::ListInspections, request, &all); !s.ok())
    return Fail(s);
  if (settings_.json) {
    std::cout << ProtoJson(all) << "\n";
    return kExitOk;
  }
  Table table({"OFFSET", "SUBJECT", "AREA", "INSPECTOR", "RESULT", "FLAGS", "FINDINGS"});
  for (const v1::InspectionEntry& e : all.entries()) {
    std::vector<std::string> flag_words;
    for (int flag : e.flags()) {
      flag_words.push_back(EnumWord(v1::InspectionFlag_descriptor(), flag, "INSPECTION_FLAG_"));
    }
    table.Add({std::to_string(e.offset()), e.subject().id(), e.area_code(),
               e.inspector_name().empty() ? e.inspector_user_id() : e.inspector_name(),
               EnumWord(v1::InspectionResult_descriptor(), e.result(), "INSPECTION_RESULT_"),
               absl::StrJoin(flag_words, ","), e.findings()});
  }
  std::cout << table.Render();
  return kExitOk;
}

// ---------------------------------------------------------------------------
// Admin: one table of commands (words, usage, whether the call only reads,
// and the body that builds the request and prints the answer); the token,
// the server check, the stub, the retries, the error prefix and the JSON or
// text output are done once for all of them.

// The state every admin command gets.
struct Cli::AdminCall {
  std::unique_ptr<v1::AdminService::Stub> stub;
  std::string token;
  std::string name;  // "admin link end": the prefix of every error message.
  // Reads retry UNAVAILABLE and RESOURCE_EXHAUSTED; writes retry only
  // RESOURCE_EXHAUSTED (refused before anything happened), since an
  // UNAVAILABLE write may have been applied (a second StartLink would make a
  // second link).
  bool read_only = false;
};

// Calls `rpc` as the admin; on success prints the response (JSON with
// --json, else `text(response)`) and exits 0, else fails with the server's
// status prefixed by the command.
template <typename Request, typename Response, typename Text>
int Cli::AdminRpc(AdminCall& admin,
                  grpc::Status (v1::AdminService::Stub::*rpc)(grpc::ClientContext*, const Request&,
                                                              Response*),
                  const Request& request, Text text) {
  Response response;
  if (absl::Status s = CallAdmin(admin, rpc, request, &response); !s.ok()) return Fail(s);
  return Print(response, text(response));
}

template <typename Request, typename Response>
absl::Status Cli::CallAdmin(AdminCall& admin,
                            grpc::Status (v1::AdminService::Stub::*rpc)(grpc::ClientContext*,
                                                                        const Request&, Response*),
                            const Request& request, Response* response) {
  client::RetryPolicy policy;
  policy.max_attempts = settings_.retries;
  grpc::Status status;
  for (int attempt = 1;; ++attempt) {
    auto context = client::MakeContext(admin.token);
    status = (admin.stub.get()->*rpc)(context.get(), request, response);
    const bool again = status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
                       (admin.read_only && status.error_code() == grpc::StatusCode::UNAVAILABLE);
    if (status.ok() || !again || attempt >= policy.max_attempts) break;
    client::Wait(policy, client::Backoff(policy, attempt, client::RetryAfter(*context)));
  }
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(admin.name, ": ", status.error_message()));
}

int Cli::Print(const google::protobuf::Message& response, const std::string& text) {
  if (settings_.json) {
    std::cout << ProtoJson(response) << "\n";
  } else {
    std::cout << text;
  }
  return kExitOk;
}

std::string Cli::Missing(const std::string& command, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (!args_.Has(name)) return absl::StrCat(command, " needs --", name);
  }
  return "";
}

int Cli::Admin() {
  using Stub = v1::AdminService::Stub;
  // A usage error of an admin command, with the admin usage.
  struct Command {
    const char* path;   // the words after `admin`
    const char* usage;  // the rest of its usage line (may span lines)
    bool read_only;
    int (*run)(Cli& cli, AdminCall& admin, const std::string& usage);
  };
  static const Command kCommands[] = {
      {"areas import", "FILE [--dry-run]", false,
       [](Cli& cli, AdminCall& admin, const std::string& usage) {
         const std::string file = cli.Word(3);
         if (file.empty()) return cli.Usage("admin areas import needs FILE", usage);
         std::ifstream in(file, std::ios::binary);
         if (!in) return cli.Fail(absl::NotFoundError(absl::StrCat("cannot read ", file)));
         std::stringstream buffer;
         buffer << in.rdbuf();
         v1::ImportAreasRequest request;
         request.set_csv(buffer.str());
         request.set_dry_run(cli.args_.Has("dry-run"));
         v1::ImportAreasResponse response;
         if (auto s = cli.CallAdmin(admin, &Stub::ImportAreas, request, &response); !s.ok())
           return cli.Fail(s);
         std::string text = absl::StrCat(response.created(), " created, ", response.updated(),
                                         " updated, ", response.unchanged(), " unchanged\n");
         for (const v1::ImportError& e : response.errors()) {
           absl::StrAppend(&text, "line ", e.line(), ": ", e.message(), "\n");
         }
         cli.Print(response, text);
         return response.errors_size() > 0 ? kExitFailed : kExitOk;
       }},
      {"unit upsert", "--id ID --name NAME --area CODE [--level L] [--kind K]", false,
       [](Cli& cli, AdminCall& admin, const std::string& usage) {
         if (auto m = cli.Missing(admin.name, {"id", "name", "area"}); !m.empty())
           return cli.Usage(m, usage);
         v1::UpsertUnitRequest request;
         v1::Unit* unit = request.mutable_unit();
         unit->set_id(*cli.args_.Get("id"));
         unit->set_name(*cli.args_.Get("name"));
         unit->set_area_code(*cli.args_.Get("area"));
         if (auto level = cli.args_.Get("level")) {
           auto parsed =
               ParseEnum<v1::UnitLevel>(v1::UnitLevel_descriptor(), "UNIT_LEVEL_", *level, "level");
           if (!parsed.ok()) return cli.Usage(std::string(parsed.status().message()), usage);
           unit->set_level(*parsed);
         }
         if (auto kind = cli.args_.Get("kind")) {
           auto parsed =
               ParseEnum<v1::UnitKind>(v1::UnitKind_descriptor(), "UNIT_KIND_", *kind, "kind");
           if (!parsed.ok()) return cli.Usage(std::string(parsed.status().message()), usage);
           unit->set_kind(*parsed);
         }
         return cli.AdminRpc(admin, &Stub::UpsertUnit, request, [](const auto& r) {
           return absl::StrCat("unit ", r.unit().id(), " saved\n");
         });
       }},
      {"unit list", "[--scope PREFIX]", true,
       [](Cli& cli, AdminCall& admin, const std::string&) {
         v1::ListUnitsRequest request;
         request.set_scope_prefix(cli.args_.GetOr("scope", ""));
         return cli.AdminRpc(admin, &Stub::ListUnits, request, [](const auto& r) {
           Table table({"ID", "NAME", "LEVEL", "AREA"});
           for (const v1::Unit& u : r.units()) {
             table.Add({u.id(), u.name(),
                        EnumWord(v1::UnitLevel_descriptor(), u.level(), "UNIT_LEVEL_"),
                        u.area_code()});
           }
           return table.Render();
         });
       }},
      {"user upsert", "--id ID --name NAME --role ROLE [--unit U] [--rank R] [--scope CODE]...",
       false,
       [](Cli& cli, AdminCall& admin, const std::string& usage) {
         if (auto m = cli.Missing(admin.name, {"id", "name", "role"}); !m.empty())
           return cli.Usage(m, usage);
         auto role =
             ParseEnum<v1::Role>(v1::Role_descriptor(), "ROLE_", *cli.args_.Get("role"), "role");
         if (!role.ok()) return cli.Usage(std::string(role.status().message()), usage);
         v1::UpsertUserRequest request;
         v1::User* user = request.mutable_user();
         user->set_id(*cli.args_.Get("id"));
         user->set_name(*cli.args_.Get("name"));
         user->set_role(*role);
         user->set_unit_id(cli.args_.GetOr("unit", ""));
         user->set_phone(cli.args_.GetOr("phone", ""));
         if (auto rank = cli.args_.Get("rank")) {
           auto parsed =
               ParseEnum<v1::CadreRank>(v1::CadreRank_descriptor(), "CADRE_RANK_", *rank, "rank");
           if (!parsed.ok()) return cli.Usage(std::string(parsed.status().message()), usage);
           user->set_rank(*parsed);
         } else if (*role == v1::ROLE_CADRE) {
           user->set_rank(v1::CADRE_RANK_OTHER);
         }
         for (const std::string& code : cli.args_.All("scope")) user->add_scope_area_codes(code);
         return cli.AdminRpc(admin, &Stub::UpsertUser, request, [](const auto& r) {
           return absl::StrCat("user ", r.user().id(), " saved\n");
         });
       }},
      {"user list", "[--scope PREFIX]", true,
       [](Cli& cli, AdminCall& admin, const std::string&) {
         v1::ListUsersRequest request;
         request.set_scope_prefix(cli.args_.GetOr("scope", ""));
         return cli.AdminRpc(admin, &Stub::ListUsers, request, [](const auto& r) {
           Table table({"ID", "NAME", "ROLE", "UNIT", "SCOPE"});
           for (const v1::User& u : r.users()) {
             table.Add({u.id(), u.name(), EnumWord(v1::Role_descriptor(), u.role(), "ROLE_"),
                        u.unit_id(), absl::StrJoin(u.scope_area_codes(), ",")});
           }
           return table.Render();
         });
       }},
      {"link start",
       "(--cadre USER | --unit UNIT) --target-kind household|village|county\n"
       "                 --target ID --role ROLE [--id ID] [--from YYYY-MM-DD] [--reason T]",
       false,
       [](Cli& cli, AdminCall& admin, const std::string& usage) {
         if (auto m = cli.Missing(admin.name, {"target-kind", "target", "role"}); !m.empty())
           return cli.Usage(m, usage);
         if (cli.args_.Has("cadre") == cli.args_.Has("unit"))
           return cli.Usage("want exactly one of --cadre, --unit", usage);
         v1::StartLinkRequest request;
         request.set_link_id(cli.args_.GetOr("id", ""));
         if (auto cadre = cli.args_.Get("cadre")) request.set_cadre_id(*cadre);
         if (auto unit = cli.args_.Get("unit")) request.set_unit_id(*unit);
         const std::string kind = *cli.args_.Get("target-kind");
         v1::SubjectKind subject_kind = kind == "household" ? v1::SUBJECT_KIND_HOUSEHOLD
                                        : kind == "village" ? v1::SUBJECT_KIND_VILLAGE
                                        : kind == "county"  ? v1::SUBJECT_KIND_AREA
                                                            : v1::SUBJECT_KIND_UNSPECIFIED;
         if (subject_kind == v1::SUBJECT_KIND_UNSPECIFIED) {
           return cli.Usage("--target-kind: want household, village or county", usage);
         }
         request.mutable_target()->set_kind(subject_kind);
         request.mutable_target()->set_id(*cli.args_.Get("target"));
         auto role = ParseEnum<v1::LinkRole>(v1::LinkRole_descriptor(), "LINK_ROLE_",
                                             *cli.args_.Get("role"), "role");
         if (!role.ok()) return cli.Usage(std::string(role.status().message()), usage);
         request.set_role(*role);
         if (auto from = cli.args_.Get("from")) {
           auto date = ParseDate(*from, "from");
           if (!date.ok()) return cli.Usage(std::string(date.status().message()), usage);
           *request.mutable_valid_from() = *date;
         }
         request.set_reason(cli.args_.GetOr("reason", ""));
         return cli.AdminRpc(admin, &Stub::StartLink, request, [](const auto& r) {
           return absl::StrCat("link ", r.link().id(), " started\n");
         });
       }},
      {"link end",
       "ID --reason REASON [--to YYYY-MM-DD] [--note T]\n"
       "                 [--replacement USER | --replacement-unit UNIT] [--replacement-from "
       "YYYY-MM-DD]\n"
       "                 [--replacement-reason T]",
       false,
       [](Cli& cli, AdminCall& admin, const std::string& usage) {
         const std::string link_id = cli.Word(3);
         if (link_id.empty()) return cli.Usage("admin link end needs the link ID", usage);
         if (auto m = cli.Missing(admin.name, {"reason"}); !m.empty()) return cli.Usage(m, usage);
         v1::EndLinkRequest request;
         request.set_link_id(link_id);
         auto reason =
             ParseEnum<v1::LinkEndReason>(v1::LinkEndReason_descriptor(), "LINK_END_REASON_",
                                          *cli.args_.Get("reason"), "reason");
         if (!reason.ok()) return cli.Usage(std::string(reason.status().message()), usage);
         request.set_reason(*reason);
         request.set_note(cli.args_.GetOr("note", ""));
         v1::Date to = Today();
         if (auto to_text = cli.args_.Get("to")) {
           auto date = ParseDate(*to_text, "to");
           if (!date.ok()) return cli.Usage(std::string(date.status().message()), usage);
           to = *date;
         }
         *request.mutable_valid_to() = to;
         // The replacement: a cadre for a cadre's link, a unit for a unit's
         // (the server checks that it matches the old holder).
         const bool cadre = cli.args_.Has("replacement");
         const bool unit = cli.args_.Has("replacement-unit");
         if (cadre && unit)
           return cli.Usage("want one of --replacement, --replacement-unit", usage);
         if (!cadre && !unit &&
             (cli.args_.Has("replacement-from") || cli.args_.Has("replacement-reason"))) {
           return cli.Usage(
               "--replacement-from and --replacement-reason need --replacement USER "
               "or --replacement-unit UNIT",
               usage);
         }
         if (*reason == v1::LINK_END_REASON_REPLACED && !cadre && !unit) {
           return cli.Usage(
               "--reason replaced needs --replacement USER (or --replacement-unit "
               "UNIT): the target is never left unlinked",
               usage);
         }
         if (cadre || unit) {
           v1::LinkReplacement* r = request.mutable_replacement();
           if (cadre) r->set_cadre_id(*cli.args_.Get("replacement"));
           if (unit) r->set_unit_id(*cli.args_.Get("replacement-unit"));
           if (auto from = cli.args_.Get("replacement-from")) {
             auto date = ParseDate(*from, "replacement-from");
             if (!date.ok()) return cli.Usage(std::string(date.status().message()), usage);
             *r->mutable_valid_from() = *date;
           }
           // The server wants a reason for the new link; by default the
           // old link's end says it.
           r->set_reason(cli.args_.GetOr(
               "replacement-reason",
               absl::StrCat("replaces link ", link_id, " (",
                            EnumWord(v1::LinkEndReason_descriptor(), *reason, "LINK_END_REASON_"),
                            ")")));
         }
         return cli.AdminRpc(admin, &Stub::EndLink, request, [](const auto& r) {
           std::string text = absl::StrCat("link ", r.ended().id(), " ended\n");
           if (r.has_replacement()) {
             const v1::Link& next = r.replacement();
             absl::StrAppend(
                 &text, "link ", next.id(),
                 " started: ", next.cadre_id().empty() ? next.unit_id() : next.cadre_id(),
                 " takes over ", next.target().id(), " from ", DateText(next.valid_from()), "\n");
           }
           return text;
         });
       }},
      {"link list", "[--cadre USER] [--scope PREFIX] [--active-only]", true,
       [](Cli& cli, AdminCall& admin, const std::string&) {
         v1::ListLinksRequest request;
         request.set_cadre_id(cli.args_.GetOr("cadre", ""));
         request.set_scope_prefix(cli.args_.GetOr("scope", ""));
         request.set_active_only(cli.args_.Has("active-only"));
         return cli.AdminRpc(admin, &Stub::ListLinks, request, [](const auto& r) {
           Table table({"ID", "HOLDER", "TARGET", "ROLE", "FROM", "ACTIVE"});
           for (const v1::Link& l : r.links()) {
             table.Add({l.id(), l.cadre_id().empty() ? l.unit_id() : l.cadre_id(), l.target().id(),
                        EnumWord(v1::LinkRole_descriptor(), l.role(), "LINK_ROLE_"),
                        absl::StrCat(l.valid_from().year(), "-", l.valid_from().month(), "-",
                                     l.valid_from().day()),
                        l.active() ? "yes" : "no"});
           }
           return table.Render();
         });
       }},
      {"code issue", "--user USER [--ttl 24h]", false,
       [](Cli& cli, AdminCall& admin, const std::string& usage) {
         if (auto m = cli.Missing(admin.name, {"user"}); !m.empty()) return cli.Usage(m, usage);
         v1::IssueEnrollmentCodeRequest request;
         request.set_user_id(*cli.args_.Get("user"));
         if (auto ttl = cli.args_.Get("ttl")) {
           absl::Duration d;
           if (!absl::ParseDuration(*ttl, &d))
             return cli.Usage("--ttl: want a duration like 24h", usage);
           request.mutable_ttl()->set_seconds(absl::ToInt64Seconds(d));
         }
         return cli.AdminRpc(admin, &Stub::IssueEnrollmentCode, request,
                             [](const auto& r) { return absl::StrCat(r.code(), "\n"); });
       }},
      {"device list", "[--user USER] [--include-revoked]", true,
       [](Cli& cli, AdminCall& admin, const std::string&) {
         v1::ListDevicesRequest request;
         request.set_user_id(cli.args_.GetOr("user", ""));
         request.set_include_revoked(cli.args_.Has("include-revoked"));
         return cli.AdminRpc(admin, &Stub::ListDevices, request, [](const auto& r) {
           Table table({"ID", "USER", "NAME", "LAST_SEQ", "REVOKED"});
           for (const v1::Device& d : r.devices()) {
             table.Add({d.id(), d.user_id(), d.name(), std::to_string(d.last_device_seq()),
                        d.revoked() ? "yes" : "no"});
           }
           return table.Render();
         });
       }},
      {"device revoke", "ID --reason T", false,
       [](Cli& cli, AdminCall& admin, const std::string& usage) {
         if (cli.Word(3).empty())
           return cli.Usage("admin device revoke needs the device ID", usage);
         if (auto m = cli.Missing(admin.name, {"reason"}); !m.empty()) return cli.Usage(m, usage);
         v1::RevokeDeviceRequest request;
         request.set_device_id(cli.Word(3));
         request.set_reason(*cli.args_.Get("reason"));
         return cli.AdminRpc(admin, &Stub::RevokeDevice, request, [](const auto& r) {
           return absl::StrCat("device ", r.device().id(), " revoked\n");
         });
       }},
      {"backup create", "[--label L]   (also plain `admin backup`)", false,
       [](Cli& cli, AdminCall& admin, const std::string&) {
         v1::CreateBackupRequest request;
         request.set_label(cli.args_.GetOr("label", ""));
         return cli.AdminRpc(admin, &Stub::CreateBackup, request, [](const auto& r) {
           return absl::StrCat("backup ", r.backup().backup_id(), " at offset ",
                               r.backup().head_offset(), ": ", r.backup().path(), "\n");
         });
       }},
      {"backup list", "", true,
       [](Cli& cli, AdminCall& admin, const std::string&) {
         return cli.AdminRpc(admin, &Stub::ListBackups, v1::ListBackupsRequest(),
                             [](const auto& r) {
                               Table table({"ID", "HEAD", "SIZE", "LABEL", "PATH"});
                               for (const v1::BackupInfo& b : r.backups()) {
                                 table.Add({b.backup_id(), std::to_string(b.head_offset()),
                                            std::to_string(b.size_bytes()), b.label(), b.path()});
                               }
                               return table.Render();
                             });
       }},
  };

  std::string usage;
  for (const Command& command : kCommands) {
    absl::StrAppend(
        &usage, usage.empty() ? "usage: fieldctl --token-file FILE admin " : "       ... admin ",
        command.path, *command.usage != '\0' ? " " : "", command.usage, "\n");
  }
  absl::StrAppend(&usage,
                  "  ROLE: cadre, township_staff, county_staff, hq_analyst, admin\n"
                  "  link ROLE: household_helper, village_unit, village_cadre, county_leader, "
                  "lead_leader,\n"
                  "             group_leader_unit\n"
                  "  link end REASON: replaced, target_exited, target_cancelled, cadre_left,\n"
                  "             entered_in_error, other\n");
  if (Help(usage)) return kExitOk;
  std::string path = absl::StrCat(Word(1), " ", Word(2));
  if (path == "backup ") path = "backup create";
  const Command* command = nullptr;
  for (const Command& c : kCommands) {
    if (path == c.path) command = &c;
  }
  if (command == nullptr) {
    return Usage(absl::StrCat("unknown admin command: ", absl::StripAsciiWhitespace(path)), usage);
  }
  auto token = AdminToken();
  if (!token.ok()) return Fail(token.status());
  if (settings_.server.empty()) {
    return Fail(absl::FailedPreconditionError("no server: pass --server HOST:PORT"));
  }
  AdminCall admin;
  admin.stub = v1::AdminService::NewStub(AdminChannel());
  admin.token = *token;
  admin.name = absl::StrCat("admin ", command->path);
  admin.read_only = command->read_only;
  return command->run(*this, admin, usage);
}

std::string HomePath(const std::string& rest) {
  const char* home = std::getenv("HOME");
  return absl::StrCat(home != nullptr ? home : ".", "/", rest);
}

}  // namespace

int Main(int argc, char** argv) {
  std::vector<std::string> words(argv + 1, argv + argc);
  auto args = Args::Parse(words, kBooleans);
  if (!args.ok()) {
    std::cerr << "fieldctl: " << args.status().message() << "\n" << kGlobalUsage;
    return kExitUsage;
  }
  Settings settings;
  std::string tls_ca;
  const char* config_env = std::getenv("FIELDCTL_CONFIG");
  const std::string config_path =
      config_env != nullptr ? config_env : HomePath(".config/fieldsync/fieldctl.toml");
  std::ifstream config_file(config_path);
  if (config_file) {
    std::stringstream buffer;
    buffer << config_file.rdbuf();
    auto config = ParseConfig(buffer.str());
    if (!config.ok()) {
      std::cerr << "fieldctl: " << config_path << ": " << config.status().message() << "\n";
      return kExitUsage;
    }
    settings.server = (*config)["server"];
    settings.db = (*config)["db"];
    settings.token_file = (*config)["token_file"];
    tls_ca = (*config)["tls_ca"];
  }
  if (auto v = args->Get("server")) settings.server = *v;
  if (auto v = args->Get("db")) settings.db = *v;
  if (auto v = args->Get("token-file")) settings.token_file = *v;
  if (auto v = args->Get("tls-ca")) tls_ca = *v;
  if (!tls_ca.empty()) {
    std::ifstream in(tls_ca);
    std::stringstream pem;
    pem << in.rdbuf();
    if (!in || pem.str().empty()) {
      std::cerr << "fieldctl: cannot read the TLS CA file " << tls_ca << "\n";
      return kExitFailed;
    }
    settings.tls_ca_pem = pem.str();
  }
  settings.json = args->Has("json");
  if (auto v = args->Get("retries")) {
    if (!absl::SimpleAtoi(*v, &settings.retries) || settings.retries < 1) {
      std::cerr << "fieldctl: --retries " << *v << ": want a number of attempts, at least 1\n";
      return kExitUsage;
    }
  }
  if (settings.db.empty()) settings.db = HomePath(".local/share/fieldsync/device.db");
  {
    // The database's directory, so that a first `enroll` works on a fresh machine.
    std::error_code error;
    std::filesystem::path parent = std::filesystem::path(settings.db).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, error);
  }
  Cli cli(std::move(settings), *std::move(args));
  return cli.Run();
}

}  // namespace fieldsync::fieldctl

int main(int argc, char** argv) { return fieldsync::fieldctl::Main(argc, argv); }
