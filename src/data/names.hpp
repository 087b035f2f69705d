// Names the loaders give columns that have none in the file.
#pragma once

#include <string>

namespace backprop::detail {

// "x0", "x1", ...: feature j of data without a header (IDX pixels, headerless CSV).
inline std::string default_feature_name(std::size_t j) {
  // Appended rather than "x" + to_string(j), on which GCC 12 warns falsely (-Wrestrict) at -O3.
  std::string name = "x";
  name += std::to_string(j);
  return name;
}

}  // namespace backprop::detail
