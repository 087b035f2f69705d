// Running the CLI as a child the test controls: started with extra environment (the fault shim
// through LD_PRELOAD), signalled at a chosen moment, and reaped with wait4, which also gives the
// child's peak resident memory. stdout and stderr go to files; stdin is /dev/null.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli_util.hpp"

namespace backprop::reliability_test {

struct Ended {
  bool timed_out = false;
  bool exited = false;
  int exit_code = -1;   // when exited
  int term_signal = 0;  // when killed by a signal
  long max_rss_kib = 0;
  std::string out, err;

  std::string describe() const {
    std::string s = timed_out ? "timed out"
                    : exited  ? "exit " + std::to_string(exit_code)
                              : "signal " + std::to_string(term_signal);
    return s + "\n--- stderr ---\n" + err + "--- stdout ---\n" + out.substr(0, 2000);
  }
};

class Child {
 public:
  // Starts `program args...` with `extra_env` ("NAME=value") added to this process's environment.
  // With LD_PRELOAD among them, ASan is told not to insist on coming first in the library list.
  Child(const std::string& program, const std::vector<std::string>& args,
        const std::vector<std::string>& extra_env, const std::filesystem::path& capture_dir) {
    static int counter = 0;
    const std::string n = std::to_string(counter++);
    out_path_ = (capture_dir / ("child_out_" + n)).string();
    err_path_ = (capture_dir / ("child_err_" + n)).string();

    std::vector<std::string> env;
    bool preload = false;
    for (const std::string& e : extra_env) preload = preload || e.rfind("LD_PRELOAD=", 0) == 0;
    bool asan_seen = false;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string entry = *e;
      if (preload && entry.rfind("ASAN_OPTIONS=", 0) == 0) {
        entry += ":verify_asan_link_order=0";
        asan_seen = true;
      }
      env.push_back(entry);
    }
    if (preload && !asan_seen) env.push_back("ASAN_OPTIONS=verify_asan_link_order=0");
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> envp;
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);

    std::vector<std::string> argv_text = {program};
    argv_text.insert(argv_text.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_text) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    // Default dispositions and no blocked signals, whatever the test runner set: SIGINT must
    // interrupt the child even when ctest or a shell ignores it.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    const int rc = ::posix_spawn(&pid_, program.c_str(), &actions, &attr, argv.data(), envp.data());
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("posix_spawn failed: " + std::string(std::strerror(rc)));
    start_ = std::chrono::steady_clock::now();
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  void signal(int sig) const { ::kill(pid_, sig); }

  // True once the child has ended (then wait() returns at once).
  bool done() {
    if (reaped_) return true;
    int status = 0;
    rusage ru{};
    const pid_t w = ::wait4(pid_, &status, WNOHANG, &ru);
    if (w == pid_) record(status, ru);
    return reaped_;
  }

  // What the child has written to stdout so far.
  std::string out_so_far() const { return cli_test::read_text(out_path_); }

  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

  Ended wait(std::chrono::seconds timeout = std::chrono::seconds(120)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        rusage ru{};
        ::wait4(pid_, &status, 0, &ru);
        record(status, ru);
        ended_.timed_out = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    ended_.out = cli_test::read_text(out_path_);
    ended_.err = cli_test::read_text(err_path_);
    return ended_;
  }

 private:
  void record(int status, const rusage& ru) {
    reaped_ = true;
    ended_.exited = WIFEXITED(status);
    if (ended_.exited) ended_.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) ended_.term_signal = WTERMSIG(status);
    ended_.max_rss_kib = ru.ru_maxrss;
  }

  pid_t pid_ = -1;
  bool reaped_ = false;
  Ended ended_;
  std::string out_path_, err_path_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace backprop::reliability_test
