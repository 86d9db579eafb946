#include "server/open_streams.h"

#include <utility>
#include <vector>

namespace fieldsync::server {

OpenStreams::Registration& OpenStreams::Registration::operator=(Registration&& other) noexcept {
  if (this != &other) {
    Reset();
    registry_ = std::exchange(other.registry_, nullptr);
    id_ = std::exchange(other.id_, 0);
    entry_ = std::move(other.entry_);
  }
  return *this;
}

void OpenStreams::Registration::Reset() {
  if (registry_ == nullptr) return;
  registry_->Unregister(id_);
  {
    // Waits for an EndFn running on another thread; none runs afterwards.
    absl::MutexLock lock(&entry_->mu);
    entry_->end = nullptr;
  }
  registry_ = nullptr;
  id_ = 0;
  entry_.reset();
}

OpenStreams::Registration OpenStreams::Register(std::string user_id, std::string device_id,
                                                EndFn end) {
  auto entry = std::make_shared<Entry>();
  entry->user_id = std::move(user_id);
  entry->device_id = std::move(device_id);
  {
    absl::MutexLock lock(&entry->mu);
    entry->end = std::move(end);
  }
  Registration registration;
  absl::MutexLock lock(&mu_);
  registration.registry_ = this;
  registration.id_ = next_id_++;
  registration.entry_ = entry;
  entries_.emplace(registration.id_, std::move(entry));
  return registration;
}

void OpenStreams::EndDevice(std::string_view device_id, const absl::Status& why) {
  End([device_id](const Entry& entry) { return entry.device_id == device_id; }, why);
}

void OpenStreams::EndUser(std::string_view user_id, const absl::Status& why) {
  End([user_id](const Entry& entry) { return entry.user_id == user_id; }, why);
}

size_t OpenStreams::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

void OpenStreams::End(const std::function<bool(const Entry&)>& match, const absl::Status& why) {
  // Collected under the registry's lock, ended outside it: an EndFn may take
  // the call's own locks, and a call unregisters under the registry's lock.
  std::vector<std::shared_ptr<Entry>> matched;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, entry] : entries_) {
      if (match(*entry)) matched.push_back(entry);
    }
  }
  for (const std::shared_ptr<Entry>& entry : matched) {
    absl::MutexLock lock(&entry->mu);
    if (!entry->end) continue;  // Unregistered, or already ended.
    EndFn end = std::move(entry->end);
    entry->end = nullptr;
    end(why);
  }
}

void OpenStreams::Unregister(uint64_t id) {
  absl::MutexLock lock(&mu_);
  entries_.erase(id);
}

}  // namespace fieldsync::server
