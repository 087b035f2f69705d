// Tests for bounded whole-file reads and atomic writes (src/io/file.cpp): what read_file refuses
// (and that it refuses devices and FIFOs without blocking), and that write_file_atomic replaces a
// file whole or leaves it untouched. The suite runs as root, so failures are provoked with paths
// whose directory is missing or is a file, and with RLIMIT_FSIZE, never with permissions.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "backprop/error.hpp"
#include "backprop/io.hpp"

namespace backprop {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

constexpr std::uint64_t kNoLimit = ~std::uint64_t{0};

// A fresh directory, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "backprop_file_test.XXXXXX").string();
    BACKPROP_ASSERT(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  // Every entry in the directory, by name.
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  fs::path path_;
};

Bytes pattern(std::size_t n) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 31 + 7);
  return b;
}

void put(const std::string& path, const Bytes& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  BACKPROP_ASSERT(f.good());
}

Bytes get(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Fails with `code` and a message containing `part`.
void expect_error(const std::function<void()>& run, ErrorCode code, const std::string& part) {
  try {
    run();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
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
    put(dir / "f", b);
    EXPECT_EQ(read_file(dir / "f", kNoLimit), b) << n;
  }
}

TEST(ReadFile, AcceptsAFileExactlyAtTheLimit) {
  TempDir dir;
  put(dir / "f", pattern(100));
  EXPECT_EQ(read_file(dir / "f", 100).size(), 100u);
}

TEST(ReadFile, RejectsAFileOverTheLimitWithoutReadingIt) {
  TempDir dir;
  put(dir / "f", pattern(101));
  expect_error([&] { read_file(dir / "f", 100); }, ErrorCode::kLimit,
               "file is 101 bytes, over the limit of 100");
}

TEST(ReadFile, RejectsAMissingPathNamingItAndTheErrno) {
  TempDir dir;
  std::string path = dir / "missing";
  expect_error([&] { read_file(path, kNoLimit); }, ErrorCode::kIo, path + ": open failed");
  expect_error([&] { read_file(path, kNoLimit); }, ErrorCode::kIo, "(errno 2)");
}

TEST(ReadFile, RejectsADirectory) {
  TempDir dir;
  fs::create_directory(dir / "d");
  expect_error([&] { read_file(dir / "d", kNoLimit); }, ErrorCode::kIo,
               "is a directory, expected a regular file");
}

TEST(ReadFile, RejectsDevZeroAtOnceAsACharacterDevice) {
  Deadline deadline;
  expect_error([&] { read_file("/dev/zero", kNoLimit); }, ErrorCode::kIo,
               "/dev/zero: is a character device");
}

TEST(ReadFile, RejectsAFifoWithoutWaitingForAWriter) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  Deadline deadline;
  expect_error([&] { read_file(dir / "fifo", kNoLimit); }, ErrorCode::kIo, "is a FIFO");
}

// ---------------------------------------------------------------------------------------------
// write_file_atomic

TEST(WriteFileAtomic, WritesTheBytesAndLeavesNoTemporary) {
  TempDir dir;
  for (std::size_t n : {std::size_t{0}, std::size_t{3}, std::size_t{1} << 20}) {
    Bytes b = pattern(n);
    write_file_atomic(dir / "out", b);
    EXPECT_EQ(get(dir / "out"), b) << n;
    EXPECT_EQ(dir.entries(), std::vector<std::string>{"out"});
  }
}

TEST(WriteFileAtomic, ReplacesAnExistingFileWhole) {
  TempDir dir;
  put(dir / "out", pattern(5000));
  Bytes shorter = {1, 2, 3};
  write_file_atomic(dir / "out", shorter);
  EXPECT_EQ(get(dir / "out"), shorter);
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
  EXPECT_EQ(get(dir / "plain"), pattern(8));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"plain"});
}

TEST(WriteFileAtomic, FailsWithKIoWhenTheDirectoryDoesNotExist) {
  TempDir dir;
  std::string path = dir / "no/such/dir/out";
  expect_error([&] { write_file_atomic(path, pattern(10)); }, ErrorCode::kIo, path);
  expect_error([&] { write_file_atomic(path, pattern(10)); }, ErrorCode::kIo, "(errno 2)");
  EXPECT_TRUE(dir.entries().empty());
}

TEST(WriteFileAtomic, FailsWithKIoWhenAParentIsAFile) {
  TempDir dir;
  put(dir / "file", pattern(10));
  expect_error([&] { write_file_atomic(dir / "file/out", pattern(10)); }, ErrorCode::kIo,
               "failed: Not a directory");
  EXPECT_EQ(get(dir / "file"), pattern(10));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"file"});
}

TEST(WriteFileAtomic, LeavesADirectoryInThePathAloneAndRemovesItsTemporary) {
  TempDir dir;
  fs::create_directory(dir / "target");
  put(dir / "target/inside", pattern(4));
  expect_error([&] { write_file_atomic(dir / "target", pattern(10)); }, ErrorCode::kIo,
               "rename failed");
  EXPECT_TRUE(fs::is_directory(dir / "target"));
  EXPECT_EQ(get(dir / "target/inside"), pattern(4));
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
  put(dir / "model", old_content);
  {
    FileSizeLimit limit(4096);
    expect_error([&] { write_file_atomic(dir / "model", pattern(1 << 16)); }, ErrorCode::kIo,
                 "write failed: File too large");
  }
  EXPECT_EQ(get(dir / "model"), old_content);
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
