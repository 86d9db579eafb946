#include "base/status_macros.h"

#include <string>

#include "gtest/gtest.h"

namespace fieldsync::base {
namespace {

absl::StatusOr<int> Half(int n) {
  if (n % 2 != 0) return absl::InvalidArgumentError("odd");
  return n / 2;
}

absl::StatusOr<int> Quarter(int n) {
  ASSIGN_OR_RETURN(int half, Half(n));
  ASSIGN_OR_RETURN(int quarter, Half(half));  // two on one scope: unique temporaries
  return quarter;
}

absl::Status Check(int n, int* calls) {
  RETURN_IF_ERROR(Half(n).status());
  ++*calls;
  return absl::OkStatus();
}

TEST(StatusMacrosTest, AssignOrReturnPassesValuesAndErrors) {
  EXPECT_EQ(Quarter(8).value(), 2);
  EXPECT_EQ(Quarter(6).status().message(), "odd");
  EXPECT_EQ(Quarter(7).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(StatusMacrosTest, ReturnIfErrorStopsAtTheFirstError) {
  int calls = 0;
  EXPECT_TRUE(Check(2, &calls).ok());
  EXPECT_EQ(Check(3, &calls).message(), "odd");
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace fieldsync::base
