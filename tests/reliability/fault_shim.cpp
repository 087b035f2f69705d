// An LD_PRELOAD library for the fault-injection tests (RELIABILITY.md B.3): it wraps write,
// fsync, close, rename and read, and fails or slows them as the environment says. Only the
// calls that matter are touched: writes, fsyncs and closes on temporary files (a path holding
// ".tmp.", as write_file_atomic names them), the fsync of a directory, the rename of a temporary,
// and reads of regular files; everything else goes straight to libc.
//
//   BACKPROP_FAULT=CALL:ERRNO:N   the N-th (1-based) matching CALL fails with ERRNO, where CALL is
//                                 write, fsync, close, rename or fsync_dir and ERRNO is ENOSPC,
//                                 EIO, EDQUOT or EROFS. close really closes the fd first (as
//                                 Linux does when close reports an error).
//   BACKPROP_FAULT_SLOW_WRITE=US  writes to a temporary take at most 64 KiB per call and sleep US
//                                 microseconds first, so that a save lasts long enough to be
//                                 killed in the middle.
//   BACKPROP_FAULT_READ=short     reads of regular files return at most 7 bytes, and every 5th
//                                 call fails with EINTR first (short reads must change nothing).
//   BACKPROP_FAULT_READ=shrink:N  reads of regular files see end of file after N bytes in all (a
//                                 file that shrinks while it is read).
#include <dlfcn.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

struct Config {
  char call[16] = "";
  int err = 0;
  long nth = 0;
  long slow_write_us = 0;
  bool short_reads = false;
  long shrink_after = -1;
};

int errno_named(const char* name) {
  if (std::strcmp(name, "ENOSPC") == 0) return ENOSPC;
  if (std::strcmp(name, "EIO") == 0) return EIO;
  if (std::strcmp(name, "EDQUOT") == 0) return EDQUOT;
  if (std::strcmp(name, "EROFS") == 0) return EROFS;
  return EIO;
}

const Config& config() {
  static const Config c = [] {
    Config k;
    if (const char* f = std::getenv("BACKPROP_FAULT")) {
      char err[16] = "";
      // CALL:ERRNO:N
      if (std::sscanf(f, "%15[^:]:%15[^:]:%ld", k.call, err, &k.nth) == 3) {
        k.err = errno_named(err);
      } else {
        k.call[0] = '\0';
      }
    }
    if (const char* s = std::getenv("BACKPROP_FAULT_SLOW_WRITE")) k.slow_write_us = std::atol(s);
    if (const char* r = std::getenv("BACKPROP_FAULT_READ")) {
      if (std::strcmp(r, "short") == 0) k.short_reads = true;
      if (std::strncmp(r, "shrink:", 7) == 0) k.shrink_after = std::atol(r + 7);
    }
    return k;
  }();
  return c;
}

template <class F>
F real(const char* name) {
  return reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
}

bool path_of(int fd, char* buf, std::size_t size) {
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = ::readlink(link, buf, size - 1);
  if (n < 0) return false;
  buf[n] = '\0';
  return true;
}

bool is_temporary(int fd) {
  char path[4096];
  return path_of(fd, path, sizeof path) && std::strstr(path, ".tmp.") != nullptr;
}

bool is_kind(int fd, mode_t kind) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == kind;
}

// True when this call is the one to fail (counting only calls that match `call`).
bool should_fail(const char* call) {
  static std::atomic<long> count{0};
  const Config& c = config();
  if (c.call[0] == '\0' || std::strcmp(c.call, call) != 0) return false;
  return ++count == c.nth;
}

}  // namespace

extern "C" {

ssize_t write(int fd, const void* buf, size_t n) {
  static auto next = real<ssize_t (*)(int, const void*, size_t)>("write");
  if (fd > 2 && is_temporary(fd)) {
    if (should_fail("write")) {
      errno = config().err;
      return -1;
    }
    if (config().slow_write_us > 0) {
      ::usleep(static_cast<useconds_t>(config().slow_write_us));
      n = std::min<size_t>(n, 64 << 10);
    }
  }
  return next(fd, buf, n);
}

int fsync(int fd) {
  static auto next = real<int (*)(int)>("fsync");
  const bool dir = is_kind(fd, S_IFDIR);
  if ((dir && should_fail("fsync_dir")) || (!dir && is_temporary(fd) && should_fail("fsync"))) {
    errno = config().err;
    return -1;
  }
  return next(fd);
}

int close(int fd) {
  static auto next = real<int (*)(int)>("close");
  if (fd > 2 && config().call[0] != '\0' && is_temporary(fd) && should_fail("close")) {
    next(fd);
    errno = config().err;
    return -1;
  }
  return next(fd);
}

int rename(const char* from, const char* to) {
  static auto next = real<int (*)(const char*, const char*)>("rename");
  if (std::strstr(from, ".tmp.") != nullptr && should_fail("rename")) {
    errno = config().err;
    return -1;
  }
  return next(from, to);
}

ssize_t read(int fd, void* buf, size_t n) {
  static auto next = real<ssize_t (*)(int, void*, size_t)>("read");
  const Config& c = config();
  if ((c.short_reads || c.shrink_after >= 0) && is_kind(fd, S_IFREG)) {
    if (c.short_reads) {
      static std::atomic<long> calls{0};
      if (++calls % 5 == 0) {
        errno = EINTR;
        return -1;
      }
      return next(fd, buf, std::min<size_t>(n, 7));
    }
    static std::atomic<long> total{0};
    const long left = c.shrink_after - total.load();
    if (left <= 0) return 0;
    const ssize_t got = next(fd, buf, std::min<size_t>(n, static_cast<size_t>(left)));
    if (got > 0) total += got;
    return got;
  }
  return next(fd, buf, n);
}

}  // extern "C"
