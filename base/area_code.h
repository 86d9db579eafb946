// The levels of China's 12-digit administrative-division codes (GB/T 2260
// extended to townships and villages): ONE table of how many leading digits
// each level owns. Province 2, city 4, county 6, township 9, village 12; the
// digits after a level's own are zeros. Groups (村民小组) have longer codes
// under their village and are not in this table.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace fieldsync::base {

enum class AreaLevel { kProvince, kCity, kCounty, kTownship, kVillage };

// The length of a full area code.
inline constexpr size_t kAreaCodeDigits = 12;

struct AreaLevelDigits {
  AreaLevel level;
  size_t significant;  // leading digits that name an area of this level
};

// From the top down; each level's parent is the entry before it.
inline constexpr std::array<AreaLevelDigits, 5> kAreaLevels = {{
    {AreaLevel::kProvince, 2},
    {AreaLevel::kCity, 4},
    {AreaLevel::kCounty, 6},
    {AreaLevel::kTownship, 9},
    {AreaLevel::kVillage, 12},
}};

// The leading digits that name an area of `level` (county 6...).
size_t SignificantDigits(AreaLevel level);

// The significant digits of the level above `level` (0 for a province).
size_t ParentDigits(AreaLevel level);

// The code prefixes that scope data by default: county, township, village.
// (Which ones index the store is a StoreOptions setting; this is its default.)
inline constexpr std::array<size_t, 3> kDefaultScopePrefixLengths = {6, 9, 12};

// True if `code` is a full area code: exactly 12 ASCII digits.
bool IsAreaCode(std::string_view code);

}  // namespace fieldsync::base
