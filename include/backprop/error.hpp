// Errors. Bad outside input (files, CSV cells, flags, shapes at the public API) throws
// backprop::Error with a code and a one-line message that names the file, the place, what was
// expected and what was found. A broken invariant of ours is BACKPROP_ASSERT: always on, it aborts
// with file:line. The library never calls exit(); the CLI maps codes to exit statuses
// (kUsage -> 2, everything else -> 1).
#pragma once

#include <stdexcept>
#include <string>

namespace backprop {

enum class ErrorCode {
  kUsage,        // a flag or argument value that does not parse or is out of range
  kIo,           // open/read/write/fsync/rename failed (message names the syscall and errno)
  kFormat,       // a file's bytes do not follow its format (IDX, gzip, CSV, safetensors)
  kData,         // well-formed data that does not fit the task: counts, shapes, unseen classes
  kModel,        // a model file that is valid safetensors but not a valid backprop model
  kLimit,        // a declared size above a configured cap (--max-input-bytes and friends)
  kNumeric,      // a non-finite loss, gradient or weight
  kInterrupted,  // training stopped on request (a signal) after writing its checkpoint
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

namespace detail {
[[noreturn]] void assert_fail(const char* expr, const char* file, int line) noexcept;
}  // namespace detail

}  // namespace backprop

// Always on, also in Release: a broken invariant of ours must never go on silently.
#define BACKPROP_ASSERT(cond) \
  ((cond) ? static_cast<void>(0) : ::backprop::detail::assert_fail(#cond, __FILE__, __LINE__))

// Hot-loop preconditions: checked in debug and sanitizer builds only.
#ifdef NDEBUG
#define BACKPROP_DASSERT(cond) static_cast<void>(0)
#else
#define BACKPROP_DASSERT(cond) BACKPROP_ASSERT(cond)
#endif
