// Status propagation for the client SDK and fieldctl (clients link neither
// storage/ nor server/, whose macros these mirror).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define FS_CLIENT_CONCAT_INNER(a, b) a##b
#define FS_CLIENT_CONCAT(a, b) FS_CLIENT_CONCAT_INNER(a, b)

// Returns the status of `expr` from the calling function unless it is OK.
#define CLIENT_RETURN_IF_ERROR(expr)                       \
  do {                                                     \
    ::absl::Status fs_client_status_ = (expr);             \
    if (!fs_client_status_.ok()) return fs_client_status_; \
  } while (0)

// Declares `lhs` from a StatusOr `expr`, or returns its error status.
#define CLIENT_ASSIGN_OR_RETURN(lhs, expr) \
  CLIENT_ASSIGN_OR_RETURN_IMPL(FS_CLIENT_CONCAT(fs_client_or_, __LINE__), lhs, expr)
#define CLIENT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(*tmp)
