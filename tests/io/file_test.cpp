// Tests for bounded whole-file reads and atomic writes (src/io/file.cpp): what read_file refuses
// (and that it refuses devices and FIFOs without blocking), and that write_file_atomic replaces a
// file whole or leaves it untouched. The suite runs as root, so failures are provoked with paths
// whose directory is missing or is a file, and with RLIMIT_FSIZE, never with permissions.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "backprop/error.hpp"
#include "backprop/io.hpp"
#include "test_util.hpp"

namespace backprop {
namespace {

namespace fs = std::filesystem;
using namespace backprop::test;

constexpr std::uint64_t kNoLimit = ~std::uint64_t{0};

Bytes pattern(std::size_t n) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 31 + 7);
  return b;
}

// A call that could block forever (a device, a FIFO) gets 10 seconds, then SIGALRM ends the test
// program with a clear cause instead of hanging until the ctest timeout.
class Deadline {
 public:
  Deadline() { ::alarm(10); }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  ~Deadline() { ::alarm(0); }
};

// ---------------------------------------------------------------------------------------------
// read_file

TEST(ReadFile, ReturnsTheWholeContentOfARegularFile) {
  TempDir dir;
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{4096}, std::size_t{1} << 20}) {
    Bytes b = pattern(n);
    write_bytes(dir / "f", b);
    EXPECT_EQ(read_file(dir / "f", kNoLimit), b) << n;
  }
}

TEST(ReadFile, AcceptsAFileExactlyAtTheLimit) {
  TempDir dir;
  write_bytes(dir / "f", pattern(100));
  EXPECT_EQ(read_file(dir / "f", 100).size(), 100u);
}

TEST(ReadFile, RejectsAFileOverTheLimitWithoutReadingIt) {
  TempDir dir;
  write_bytes(dir / "f", pattern(101));
  expect_error([&] { read_file(dir / "f", 100); }, ErrorCode::kLimit,
               {"file is 101 bytes, over the limit of 100"});
}

TEST(ReadFile, RejectsAMissingPathNamingItAndTheErrno) {
  TempDir dir;
  std::string path = dir / "missing";
  expect_error([&] { read_file(path, kNoLimit); }, ErrorCode::kIo,
               {path + ": open failed", "(errno 2)"});
}

TEST(ReadFile, RejectsADirectory) {
  TempDir dir;
  fs::create_directory(dir / "d");
  expect_error([&] { read_file(dir / "d", kNoLimit); }, ErrorCode::kIo,
               {"is a directory, expected a regular file"});
}

TEST(ReadFile, RejectsDevZeroAtOnceAsACharacterDevice) {
  Deadline deadline;
  expect_error([&] { read_file("/dev/zero", kNoLimit); }, ErrorCode::kIo,
               {"/dev/zero: is a character device"});
}

TEST(ReadFile, RejectsAFifoWithoutWaitingForAWriter) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  Deadline deadline;
  expect_error([&] { read_file(dir / "fifo", kNoLimit); }, ErrorCode::kIo, {"is a FIFO"});
}

// ---------------------------------------------------------------------------------------------
// write_file_atomic

TEST(WriteFileAtomic, WritesTheBytesAndLeavesNoTemporary) {
  TempDir dir;
  for (std::size_t n : {std::size_t{0}, std::size_t{3}, std::size_t{1} << 20}) {
    Bytes b = pattern(n);
    write_file_atomic(dir / "out", b);
    EXPECT_EQ(read_bytes(dir / "out"), b) << n;
    EXPECT_EQ(dir.entries(), std::vector<std::string>{"out"});
  }
}

TEST(WriteFileAtomic, ReplacesAnExistingFileWhole) {
  TempDir dir;
  write_bytes(dir / "out", pattern(5000));
  Bytes shorter = {1, 2, 3};
  write_file_atomic(dir / "out", shorter);
  EXPECT_EQ(read_bytes(dir / "out"), shorter);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out"});
}

TEST(WriteFileAtomic, CreatesAnOrdinaryReadableFile) {
  TempDir dir;
  write_file_atomic(dir / "out", pattern(10));
  struct stat st {};
  ASSERT_EQ(::stat((dir / "out").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  // The mode an ordinary open(O_CREAT, 0666) gives: 0666 less the umask.
  mode_t mask = ::umask(0);
  ::umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0666u & ~mask);
}

TEST(WriteFileAtomic, WorksWithARelativePathInTheCurrentDirectory) {
  TempDir dir;
  std::string cwd = fs::current_path();
  fs::current_path(dir / "");
  write_file_atomic("plain", pattern(8));
  fs::current_path(cwd);
  EXPECT_EQ(read_bytes(dir / "plain"), pattern(8));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"plain"});
}

TEST(WriteFileAtomic, FailsWithKIoWhenTheDirectoryDoesNotExist) {
  TempDir dir;
  std::string path = dir / "no/such/dir/out";
  expect_error([&] { write_file_atomic(path, pattern(10)); }, ErrorCode::kIo, {path, "(errno 2)"});
  EXPECT_TRUE(dir.entries().empty());
}

TEST(WriteFileAtomic, FailsWithKIoWhenAParentIsAFile) {
  TempDir dir;
  write_bytes(dir / "file", pattern(10));
  expect_error([&] { write_file_atomic(dir / "file/out", pattern(10)); }, ErrorCode::kIo,
               {"failed: Not a directory"});
  EXPECT_EQ(read_bytes(dir / "file"), pattern(10));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"file"});
}

TEST(WriteFileAtomic, LeavesADirectoryInThePathAloneAndRemovesItsTemporary) {
  TempDir dir;
  fs::create_directory(dir / "target");
  write_bytes(dir / "target/inside", pattern(4));
  expect_error([&] { write_file_atomic(dir / "target", pattern(10)); }, ErrorCode::kIo,
               {"rename failed"});
  EXPECT_TRUE(fs::is_directory(dir / "target"));
  EXPECT_EQ(read_bytes(dir / "target/inside"), pattern(4));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"target"});
}

// Lowers RLIMIT_FSIZE for the scope so that a write past `bytes` fails with EFBIG (SIGXFSZ is
// ignored, else it would kill the process); restores both on exit.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    BACKPROP_ASSERT(::getrlimit(RLIMIT_FSIZE, &saved_) == 0);
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit lower = saved_;
    lower.rlim_cur = bytes;
    BACKPROP_ASSERT(::setrlimit(RLIMIT_FSIZE, &lower) == 0);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  sighandler_t old_handler_;
};

TEST(WriteFileAtomic, AFailedWriteLeavesTheOldFileIntactAndNoTemporary) {
  TempDir dir;
  Bytes old_content = pattern(100);
  write_bytes(dir / "model", old_content);
  {
    FileSizeLimit limit(4096);
    expect_error([&] { write_file_atomic(dir / "model", pattern(1 << 16)); }, ErrorCode::kIo,
                 {"write failed: File too large"});
  }
  EXPECT_EQ(read_bytes(dir / "model"), old_content);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"model"});
}

TEST(WriteFileAtomic, WritesWhatReadFileReadsBack) {
  TempDir dir;
  Bytes b = pattern(12345);
  write_file_atomic(dir / "x", b);
  EXPECT_EQ(read_file(dir / "x", b.size()), b);
}

}  // namespace
}  // namespace backprop
