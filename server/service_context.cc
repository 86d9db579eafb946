#include "server/service_context.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/text.h"

namespace fieldsync::server {

Worker::Worker() : thread_([this] { Loop(); }) {}

Worker::~Worker() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void Worker::Run(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  tasks_.push_back(std::move(task));
}

void Worker::Loop() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !tasks_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (tasks_.empty()) return;  // Stopping, and nothing left to run.
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

absl::Status ValidatePrefix(std::string_view field, std::string_view prefix, bool optional) {
  if (prefix.empty()) {
    if (optional) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(std::string(field), " is required"));
  }
  if (prefix.size() > 15 || !base::IsDigits(prefix)) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(field),
                                                   " must be 1 to 15 digits of an area code, got '",
                                                   std::string(prefix.substr(0, 32)), "'"));
  }
  return absl::OkStatus();
}

absl::Status NotServedYet(std::string_view method_path) {
  std::string name(method_path.substr(
      method_path.rfind('.') == std::string_view::npos ? 0 : method_path.rfind('.') + 1));
  for (char& c : name) {
    if (c == '/') c = '.';
  }
  return absl::UnimplementedError(absl::StrCat(name, " is not served yet"));
}

}  // namespace fieldsync::server
