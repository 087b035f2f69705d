// Bounded whole-file reads and atomic writes (io.hpp).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "backprop/error.hpp"
#include "backprop/io.hpp"

namespace backprop {

namespace {

[[noreturn]] void throw_errno(const std::string& path, const char* syscall, int err) {
  throw Error(ErrorCode::kIo, path + ": " + syscall + " failed: " + std::strerror(err) +
                                  " (errno " + std::to_string(err) + ")");
}

// Closes on scope exit unless released; close errors on the read path carry no information.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

std::string file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

mode_t current_umask() {
  // umask can only be read by setting it; put it straight back.
  mode_t mask = ::umask(0);
  ::umask(mask);
  return mask;
}

std::string directory_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

namespace {

// An open regular file of at most max_bytes (read_file's checks), and its size.
Fd open_regular(const std::string& path, std::uint64_t max_bytes, std::uint64_t& size) {
  // O_NONBLOCK so that opening a FIFO with no writer cannot block; it is rejected just below.
  int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (raw < 0) throw_errno(path, "open", errno);
  Fd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw_errno(path, "fstat", errno);
  if (!S_ISREG(st.st_mode)) {
    throw Error(ErrorCode::kIo,
                path + ": is " + file_kind(st.st_mode) + ", expected a regular file");
  }
  size = static_cast<std::uint64_t>(st.st_size);
  if (size > max_bytes) {
    throw Error(ErrorCode::kLimit, path + ": file is " + std::to_string(size) +
                                       " bytes, over the limit of " + std::to_string(max_bytes) +
                                       " (--max-input-bytes)");
  }
  return fd;
}

// Exactly bytes.size() bytes from `offset`; a file that ends first has shrunk since its fstat.
// (read(2), not pread: the fault-injection tests interpose read.)
void read_exactly(const Fd& fd, const std::string& path, std::uint64_t offset,
                  std::span<std::uint8_t> bytes, std::uint64_t size) {
  if (offset != 0 && ::lseek(fd.get(), static_cast<off_t>(offset), SEEK_SET) < 0) {
    throw_errno(path, "lseek", errno);
  }
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t got = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw_errno(path, "read", errno);
    }
    if (got == 0) {
      throw Error(ErrorCode::kIo, path + ": file shrank while being read: expected " +
                                      std::to_string(size) + " bytes, got " +
                                      std::to_string(offset + done));
    }
    done += static_cast<std::size_t>(got);
  }
}

}  // namespace

std::vector<std::uint8_t> read_file(const std::string& path, std::uint64_t max_bytes) {
  std::uint64_t size = 0;
  Fd fd = open_regular(path, max_bytes, size);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  read_exactly(fd, path, 0, bytes, size);
  return bytes;
}

FileSlice read_file_slice(const std::string& path, std::uint64_t offset, std::uint64_t length,
                          std::uint64_t max_bytes) {
  FileSlice out;
  Fd fd = open_regular(path, max_bytes, out.file_size);
  const std::uint64_t end =
      offset >= out.file_size ? offset : std::min(out.file_size, offset + length);
  out.bytes.resize(static_cast<std::size_t>(end - offset));
  read_exactly(fd, path, offset, out.bytes, out.file_size);
  return out;
}

std::vector<std::uint8_t> read_file_part(const std::string& path, std::uint64_t offset,
                                         std::uint64_t length, std::uint64_t file_size,
                                         std::uint64_t max_bytes) {
  FileSlice part = read_file_slice(path, offset, length, max_bytes);
  if (part.bytes.size() != length || part.file_size != file_size) {
    throw Error(ErrorCode::kIo, path + ": the file changed while being read (" +
                                    std::to_string(file_size) + " bytes, then " +
                                    std::to_string(part.file_size) + ")");
  }
  return std::move(part.bytes);
}

void write_file_atomic(const std::string& path, std::span<const std::uint8_t> bytes) {
  std::string tmpl = path + ".tmp.XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int raw = ::mkostemp(name.data(), O_CLOEXEC);
  if (raw < 0) throw_errno(path, "mkostemp", errno);
  std::string tmp(name.data());
  Fd fd(raw);
  auto fail = [&](const char* syscall, int err) {
    if (fd.get() >= 0) ::close(fd.release());
    ::unlink(tmp.c_str());
    throw_errno(path, syscall, err);
  };
  // mkostemp creates 0600; give the file the mode an ordinary open(O_CREAT, 0666) would.
  if (::fchmod(fd.get(), 0666 & ~current_umask()) != 0) fail("fchmod", errno);
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t put = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (put < 0) {
      if (errno == EINTR) continue;
      fail("write", errno);
    }
    done += static_cast<std::size_t>(put);
  }
  // One fsync, never retried: after a failed fsync the page cache state is unknown (fsyncgate).
  if (::fsync(fd.get()) != 0) fail("fsync", errno);
  if (::close(fd.release()) != 0) fail("close", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename", errno);
  // The rename is durable only once the directory entry is on disk.
  // A failure here comes after the rename: the new file is in place, but not known to be durable.
  std::string dir = directory_of(path);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) throw_errno(path, ("open of directory " + dir).c_str(), errno);
  Fd dir_fd(dfd);
  if (::fsync(dir_fd.get()) != 0) throw_errno(path, ("fsync of directory " + dir).c_str(), errno);
}

}  // namespace backprop
