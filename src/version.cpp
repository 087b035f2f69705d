#include "backprop/version.hpp"

namespace backprop {
std::string_view version() {
  return BACKPROP_VERSION;
}
}  // namespace backprop
