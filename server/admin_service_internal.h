// What the AdminService handler files (admin_service_*.cc) share: limits,
// the field checks, RunAdminChange (the one shape of every change), and
// their common preamble (the includes and the names they use unqualified),
// so that each file names only what is its own. Internal to server/.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/area_code.h"
#include "base/status_macros.h"
#include "base/text.h"
#include "base/time.h"
#include "server/admin_service.h"
#include "server/auth.h"
#include "server/identity.h"
#include "server/service_context.h"

namespace fieldsync::server::admin {

constexpr size_t kMaxImportErrors = 100;
// Areas per AreaImported event are cut so each event stays well under the
// default limits.max_event_bytes (64 KiB).
constexpr size_t kMaxAreaPartBytes = 48 * 1024;
constexpr size_t kMaxNameBytes = 200;
constexpr size_t kMaxReasonBytes = 1000;

absl::Status Invalid(std::string message);
// OK, or InvalidArgument naming `field`: required and empty, or not clean
// UTF-8 text of at most `max_bytes`.
absl::Status TextField(std::string_view field, const std::string& value, bool required,
                       size_t max_bytes);
// OK, or InvalidArgument naming `field`: empty, or not [A-Za-z0-9._:-]{1,64}.
absl::Status IdField(std::string_view field, const std::string& value);
// "county" for AREA_LEVEL_COUNTY, for messages and the CSV's level column.
std::string LevelName(v1::AreaLevel level);

// What a validated admin change appends and how the call answers.
struct AdminChange {
  // Appended as one unit, as the caller's. Empty: nothing to append; the
  // call answers OK at once (a dry run, nothing changed).
  std::vector<ServerChange> changes;
  // Fills the response from the stored events once they are durable
  // (committer thread: must not block). Optional.
  std::function<void(const std::vector<sync::LoggedEvent>&)> answer;
  // Runs when the append fails, before the error is the call's answer (to
  // take back what the response already says). Optional.
  std::function<void()> on_error;
};

// The guard-validate-append-answer shape of every AdminService change:
// admits the call (CallGuard: token, role, rate), runs `validate` on the
// gRPC thread, appends its changes as the caller's through the sync engine
// (Identity::AppendAsync), and finishes the call with OK once they are
// durable, or with the first error (validation's, or the append's: an apply
// or the domain refusing, the store's). Returns the call's reactor.
grpc::ServerUnaryReactor* RunAdminChange(
    const ServiceContext& ctx, grpc::CallbackServerContext* context, std::string_view method,
    const std::function<absl::StatusOr<AdminChange>(GuardedUnary& call)>& validate);

}  // namespace fieldsync::server::admin

namespace fieldsync::server {

// The handler files name these unqualified.
using admin::AdminChange;
using admin::IdField;
using admin::Invalid;
using admin::kMaxAreaPartBytes;
using admin::kMaxImportErrors;
using admin::kMaxNameBytes;
using admin::kMaxReasonBytes;
using admin::LevelName;
using admin::RunAdminChange;
using admin::TextField;

}  // namespace fieldsync::server
