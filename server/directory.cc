#include "server/directory.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "base/proto_parse.h"
#include "base/status_macros.h"
#include "base/time.h"
#include "domain/domain_keys.h"
#include "domain/queries.h"
#include "domain/reference.h"
#include "sync/event_codec.h"
#include "sync/store_reader.h"

namespace fieldsync::server {
namespace {

constexpr char kSep = '\0';

std::string Cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out.append(p.data(), p.size());
  return out;
}

template <typename Message>
absl::StatusOr<std::optional<Message>> Load(const storage::EventStore& store, std::string key) {
  ASSIGN_OR_RETURN(std::optional<std::string> value, store.GetProjection(key));
  return base::ParseStoredOptional<Message>(key, value);
}

template <typename Message>
absl::StatusOr<std::optional<Message>> LoadInCommit(storage::CommitContext& ctx, std::string key) {
  ASSIGN_OR_RETURN(std::optional<std::string> value, ctx.Get(key));
  return base::ParseStoredOptional<Message>(key, value);
}

std::string DeviceTime(const v1::Device& device) {
  int64_t micros = device.enrolled_at().seconds() * 1000000 + device.enrolled_at().nanos() / 1000;
  return absl::StrFormat("%020d", std::max<int64_t>(micros, 0));
}

const absl::TimeZone& ChinaStandardTime() {
  static const absl::TimeZone* zone = new absl::TimeZone(absl::FixedTimeZone(8 * 3600));
  return *zone;
}

class DomainHouseholds final : public HouseholdLocator {
 public:
  explicit DomainHouseholds(const storage::EventStore* store)
      : reader_(store), queries_(&reader_) {}

  absl::StatusOr<std::optional<HouseholdPlace>> FindById(std::string_view id) const override {
    ASSIGN_OR_RETURN(std::optional<v1::Household> household, queries_.FindHousehold(id));
    return Place(household);
  }
  absl::StatusOr<std::optional<HouseholdPlace>> FindByNumber(
      std::string_view number) const override {
    ASSIGN_OR_RETURN(std::optional<v1::Household> household,
                     queries_.FindHouseholdByNumber(number));
    return Place(household);
  }

 private:
  static std::optional<HouseholdPlace> Place(const std::optional<v1::Household>& household) {
    if (!household.has_value()) return std::nullopt;
    return HouseholdPlace{household->id(), household->household_number(),
                          household->village_code()};
  }
  sync::StoreProjectionReader reader_;
  domain::DomainQueries queries_;
};

}  // namespace

std::unique_ptr<HouseholdLocator> NewDomainHouseholds(const storage::EventStore* store) {
  return std::make_unique<DomainHouseholds>(store);
}

// --- Keys ------------------------------------------------------------------------

namespace dir_keys {
std::string Device(std::string_view id) { return Cat({"dir/device/", id}); }
std::string DeviceUserPrefix(std::string_view user_id) {
  return Cat({"dir/device_user/", user_id, std::string_view(&kSep, 1)});
}
}  // namespace dir_keys

// --- Values --------------------------------------------------------------------------

std::optional<base::AreaLevel> BaseAreaLevel(v1::AreaLevel level) {
  switch (level) {
    case v1::AREA_LEVEL_PROVINCE:
      return base::AreaLevel::kProvince;
    case v1::AREA_LEVEL_CITY:
      return base::AreaLevel::kCity;
    case v1::AREA_LEVEL_COUNTY:
      return base::AreaLevel::kCounty;
    case v1::AREA_LEVEL_TOWNSHIP:
      return base::AreaLevel::kTownship;
    case v1::AREA_LEVEL_VILLAGE:
      return base::AreaLevel::kVillage;
    default:
      return std::nullopt;
  }
}

int SignificantDigits(v1::AreaLevel level) {
  const std::optional<base::AreaLevel> base_level = BaseAreaLevel(level);
  return base_level ? static_cast<int>(base::SignificantDigits(*base_level)) : 0;
}

std::string AreaPrefix(const v1::Area& area) {
  int digits = SignificantDigits(area.level());
  if (digits == 0) return area.code();
  return area.code().substr(0, std::min<size_t>(digits, area.code().size()));
}

bool IsValidDate(const v1::Date& date) {
  return base::IsValidCalendarDate(date.year(), date.month(), date.day(), kMinAdminDateYear,
                                   kMaxAdminDateYear);
}

int DateNumber(const v1::Date& date) {
  return date.year() * 10000 + date.month() * 100 + date.day();
}

v1::Date DateOf(absl::Time time) {
  absl::CivilDay day = absl::ToCivilDay(time, ChinaStandardTime());
  v1::Date date;
  date.set_year(static_cast<int32_t>(day.year()));
  date.set_month(day.month());
  date.set_day(day.day());
  return date;
}

v1::Date AddDays(const v1::Date& date, int days) {
  absl::CivilDay day = absl::CivilDay(date.year(), date.month(), date.day()) + days;
  v1::Date out;
  out.set_year(static_cast<int32_t>(day.year()));
  out.set_month(day.month());
  out.set_day(day.day());
  return out;
}

// --- Directory ---------------------------------------------------------------------------

Directory::Directory(const storage::EventStore* store, const HouseholdLocator* households,
                     Clock clock)
    : store_(store),
      households_(households),
      clock_(std::move(clock)),
      reader_(std::make_unique<sync::StoreProjectionReader>(store)),
      scopes_(std::make_unique<domain::UserScopes>(reader_.get(), clock_)) {}

Directory::~Directory() = default;

const sync::ProjectionReader& Directory::projections() const { return *reader_; }

absl::StatusOr<std::optional<v1::Area>> Directory::GetArea(std::string_view code) const {
  return domain::FindArea(*reader_, code);
}
absl::StatusOr<std::optional<v1::Unit>> Directory::GetUnit(std::string_view id) const {
  return domain::FindUnit(*reader_, id);
}
absl::StatusOr<std::optional<v1::User>> Directory::GetUser(std::string_view id) const {
  return domain::FindUser(*reader_, id);
}
absl::StatusOr<std::optional<v1::Link>> Directory::GetLink(std::string_view id) const {
  return domain::FindLink(*reader_, id);
}
absl::StatusOr<std::optional<v1::Device>> Directory::GetDevice(std::string_view id) const {
  return Load<v1::Device>(*store_, dir_keys::Device(id));
}

absl::StatusOr<std::string> Directory::AreaOfUser(const v1::User& user) const {
  if (user.unit_id().empty()) return std::string();
  ASSIGN_OR_RETURN(std::optional<v1::Unit> unit, GetUnit(user.unit_id()));
  return unit.has_value() ? unit->area_code() : std::string();
}

absl::StatusOr<std::string> Directory::AreaOfSubject(const v1::SubjectRef& subject) const {
  auto not_found = [&] {
    return absl::NotFoundError(
        absl::StrCat("no ", sync::SubjectKindName(subject.kind()), " '", subject.id(), "'"));
  };
  switch (subject.kind()) {
    case v1::SUBJECT_KIND_HOUSEHOLD: {
      ASSIGN_OR_RETURN(std::optional<HouseholdPlace> place, households_->FindById(subject.id()));
      if (!place.has_value()) return not_found();
      return place->village_code;
    }
    case v1::SUBJECT_KIND_VILLAGE:
    case v1::SUBJECT_KIND_AREA: {
      ASSIGN_OR_RETURN(std::optional<v1::Area> area, GetArea(subject.id()));
      if (!area.has_value()) return not_found();
      return area->code();
    }
    case v1::SUBJECT_KIND_UNIT: {
      ASSIGN_OR_RETURN(std::optional<v1::Unit> unit, GetUnit(subject.id()));
      if (!unit.has_value()) return not_found();
      return unit->area_code();
    }
    case v1::SUBJECT_KIND_USER:
    case v1::SUBJECT_KIND_CADRE: {
      ASSIGN_OR_RETURN(std::optional<v1::User> user, GetUser(subject.id()));
      if (!user.has_value()) return not_found();
      return AreaOfUser(*user);
    }
    case v1::SUBJECT_KIND_DEVICE: {
      ASSIGN_OR_RETURN(std::optional<v1::Device> device, GetDevice(subject.id()));
      if (!device.has_value()) return not_found();
      ASSIGN_OR_RETURN(std::optional<v1::User> user, GetUser(device->user_id()));
      if (!user.has_value()) return std::string();
      return AreaOfUser(*user);
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("subject kind ", v1::SubjectKind_Name(subject.kind()),
                       " is not an event subject; name its household, village or area"));
  }
}

absl::StatusOr<std::optional<std::string>> Directory::AreaOfEventSubject(
    const v1::SubjectRef& subject) const {
  if (subject.kind() == v1::SUBJECT_KIND_VILLAGE || subject.kind() == v1::SUBJECT_KIND_AREA) {
    // A VILLAGE subject is an imported village; an AREA subject any other
    // imported area (a village is named as a VILLAGE). The body may narrow
    // the level further (a county link: domain/link_merge.cc).
    ASSIGN_OR_RETURN(std::optional<v1::Area> area, GetArea(subject.id()));
    if (!area.has_value()) return std::nullopt;
    const bool village = area->level() == v1::AREA_LEVEL_VILLAGE;
    if (village != (subject.kind() == v1::SUBJECT_KIND_VILLAGE)) return std::nullopt;
    return area->code();
  }
  absl::StatusOr<std::string> area = AreaOfSubject(subject);
  // Unknown, or a kind that is no event subject (the engine's envelope check
  // refuses those first): either way there is nowhere to place it.
  if (absl::IsNotFound(area.status()) || absl::IsInvalidArgument(area.status())) {
    return std::nullopt;
  }
  if (!area.ok()) return area.status();
  return std::optional<std::string>(*std::move(area));
}

// --- Paging ------------------------------------------------------------------------------

absl::StatusOr<IndexPage> ScanIndexPage(
    const storage::EventStore& store, std::string_view prefix, std::string_view page_token,
    size_t page_size,
    const std::function<absl::StatusOr<bool>(std::string_view key, std::string_view value)>& keep) {
  std::string after;
  if (!page_token.empty()) {
    std::string suffix;
    if (!absl::WebSafeBase64Unescape(std::string(page_token), &suffix) || suffix.empty()) {
      return absl::InvalidArgumentError("page_token is not a token this server issued");
    }
    after = absl::StrCat(std::string(prefix), suffix);
  }
  IndexPage page;
  constexpr size_t kBatch = 512;
  while (true) {
    ASSIGN_OR_RETURN(auto entries, store.ScanProjections(prefix, after, kBatch));
    for (auto& [key, value] : entries) {
      ASSIGN_OR_RETURN(bool kept, keep(key, value));
      if (!kept) continue;
      if (page.entries.size() == page_size) {
        // One more match exists: the page is full and another follows.
        page.next_page_token =
            absl::WebSafeBase64Escape(page.entries.back().first.substr(prefix.size()));
        return page;
      }
      page.entries.emplace_back(std::move(key), std::move(value));
    }
    if (entries.size() < kBatch) break;
    after = entries.back().first;
  }
  return page;
}

// --- Writes ------------------------------------------------------------------------------

absl::Status WriteDevice(storage::CommitContext& ctx, const v1::Device& device) {
  std::string sep(1, kSep);
  std::string time = DeviceTime(device);
  ctx.Put(absl::StrCat(dir_keys::kDeviceTimePrefix, time, sep, device.id()), "");
  ctx.Put(absl::StrCat(dir_keys::DeviceUserPrefix(device.user_id()), time, sep, device.id()), "");
  ctx.Put(dir_keys::Device(device.id()), device.SerializeAsString());
  return absl::OkStatus();
}

absl::StatusOr<std::optional<v1::Device>> ReadDevice(storage::CommitContext& ctx,
                                                     std::string_view id) {
  return LoadInCommit<v1::Device>(ctx, dir_keys::Device(id));
}
absl::StatusOr<std::optional<v1::User>> ReadUser(storage::CommitContext& ctx, std::string_view id) {
  return LoadInCommit<v1::User>(ctx, domain::keys::User(id));
}

}  // namespace fieldsync::server
