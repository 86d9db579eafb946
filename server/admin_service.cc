// AdminService: what its handler files share (admin_service_internal.h).
// The handlers live by concept: areas (admin_service_areas.cc), people
// (units and users, admin_service_people.cc), links (admin_service_links.cc),
// enrollment codes and devices (admin_service_devices.cc), backups
// (admin_service_backups.cc).
#include "server/admin_service.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/text.h"
#include "server/admin_service_internal.h"
#include "server/directory.h"

namespace fieldsync::server::admin {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

absl::Status TextField(std::string_view field, const std::string& value, bool required,
                       size_t max_bytes) {
  if (value.empty()) {
    return required ? Invalid(absl::StrCat(std::string(field), " is required")) : absl::OkStatus();
  }
  if (!base::IsCleanText(value, max_bytes)) {
    return Invalid(absl::StrCat(std::string(field),
                                " must be UTF-8 text without control characters, at most ",
                                max_bytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status IdField(std::string_view field, const std::string& value) {
  if (value.empty()) return Invalid(absl::StrCat(std::string(field), " is required"));
  if (!base::IsPlainId(value)) {
    return Invalid(absl::StrCat(std::string(field), " must match [A-Za-z0-9._:-]{1,64}, got '",
                                value.substr(0, 80), "'"));
  }
  return absl::OkStatus();
}

std::string LevelName(v1::AreaLevel level) {
  std::string name = v1::AreaLevel_Name(level);
  if (absl::StartsWith(name, "AREA_LEVEL_")) name = name.substr(11);
  return absl::AsciiStrToLower(name);
}

grpc::ServerUnaryReactor* RunAdminChange(
    const ServiceContext& ctx, grpc::CallbackServerContext* context, std::string_view method,
    const std::function<absl::StatusOr<AdminChange>(GuardedUnary& call)>& validate) {
  auto* call = new GuardedUnary(ctx.guard, context, method);
  if (!call->admitted()) return call;
  absl::StatusOr<AdminChange> change = validate(*call);
  if (!change.ok()) {
    call->Finish(change.status());
    return call;
  }
  if (change->changes.empty()) {
    call->Finish(absl::OkStatus());
    return call;
  }
  ctx.identity->AppendAsync(
      call->principal().user_id(), std::move(change->changes),
      [call, answer = std::move(change->answer), on_error = std::move(change->on_error)](
          absl::StatusOr<std::vector<sync::LoggedEvent>> events) {
        if (!events.ok()) {
          if (on_error) on_error();
          return call->Finish(events.status());
        }
        if (answer) answer(*events);
        call->Finish(absl::OkStatus());
      });
  return call;
}

}  // namespace fieldsync::server::admin
