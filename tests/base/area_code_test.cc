#include "base/area_code.h"

#include "gtest/gtest.h"

namespace fieldsync::base {
namespace {

TEST(AreaCodeTest, EachLevelOwnsItsLeadingDigits) {
  EXPECT_EQ(SignificantDigits(AreaLevel::kProvince), 2u);
  EXPECT_EQ(SignificantDigits(AreaLevel::kCity), 4u);
  EXPECT_EQ(SignificantDigits(AreaLevel::kCounty), 6u);
  EXPECT_EQ(SignificantDigits(AreaLevel::kTownship), 9u);
  EXPECT_EQ(SignificantDigits(AreaLevel::kVillage), 12u);
}

TEST(AreaCodeTest, ParentDigitsAreTheLevelAbove) {
  EXPECT_EQ(ParentDigits(AreaLevel::kProvince), 0u);
  EXPECT_EQ(ParentDigits(AreaLevel::kCity), 2u);
  EXPECT_EQ(ParentDigits(AreaLevel::kCounty), 4u);
  EXPECT_EQ(ParentDigits(AreaLevel::kTownship), 6u);
  EXPECT_EQ(ParentDigits(AreaLevel::kVillage), 9u);
}

TEST(AreaCodeTest, TheTableIsOrderedAndEndsAtAFullCode) {
  for (size_t i = 1; i < kAreaLevels.size(); ++i) {
    EXPECT_LT(kAreaLevels[i - 1].significant, kAreaLevels[i].significant);
  }
  EXPECT_EQ(kAreaLevels.back().significant, kAreaCodeDigits);
  // The default scope prefixes are the county, township and village levels.
  EXPECT_EQ(kDefaultScopePrefixLengths[0], SignificantDigits(AreaLevel::kCounty));
  EXPECT_EQ(kDefaultScopePrefixLengths[1], SignificantDigits(AreaLevel::kTownship));
  EXPECT_EQ(kDefaultScopePrefixLengths[2], SignificantDigits(AreaLevel::kVillage));
}

TEST(AreaCodeTest, AFullCodeIsTwelveDigits) {
  EXPECT_TRUE(IsAreaCode("620102001001"));
  EXPECT_FALSE(IsAreaCode("62010200100"));
  EXPECT_FALSE(IsAreaCode("6201020010011"));
  EXPECT_FALSE(IsAreaCode("62010200100x"));
  EXPECT_FALSE(IsAreaCode(""));
}

}  // namespace
}  // namespace fieldsync::base
