#include "server/services.h"

#include "absl/strings/str_cat.h"
#include "domain/shuanglian_policy.h"
#include "server/admin_service.h"
#include "server/auth.h"
#include "server/directory.h"
#include "server/identity.h"
#include "server/query_service.h"
#include "server/report_service.h"
#include "server/service_context.h"
#include "server/stream_service.h"
#include "server/sync_service.h"
#include "storage/status_macros.h"

namespace fieldsync::server {
namespace {

class ServiceSetImpl final : public ServiceSet {
 public:
  static absl::StatusOr<std::unique_ptr<ServiceSet>> Create(const ServiceDeps& deps) {
    if (deps.store == nullptr || deps.state == nullptr) {
      return absl::InvalidArgumentError("CreateServices needs a store and a server state");
    }
    auto set = std::unique_ptr<ServiceSetImpl>(new ServiceSetImpl());
    Clock clock = deps.clock ? deps.clock : Clock([] { return absl::Now(); });
    static const v1::ServerConfig* empty_config = new v1::ServerConfig();
    ServiceSettings settings = SettingsFrom(deps.config != nullptr ? *deps.config : *empty_config);

    const HouseholdLocator* households = deps.households;
    if (households == nullptr) {
      set->households_ = NewDomainHouseholds(deps.store);
      households = set->households_.get();
    }
    set->directory_ = std::make_unique<Directory>(deps.store, households, clock);
    ASSIGN_OR_RETURN(set->identity_,
                     Identity::Open(deps.store, set->directory_.get(), clock, &set->policy_));
    set->limiter_ = std::make_unique<RateLimiter>(settings.device_requests_per_second,
                                                  settings.device_request_burst, clock);
    set->guard_ = std::make_unique<CallGuard>(
        deps.state, set->identity_.get(), set->limiter_.get(),
        absl::StrCat("(limits.device_requests_per_second=", settings.device_requests_per_second,
                     ", limits.device_request_burst=", settings.device_request_burst, ")"));
    set->worker_ = std::make_unique<Worker>();
    set->context_.store = deps.store;
    set->context_.directory = set->directory_.get();
    set->context_.identity = set->identity_.get();
    set->context_.guard = set->guard_.get();
    set->context_.worker = set->worker_.get();
    set->context_.settings = settings;
    set->context_.clock = clock;
    set->sync_ = std::make_unique<SyncServiceImpl>(&set->context_);
    set->stream_ = std::make_unique<StreamServiceImpl>(&set->context_);
    set->query_ = std::make_unique<QueryServiceImpl>(&set->context_);
    set->report_ = std::make_unique<ReportServiceImpl>(&set->context_);
    set->admin_ = std::make_unique<AdminServiceImpl>(&set->context_);
    return set;
  }

  std::vector<grpc::Service*> services() override {
    return {sync_.get(), stream_.get(), query_.get(), report_.get(), admin_.get()};
  }

  std::optional<std::string> first_admin_token() const override {
    return identity_->first_admin_token();
  }

 private:
  ServiceSetImpl() = default;

  // Destroyed in reverse: the services, then the worker (which finishes its
  // queued backups), then what they use.
  // The domain's merge policy: link events of AdminService go through it (and
  // the sync engine's pushes will).
  domain::ShuanglianPolicy policy_;
  std::unique_ptr<HouseholdLocator> households_;
  std::unique_ptr<Directory> directory_;
  std::unique_ptr<Identity> identity_;
  std::unique_ptr<RateLimiter> limiter_;
  std::unique_ptr<CallGuard> guard_;
  ServiceContext context_;
  // After the context: its queued backups use the context while it joins.
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<SyncServiceImpl> sync_;
  std::unique_ptr<StreamServiceImpl> stream_;
  std::unique_ptr<QueryServiceImpl> query_;
  std::unique_ptr<ReportServiceImpl> report_;
  std::unique_ptr<AdminServiceImpl> admin_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ServiceSet>> CreateServices(const ServiceDeps& deps) {
  return ServiceSetImpl::Create(deps);
}

}  // namespace fieldsync::server
