// The library version, as written into model files.
#pragma once

#include <string_view>

namespace backprop {
std::string_view version();
}  // namespace backprop
