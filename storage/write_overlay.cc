#include "storage/write_overlay.h"

#include "base/status_macros.h"

namespace fieldsync::storage {

const WriteOverlay::value_type* OverlayNearest(const WriteOverlay& overlay, std::string_view prefix,
                                               std::string_view cursor, bool forward) {
  auto it = overlay.upper_bound(cursor);
  if (!forward) {
    it = overlay.lower_bound(cursor);
    if (it == overlay.begin()) return nullptr;
    --it;
  }
  if (it == overlay.end() || !std::string_view(it->first).starts_with(prefix)) return nullptr;
  return &*it;
}

absl::StatusOr<NearestEntry> NearestThrough(
    const WriteOverlay& overlay, std::string_view prefix, std::string_view key, bool forward,
    absl::FunctionRef<absl::StatusOr<NearestEntry>(std::string_view cursor)> below) {
  std::string cursor(key);
  while (true) {
    ASSIGN_OR_RETURN(NearestEntry under, below(cursor));
    const WriteOverlay::value_type* written = OverlayNearest(overlay, prefix, cursor, forward);
    if (written == nullptr) return under;
    // A written key at or before the stored one wins (it hides it if equal).
    if (under && (forward ? under->first < written->first : under->first > written->first)) {
      return under;
    }
    if (written->second) return std::make_pair(written->first, *written->second);
    cursor = written->first;  // Deleted: look past it.
  }
}

}  // namespace fieldsync::storage
