// Helpers shared by the storage tests: a fresh temporary directory per test,
// GoogleTest assertions over absl::Status, and a short way to build an
// AppendEntry.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "storage/event_store.h"

namespace fieldsync::storage::test {

inline ::testing::AssertionResult IsOk(const absl::Status& status) {
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << status;
}

template <typename T>
::testing::AssertionResult IsOk(const absl::StatusOr<T>& status_or) {
  return IsOk(status_or.status());
}

#define ASSERT_OK(expr) ASSERT_TRUE(::fieldsync::storage::test::IsOk(expr)) << #expr
#define EXPECT_OK(expr) EXPECT_TRUE(::fieldsync::storage::test::IsOk(expr)) << #expr

// ASSERT_OK_AND_ASSIGN(lhs, expr): asserts that the StatusOr `expr` is OK and
// moves its value into `lhs` (which may be a declaration). Only in functions
// returning void, like every ASSERT_*.
#define FIELDSYNC_TEST_CONCAT_INNER(a, b) a##b
#define FIELDSYNC_TEST_CONCAT(a, b) FIELDSYNC_TEST_CONCAT_INNER(a, b)
#define ASSERT_OK_AND_ASSIGN(lhs, expr)                                                          \
  FIELDSYNC_ASSERT_OK_AND_ASSIGN_IMPL(FIELDSYNC_TEST_CONCAT(fieldsync_statusor_, __LINE__), lhs, \
                                      expr)
#define FIELDSYNC_ASSERT_OK_AND_ASSIGN_IMPL(statusor, lhs, expr)    \
  auto statusor = (expr);                                           \
  ASSERT_TRUE(::fieldsync::storage::test::IsOk(statusor)) << #expr; \
  lhs = std::move(statusor).value()

// A directory made with mkdtemp under testing::TempDir(), removed with its
// contents when the object dies. Not thread-safe; one per test.
class ScopedTempDir {
 public:
  ScopedTempDir() {
    std::string base = ::testing::TempDir();
    if (base.empty() || base.back() != '/') base.push_back('/');
    std::string path = base + "fieldsync_storage_XXXXXX";
    if (mkdtemp(path.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp(" << path << ") failed";
    }
    path_ = std::move(path);
  }
  ~ScopedTempDir() {
    // Best effort: a leftover directory under the temp dir is harmless.
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::string& path() const { return path_; }
  // `name` inside the directory (not created).
  std::string Join(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

inline AppendEntry MakeEntry(std::string event_id, std::string payload, std::string subject = "",
                             std::string area_code = "") {
  AppendEntry entry;
  entry.event_id = std::move(event_id);
  entry.payload = std::move(payload);
  entry.subject = std::move(subject);
  entry.area_code = std::move(area_code);
  return entry;
}

}  // namespace fieldsync::storage::test
