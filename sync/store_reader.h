// StoreProjectionReader: a ProjectionReader over an EventStore's committed
// projections. Thread-safe (the store is).
#pragma once

#include "storage/event_store.h"
#include "sync/merge_policy.h"

namespace fieldsync::sync {

class StoreProjectionReader : public ProjectionReader {
 public:
  // `store` must outlive the reader.
  explicit StoreProjectionReader(const storage::EventStore* store) : store_(store) {}

  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) const override {
    return store_->GetProjection(key);
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Scan(
      std::string_view prefix, std::string_view start_after, size_t limit) const override {
    return store_->ScanProjections(prefix, start_after, limit);
  }

 private:
  const storage::EventStore* store_;
};

}  // namespace fieldsync::sync
