// OpenStreams: the registry of long-lived calls (Subscribe streams, blob
// uploads) by the device and the user whose token opened them, so that
// revoking a device or disabling a user ends those calls at once instead of
// letting them run on the authentication they had when they started.
//
// Identity owns the registry and ends the calls when a DeviceRevoked, or a
// UserUpserted that disables a user, has committed (Identity::open_streams()).
// A call registers right after its guard admitted it and then asks
// Identity::Recheck once: a revocation that committed between the two is seen
// by the check, one that commits later by the registry, so none is missed.
//
// Use from a reactor:
//   registration_ = identity->open_streams().Register(
//       user_id, device_id, [this](const absl::Status& why) { /* finish soon */ });
//   ... registration_.Reset() in OnDone, before `delete this`.
//
// Thread-safety: safe for concurrent use.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace fieldsync::server {

class OpenStreams {
 public:
  // Ends one call with `why` (UNAUTHENTICATED, saying which device was
  // revoked or which user disabled). Called at most once, from the thread
  // that ended the access (the store's writer thread, which answers the
  // commit that revoked it): it must not block
  // and must not destroy the call's Registration before it returns (ask the
  // call to finish; its OnDone resets the registration later).
  using EndFn = std::function<void(const absl::Status& why)>;

 private:
  struct Entry;

 public:
  // One registered call. Movable; unregisters when reset or destroyed. After
  // Reset returns, the call's EndFn is never called again (Reset waits for a
  // call of it in progress on another thread).
  class Registration {
   public:
    Registration() = default;
    Registration(Registration&& other) noexcept { *this = std::move(other); }
    Registration& operator=(Registration&& other) noexcept;
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;
    ~Registration() { Reset(); }
    void Reset();

   private:
    friend class OpenStreams;
    OpenStreams* registry_ = nullptr;
    uint64_t id_ = 0;
    std::shared_ptr<Entry> entry_;
  };

  OpenStreams() = default;
  OpenStreams(const OpenStreams&) = delete;
  OpenStreams& operator=(const OpenStreams&) = delete;

  // Registers a call of `device_id` (a device of `user_id`). The registry
  // must outlive the registration.
  [[nodiscard]] Registration Register(std::string user_id, std::string device_id, EndFn end)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Ends every registered call of the device / of any device of the user.
  void EndDevice(std::string_view device_id, const absl::Status& why) ABSL_LOCKS_EXCLUDED(mu_);
  void EndUser(std::string_view user_id, const absl::Status& why) ABSL_LOCKS_EXCLUDED(mu_);

  // Calls registered now.
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    std::string user_id;
    std::string device_id;
    absl::Mutex mu;
    EndFn end ABSL_GUARDED_BY(mu);  // Empty once called or unregistered.
  };

  void End(const std::function<bool(const Entry&)>& match, const absl::Status& why)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Unregister(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fieldsync::server
