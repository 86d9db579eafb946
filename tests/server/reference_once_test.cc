// Issue 8: areas, units and users have one record each, the domain's
// (domain/reference.h): the server keeps no copy (only devices and identity
// secrets under its own keys), AdminService lists and checks against the
// domain's records, and a Pull snapshot names the areas its households live
// in (Snapshot.areas).
//
// The world: tests/server/sync_world.h.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "domain/domain_keys.h"
#include "gtest/gtest.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

class ReferenceOnceTest : public SyncWorld {
 protected:
  // Every projection key under `prefix`.
  std::vector<std::string> Keys(const std::string& prefix) {
    std::vector<std::string> keys;
    std::string after;
    while (true) {
      auto batch = harness().store().ScanProjections(prefix, after, 1000);
      EXPECT_TRUE(batch.ok()) << batch.status();
      if (!batch.ok()) return keys;
      for (const auto& [key, value] : *batch) keys.push_back(key);
      if (batch->size() < 1000) return keys;
      after = batch->back().first;
    }
  }

  std::vector<std::string> ListUserNames() {
    v1::ListUsersRequest request;
    v1::ListUsersResponse response;
    auto context = ServiceHarness::Context(admin_token());
    grpc::Status status = admin().ListUsers(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> names;
    for (const v1::User& user : response.users()) names.push_back(user.name());
    return names;
  }
};

TEST_F(ReferenceOnceTest, TheServerKeepsNoCopyOfAreasUnitsOrUsersOnlyDevices) {
  for (const std::string& key : Keys("dir/")) {
    EXPECT_TRUE(key.starts_with("dir/device")) << "a server copy of reference data: " << key;
  }
  EXPECT_FALSE(Keys("dom/user/cadre1").empty());
  EXPECT_FALSE(Keys("dom/unit/U1").empty());
  EXPECT_FALSE(Keys("dom/area/620102001001").empty());
}

TEST_F(ReferenceOnceTest, ARenamedUserIsListedOnceUnderItsNewName) {
  std::vector<std::string> before = ListUserNames();
  ASSERT_NE(std::find(before.begin(), before.end(), "cadre1"), before.end());
  v1::User user;
  user.set_id("cadre1");
  user.set_name("zz-renamed");
  user.set_role(v1::ROLE_CADRE);
  user.set_rank(v1::CADRE_RANK_OTHER);
  user.set_unit_id("U1");
  ASSERT_TRUE(UpsertUser(*harness().channel(), admin_token(), user).ok());
  std::vector<std::string> after = ListUserNames();
  EXPECT_EQ(after.size(), before.size());
  EXPECT_EQ(std::find(after.begin(), after.end(), "cadre1"), after.end());
  ASSERT_FALSE(after.empty());
  EXPECT_EQ(after.back(), "zz-renamed") << "the name order moved";
  // The renamed cadre keeps their links and scope: the record is one.
  std::set<std::string> households;
  for (const v1::PullResponse& page : PullAll(phone().token(), {})) {
    for (const v1::Household& household : page.snapshot().households()) {
      households.insert(household.id());
    }
  }
  EXPECT_EQ(households, (std::set<std::string>{kH1}));
}

TEST_F(ReferenceOnceTest, AFirstSyncNamesTheAreasOfItsHouseholdsOnce) {
  std::vector<std::string> codes;
  std::map<std::string, std::string> names;
  for (const v1::PullResponse& page : PullAll(tablet().token(), {})) {
    for (const v1::Area& area : page.snapshot().areas()) {
      codes.push_back(area.code());
      names[area.code()] = area.name();
    }
  }
  // The township's households live in 一村 (kH1, kH2) and 二村 (kH3); each
  // area is named once, with its township, county, city and province.
  std::multiset<std::string> counted(codes.begin(), codes.end());
  for (const std::string& code : counted) EXPECT_EQ(counted.count(code), 1u) << code;
  EXPECT_EQ(names[kV1], "一村");
  EXPECT_EQ(names[kV2], "二村");
  EXPECT_EQ(names["620102001000"], "甲乡");
  EXPECT_EQ(names["620102000000"], "城关区");
  EXPECT_EQ(names.count(kV4), 0u) << "another county's village is not in this scope";
}

}  // namespace
}  // namespace fieldsync::testing
