// Issue 9 point 11: a Pull cursor this server never issued (invented, or a real one mangled)
// resets with RESET_REASON_UNKNOWN_CURSOR; a cursor it did issue, whose scope changed in a
// way it cannot follow incrementally, keeps RESET_REASON_SCOPE_CHANGED. Over real gRPC.
#include <string>

#include "gtest/gtest.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

class UnknownCursorTest : public SyncWorld {
 protected:
  v1::PullResponse PullWith(const std::string& token, const v1::Checkpoint& cursor) {
    v1::PullRequest request;
    *request.mutable_cursor() = cursor;
    v1::PullResponse response;
    grpc::Status status = Pull(token, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
  // The cadre's cursor after a full first sync.
  v1::Checkpoint SyncedCursor() {
    std::vector<v1::PullResponse> pages = PullAll(phone().token(), v1::Checkpoint());
    EXPECT_FALSE(pages.empty());
    return pages.empty() ? v1::Checkpoint() : pages.back().checkpoint();
  }
};

TEST_F(UnknownCursorTest, AnInventedCursorIsUnknownNotAScopeChange) {
  v1::Checkpoint invented;
  invented.set_offset(Head());
  invented.set_scope_digest(std::string("0123456789abcdef0123456789abcdef"));
  const v1::PullResponse response = PullWith(phone().token(), invented);
  ASSERT_TRUE(response.has_reset());
  EXPECT_EQ(response.reset().reason(), v1::RESET_REASON_UNKNOWN_CURSOR);
}

TEST_F(UnknownCursorTest, AMangledRealCursorIsUnknown) {
  v1::Checkpoint cursor = SyncedCursor();
  std::string digest = cursor.scope_digest();
  ASSERT_EQ(digest.size(), 32u);
  digest[5] = static_cast<char>(digest[5] ^ 0x40);
  cursor.set_scope_digest(digest);
  const v1::PullResponse response = PullWith(phone().token(), cursor);
  ASSERT_TRUE(response.has_reset());
  EXPECT_EQ(response.reset().reason(), v1::RESET_REASON_UNKNOWN_CURSOR);
}

TEST_F(UnknownCursorTest, ARealCursorContinuesWithoutAReset) {
  const v1::PullResponse response = PullWith(phone().token(), SyncedCursor());
  EXPECT_FALSE(response.has_reset()) << response.reset().ShortDebugString();
}

TEST_F(UnknownCursorTest, ARealCursorAfterAScopeChangeTheServerCannotFollowIsScopeChanged) {
  const v1::Checkpoint cursor = SyncedCursor();
  // The cadre's link ends (kH1 leaves the scope) and the server restarts, forgetting the
  // scopes it served: the change cannot be computed, only a snapshot helps.
  ASSERT_TRUE(EndLink("L-h1").ok());
  Restart();
  const v1::PullResponse response = PullWith(phone().token(), cursor);
  ASSERT_TRUE(response.has_reset());
  EXPECT_EQ(response.reset().reason(), v1::RESET_REASON_SCOPE_CHANGED);
}

TEST_F(UnknownCursorTest, ARealCursorSurvivesARestartWhenTheScopeIsTheSame) {
  const v1::Checkpoint cursor = SyncedCursor();
  Restart();
  const v1::PullResponse response = PullWith(phone().token(), cursor);
  EXPECT_FALSE(response.has_reset()) << response.reset().ShortDebugString();
}

}  // namespace
}  // namespace fieldsync::testing
