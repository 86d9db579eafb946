// The two Abseil status macros this project uses (Abseil 20220623 ships none);
// the only copy in the tree, usable from every module.
//
//   RETURN_IF_ERROR(expr);            returns the status of `expr` if it is not OK.
//   ASSIGN_OR_RETURN(lhs, expr);      evaluates the StatusOr `expr`; returns its
//                                     status on error, else moves its value into
//                                     `lhs` (which may be a declaration).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define FIELDSYNC_CONCAT_INNER(a, b) a##b
#define FIELDSYNC_CONCAT(a, b) FIELDSYNC_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                              \
  do {                                                     \
    ::absl::Status fieldsync_status_ = (expr);             \
    if (!fieldsync_status_.ok()) return fieldsync_status_; \
  } while (false)

#define ASSIGN_OR_RETURN(lhs, expr) \
  FIELDSYNC_ASSIGN_OR_RETURN_IMPL(FIELDSYNC_CONCAT(fieldsync_statusor_, __LINE__), lhs, expr)

#define FIELDSYNC_ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                                    \
  if (!statusor.ok()) return std::move(statusor).status();   \
  lhs = std::move(statusor).value()
