// Helpers for the command-line tests: run the built backprop binary with posix_spawn (stdout and
// stderr captured to separate files, stdin from /dev/null, killed after a timeout so that a hang
// fails the test instead of blocking it), and writers for the small files the tests make (IDX
// written big-endian byte by byte, CSV text); temporary directories, whole-file reads and writes
// and gzip come from test_util.hpp. Nothing here uses the library's readers, so a test cannot
// agree with a bug by sharing code with it.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

extern char** environ;

namespace backprop::cli_test {

using test::Bytes;
using test::gzip_bytes;
using test::le64;
using test::list_dir;
using test::read_bytes;
using test::read_le64;
using test::TempDir;
using test::write_bytes;

// What a finished (or killed) run of the CLI left behind.
struct RunResult {
  bool timed_out = false;  // killed after RunOptions::timeout
  bool exited = false;     // ended through exit(), not a signal
  int exit_code = -1;      // valid when exited
  int term_signal = 0;     // valid when !exited
  std::string out, err;    // everything written to stdout and stderr

  // For failure messages: how it ended and what it printed.
  std::string describe() const {
    std::string s = timed_out ? "timed out (killed)"
                    : exited  ? "exit " + std::to_string(exit_code)
                              : "killed by signal " + std::to_string(term_signal);
    return s + "\n--- stderr ---\n" + err + "--- stdout ---\n" + out.substr(0, 4000);
  }
};

struct RunOptions {
  // Every command of these tests takes well under a second; a minute means a hang.
  std::chrono::seconds timeout{60};
  // Connect stdout to a pipe whose read end is already closed (`backprop train | head -0`).
  bool stdout_to_closed_pipe = false;
};

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  write_bytes(path, Bytes(text.begin(), text.end()));
}

// Runs `program args...`; captures go to capture_dir/{stdout,stderr}_N. Throws only when the
// process cannot be started at all.
inline RunResult run_process(const std::string& program, const std::vector<std::string>& args,
                             const std::filesystem::path& capture_dir,
                             const RunOptions& options = {}) {
  static int counter = 0;
  const std::string n = std::to_string(counter++);
  const std::string out_path = (capture_dir / ("stdout_" + n)).string();
  const std::string err_path = (capture_dir / ("stderr_" + n)).string();

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  int pipe_write = -1;
  if (options.stdout_to_closed_pipe) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    // Close the read end before the child starts: its first write to stdout must meet EPIPE.
    ::close(fds[0]);
    pipe_write = fds[1];
    posix_spawn_file_actions_adddup2(&actions, pipe_write, 1);
  } else {
    posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
  }
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);

  std::vector<std::string> argv_text = {program};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (pipe_write >= 0) ::close(pipe_write);
  if (rc != 0)
    throw std::runtime_error("posix_spawn " + program + " failed: errno " + std::to_string(rc));

  RunResult r;
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0) throw std::runtime_error("waitpid failed");
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      r.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  r.exited = WIFEXITED(status);
  if (r.exited) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.term_signal = WTERMSIG(status);
  if (!options.stdout_to_closed_pipe) r.out = read_text(out_path);
  r.err = read_text(err_path);
  return r;
}

// ---------------------------------------------------------------------------------------------
// File makers

// Three interleaved noisy spirals in 2-D, plus `noise` uniform features, as CSV with a header
// (x,y,n1..,label): `rows` rows, classes in turn. The draws are made in a fixed order.
inline std::string spirals_csv(unsigned seed, int rows, int noise) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::string text = "x,y";
  for (int k = 1; k <= noise; ++k) text += ",n" + std::to_string(k);
  text += ",label\n";
  char cell[32];
  for (int i = 0; i < rows; ++i) {
    const int cls = i % 3;
    const double t = 0.1 + 3.0 * (i / 3) / (rows / 3.0), a = t * 1.5 + cls * 2.0943951;
    const double x = t * std::cos(a) + 0.05 * u(rng), y = t * std::sin(a) + 0.05 * u(rng);
    std::snprintf(cell, sizeof cell, "%.6f,%.6f", x, y);
    text += cell;
    for (int k = 0; k < noise; ++k) {
      std::snprintf(cell, sizeof cell, ",%.4f", u(rng));
      text += cell;
    }
    text += "," + std::to_string(cls) + "\n";
  }
  return text;
}

inline void put_be32(Bytes& out, std::uint32_t v) {
  for (int k = 3; k >= 0; --k) out.push_back(static_cast<std::uint8_t>(v >> (8 * k)));
}

// An IDX file: 00 00 type ndims, big-endian u32 dims, then `payload` as given.
inline Bytes idx_bytes(std::uint8_t type, const std::vector<std::uint32_t>& dims,
                       const Bytes& payload) {
  Bytes out = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims) put_be32(out, d);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

// Normal deviates from mt19937 (whose output the standard fixes) by Box-Muller, so the data is
// the same with every standard library.
class Gaussian {
 public:
  explicit Gaussian(std::uint32_t seed) : gen_(seed) {}
  double uniform() { return (static_cast<double>(gen_()) + 0.5) / 4294967296.0; }
  double operator()() {
    double u = uniform(), v = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
  std::uint32_t bits() { return static_cast<std::uint32_t>(gen_()); }

 private:
  std::mt19937 gen_;
};

}  // namespace backprop::cli_test
