// The directory: the server's read side of the reference data it serves
// and checks against, and the key layout of the projections the server owns.
//
// Areas, units, users (role, rank, unit, area codes, disabled) and links are
// the domain's (domain/reference.h, domain/links.h): one record each, folded
// by the domain's Merge from the admin events in their own commit, whoever
// made them. The scope a user derives from role and links is the domain's
// too (domain/scope.h UserScopes, scopes()); handlers read it from the
// call's admission (server/auth.h Admission::scope), computed once per call.
// What the server keeps itself is identity: devices with their keys, tokens
// and enrollment codes (server/identity.h).
//
// Every record the server owns here is written by the committer thread inside
// the Append of the admin event that changed it (see the Write* functions,
// meant for AppendEntry::prepare), so the projections always equal a fold of
// the log. Reads go to the store's committed projections.
//
// Key layout (projections key space; "\0" is a NUL byte):
//   dir/device/<id>                                   v1.Device
//   dir/device_time/<enrolled µs, 20 digits>\0<id>    ""      (ListDevices order)
//   dir/device_user/<user id>\0<enrolled µs>\0<id>    ""      (a user's devices)
// (Areas, units and users: domain/domain_keys.h "dom/area/", "dom/unit/",
// "dom/user/" and their name indexes.)
//
// Thread-safety: Directory is immutable after construction and safe for
// concurrent use; the Write* functions run on the committer thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/area_code.h"
#include "domain/links.h"
#include "domain/scope.h"
#include "fieldsync/v1/common.pb.h"
#include "fieldsync/v1/state.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "storage/event_store.h"
#include "sync/scope.h"

namespace fieldsync::sync {
class ProjectionReader;
class StoreProjectionReader;
}  // namespace fieldsync::sync

namespace fieldsync::server {

// The server's clock; injected so tests control time.
using Clock = std::function<absl::Time()>;

// What a user may read and write (sync/scope.h): area prefixes, single
// subjects, or everything. The domain's UserScopes makes it (once per call,
// Admission::scope); the sync engine serves Pull and checks Push with it.
using Scope = sync::Scope;

// Where a household lives. Households are domain state kept by the sync
// engine; the directory asks this interface (implemented over the engine's
// state) to place a household for links and scope checks.
struct HouseholdPlace {
  std::string id;
  std::string household_number;
  std::string village_code;  // 12 digits.
};

class HouseholdLocator {
 public:
  virtual ~HouseholdLocator() = default;
  // The household with id `id`; nullopt if unknown. Thread-safe.
  virtual absl::StatusOr<std::optional<HouseholdPlace>> FindById(std::string_view id) const = 0;
  // The household with registry number `number`; nullopt if unknown.
  virtual absl::StatusOr<std::optional<HouseholdPlace>> FindByNumber(
      std::string_view number) const = 0;
};

// Households as the domain's state holds them (domain/queries.h: registered
// through the sync engine): the locator fieldsyncd uses. `store` must
// outlive it. Thread-safe.
std::unique_ptr<HouseholdLocator> NewDomainHouseholds(const storage::EventStore* store);

// Projection keys (see the layout above).
namespace dir_keys {
std::string Device(std::string_view id);
inline constexpr char kDeviceTimePrefix[] = "dir/device_time/";
std::string DeviceUserPrefix(std::string_view user_id);
}  // namespace dir_keys

// --- Values shared by the services -------------------------------------------

// (Ids, text and digits: base/text.h; Timestamps: base/time.h.)
// The base::AreaLevel of a proto level; nullopt for groups and unknown levels.
std::optional<base::AreaLevel> BaseAreaLevel(v1::AreaLevel level);
// The number of significant digits of an area level (base/area_code.h's
// table: province 2, city 4, county 6, township 9, village 12); 0 for groups
// and unknown levels.
int SignificantDigits(v1::AreaLevel level);
// The scope prefix of an area: its code cut to its level's significant digits
// (the whole code for groups).
std::string AreaPrefix(const v1::Area& area);
// The years an admin-entered date (a link's valid_to...) may have.
inline constexpr int kMinAdminDateYear = 1900;
inline constexpr int kMaxAdminDateYear = 9999;
// Dates: validity (a real date, kMinAdminDateYear..kMaxAdminDateYear), the
// yyyymmdd number, today in China Standard Time.
bool IsValidDate(const v1::Date& date);
int DateNumber(const v1::Date& date);
v1::Date DateOf(absl::Time time);
v1::Date AddDays(const v1::Date& date, int days);
// A link is active while not ended or while its valid_to is `today` or later
// (the domain's rule, the only one).
using domain::LinkActive;

// --- Reads --------------------------------------------------------------------

// Reads of the directory's projections. All methods return NotFound-free
// optionals for missing records and the store's error otherwise.
class Directory {
 public:
  // `store`, `households` must outlive the directory.
  Directory(const storage::EventStore* store, const HouseholdLocator* households, Clock clock);
  ~Directory();

  // The domain's records (domain/reference.h, domain/links.h).
  absl::StatusOr<std::optional<v1::Area>> GetArea(std::string_view code) const;
  absl::StatusOr<std::optional<v1::Unit>> GetUnit(std::string_view id) const;
  absl::StatusOr<std::optional<v1::User>> GetUser(std::string_view id) const;
  // A link as the domain holds it, whoever started or ended it.
  absl::StatusOr<std::optional<v1::Link>> GetLink(std::string_view id) const;
  // The server's own record of a device.
  absl::StatusOr<std::optional<v1::Device>> GetDevice(std::string_view id) const;

  // The domain's scope rule (domain/scope.h), over the same projections and
  // clock. Handlers use the scope their admission carries instead.
  const domain::UserScopes& scopes() const { return *scopes_; }

  // The area code a subject lives in, for scope checks: a household's
  // village, a village's or area's own code, a unit's area_code, a user's
  // unit's area_code, a device's user's. NotFound if the subject is unknown;
  // InvalidArgument for kinds that are no event subject (member, plan...).
  absl::StatusOr<std::string> AreaOfSubject(const v1::SubjectRef& subject) const;

  // Where the subject of a pushed event lives, for the sync engine's scope
  // check (sync::SyncOptions::subject_area): AreaOfSubject, with nullopt for
  // a subject the directory does not know, a VILLAGE subject must be an
  // area of village level and an AREA subject one of any other level
  // (docs/sync.md "Area codes"). Errors: the store's.
  absl::StatusOr<std::optional<std::string>> AreaOfEventSubject(
      const v1::SubjectRef& subject) const;

  // The area code of a user's unit ("" without a unit): the scope key of
  // user and device events.
  absl::StatusOr<std::string> AreaOfUser(const v1::User& user) const;

  const HouseholdLocator& households() const { return *households_; }
  absl::Time Now() const { return clock_(); }
  v1::Date Today() const { return DateOf(clock_()); }
  const storage::EventStore& store() const { return *store_; }
  // The committed projections, for the domain's reads (domain/links.h).
  const sync::ProjectionReader& projections() const;

 private:
  const storage::EventStore* store_;
  const HouseholdLocator* households_;
  Clock clock_;
  std::unique_ptr<sync::StoreProjectionReader> reader_;
  std::unique_ptr<domain::UserScopes> scopes_;
};

// One page of an index scan.
struct IndexPage {
  std::vector<std::pair<std::string, std::string>> entries;  // (key, value) kept.
  std::string next_page_token;                               // Empty on the last page.
};

// Scans projection keys under `prefix` in key order, starting after the
// position `page_token` names, keeping the entries `keep` accepts, until
// `page_size` are kept. The token is opaque (web-safe base64 of the last key
// suffix). InvalidArgument for a token that is not one of this prefix's.
absl::StatusOr<IndexPage> ScanIndexPage(
    const storage::EventStore& store, std::string_view prefix, std::string_view page_token,
    size_t page_size,
    const std::function<absl::StatusOr<bool>(std::string_view key, std::string_view value)>& keep);

// --- Writes (committer thread, inside AppendEntry::prepare) --------------------

// (Areas, units and users have no Write here: the domain's Merge of the
// event stores them, domain/reference.h.)
// Stores `device` with its time and user index entries.
absl::Status WriteDevice(storage::CommitContext& ctx, const v1::Device& device);
// Reads a record as of this point of the log; nullopt if absent. A user as
// of the events before this one (the domain folds this event's own
// UserUpserted after the change's apply).
absl::StatusOr<std::optional<v1::Device>> ReadDevice(storage::CommitContext& ctx,
                                                     std::string_view id);
absl::StatusOr<std::optional<v1::User>> ReadUser(storage::CommitContext& ctx, std::string_view id);

}  // namespace fieldsync::server
