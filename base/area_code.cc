#include "base/area_code.h"

#include "base/text.h"

namespace fieldsync::base {

size_t SignificantDigits(AreaLevel level) {
  for (const AreaLevelDigits& entry : kAreaLevels) {
    if (entry.level == level) return entry.significant;
  }
  return 0;
}

size_t ParentDigits(AreaLevel level) {
  size_t parent = 0;
  for (const AreaLevelDigits& entry : kAreaLevels) {
    if (entry.level == level) return parent;
    parent = entry.significant;
  }
  return 0;
}

bool IsAreaCode(std::string_view code) { return code.size() == kAreaCodeDigits && IsDigits(code); }

}  // namespace fieldsync::base
