#include "backprop/error.hpp"

#include <cstdio>
#include <cstdlib>

namespace backprop::detail {

void assert_fail(const char* expr, const char* file, int line) noexcept {
  std::fprintf(stderr, "backprop: internal error: assertion '%s' failed at %s:%d\n", expr, file,
               line);
  std::abort();
}

}  // namespace backprop::detail
