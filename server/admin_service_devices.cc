// AdminService: enrollment codes and devices (Identity does the appends).
#include <algorithm>

#include "server/admin_service_internal.h"

namespace fieldsync::server {

// --- Enrollment and devices -----------------------------------------------------------------

grpc::ServerUnaryReactor* AdminServiceImpl::IssueEnrollmentCode(
    grpc::CallbackServerContext* context, const v1::IssueEnrollmentCodeRequest* request,
    v1::IssueEnrollmentCodeResponse* response) {
  auto* call = new GuardedUnary(ctx_->guard, context,
                                FIELDSYNC_METHOD_PATH(AdminService, IssueEnrollmentCode));
  if (!call->admitted()) return call;
  absl::Status status = IdField("user_id", request->user_id());
  absl::Duration ttl = ctx_->settings.enrollment_code_ttl;
  if (status.ok() && request->has_ttl()) {
    const auto& d = request->ttl();
    if (d.seconds() < 0 || d.nanos() < 0 || d.nanos() >= 1000000000 ||
        (d.seconds() == 0 && d.nanos() == 0)) {
      status = Invalid("ttl must be a positive duration");
    }
    ttl = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  }
  if (!status.ok()) {
    call->Finish(status);
    return call;
  }
  ttl = std::min(ttl, ctx_->settings.max_enrollment_code_ttl);
  ctx_->identity->IssueEnrollmentCode(call->principal().user_id(), request->user_id(), ttl,
                                      [call, response](absl::StatusOr<IssuedCode> issued) {
                                        if (!issued.ok()) return call->Finish(issued.status());
                                        response->set_code(issued->code);
                                        *response->mutable_expires_at() =
                                            base::ToTimestamp(issued->expires_at);
                                        response->set_user_id(issued->event.event().subject().id());
                                        response->set_code_id(issued->code_id);
                                        call->Finish(absl::OkStatus());
                                      });
  return call;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListDevices(grpc::CallbackServerContext* context,
                                                        const v1::ListDevicesRequest* request,
                                                        v1::ListDevicesResponse* response) {
  auto* call =
      new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(AdminService, ListDevices));
  if (!call->admitted()) return call;
  auto list = [&]() -> absl::Status {
    std::string prefix(dir_keys::kDeviceTimePrefix);
    if (!request->user_id().empty()) {
      RETURN_IF_ERROR(IdField("user_id", request->user_id()));
      prefix = dir_keys::DeviceUserPrefix(request->user_id());
    }
    std::vector<v1::Device> devices;
    ASSIGN_OR_RETURN(
        IndexPage page,
        ScanIndexPage(
            *ctx_->store, prefix, request->page_token(), ctx_->PageSize(request->page_size()), ctx_->settings.max_examined_records,
            [&](std::string_view key, std::string_view) -> absl::StatusOr<bool> {
              ASSIGN_OR_RETURN(
                  std::optional<v1::Device> device,
                  ctx_->directory->GetDevice(std::string(key.substr(key.rfind('\0') + 1))));
              if (!device.has_value()) return false;
              if (device->revoked() && !request->include_revoked()) return false;
              devices.push_back(*std::move(device));
              return true;
            }));
    devices.resize(page.entries.size());
    for (v1::Device& device : devices) {
      // Not kept in the device record: the sync engine's high-water mark is
      // the one count of what a device sent (a point read per listed device).
      ASSIGN_OR_RETURN(uint64_t next, ctx_->engine->NextExpectedSeq(device.id()));
      device.set_last_device_seq(next - 1);
      *response->add_devices() = std::move(device);
    }
    response->set_next_page_token(page.next_page_token);
    return absl::OkStatus();
  };
  call->Finish(list());
  return call;
}

grpc::ServerUnaryReactor* AdminServiceImpl::RevokeDevice(grpc::CallbackServerContext* context,
                                                         const v1::RevokeDeviceRequest* request,
                                                         v1::RevokeDeviceResponse* response) {
  auto* call =
      new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(AdminService, RevokeDevice));
  if (!call->admitted()) return call;
  absl::Status status = IdField("device_id", request->device_id());
  if (status.ok()) status = TextField("reason", request->reason(), true, kMaxReasonBytes);
  if (status.ok() && request->device_id() == call->principal().device_id()) {
    status = absl::FailedPreconditionError(
        "cannot revoke the device of the calling token; use another admin device");
  }
  if (!status.ok()) {
    call->Finish(status);
    return call;
  }
  ctx_->identity->RevokeDevice(
      call->principal().user_id(), request->device_id(), request->reason(),
      [call, response](absl::StatusOr<std::pair<v1::Device, uint64_t>> revoked) {
        if (!revoked.ok()) return call->Finish(revoked.status());
        *response->mutable_device() = revoked->first;
        response->set_offset(revoked->second);
        call->Finish(absl::OkStatus());
      });
  return call;
}

}  // namespace fieldsync::server
