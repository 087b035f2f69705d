// Helpers for the interoperability tests: where the system Python, the helper scripts, the Python
// module and ONNX Runtime (installed by scripts/setup) are, and running a helper that answers with
// one JSON object on stdout. Processes are started with cli_util.hpp's run_process (captured
// output, a timeout), never through a shell.
//
// The tools are set-up dependencies, like NumPy for tests/reference_test.cpp: when one is missing
// these tests fail and say what to install, rather than skip.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli_util.hpp"

namespace backprop::interop {

using cli_test::read_text;
using cli_test::RunOptions;
using cli_test::RunResult;
using cli_test::TempDir;
using cli_test::write_text;
using nlohmann::json;

inline const std::string kPython = BACKPROP_SYSTEM_PYTHON;
inline const std::string kCli = BACKPROP_CLI;
inline const std::string kSourceDir = BACKPROP_SOURCE_DIR;
inline const std::string kScripts = kSourceDir + "/tests/interop";
inline const std::string kModuleDir = kSourceDir + "/python";
// scripts/setup installs onnxruntime-node here (npm install --prefix .interop, git-ignored).
inline const std::string kOnnxRuntime = kSourceDir + "/.interop/node_modules/onnxruntime-node";

// `name` found on PATH (run_process takes a full path), or "" when it is not there.
inline std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  for (;;) {
    std::size_t colon = dirs.find(':', start);
    std::string dir =
        dirs.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    std::filesystem::path candidate = std::filesystem::path(dir.empty() ? "." : dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    if (colon == std::string::npos) return {};
    start = colon + 1;
  }
}

// Generous: a helper that imports torch takes about a second; a minute means a hang.
inline RunOptions slow() {
  RunOptions o;
  o.timeout = std::chrono::seconds(300);
  return o;
}

// Runs `program args...` in `dir`'s capture area with PYTHONPATH set to python/.
inline RunResult run(const std::string& program, const std::vector<std::string>& args,
                     const TempDir& dir) {
  ::setenv("PYTHONPATH", kModuleDir.c_str(), 1);
  return cli_test::run_process(program, args, dir.path(), slow());
}

// The backprop CLI; the test fails (not aborts) when it does not exit 0.
inline RunResult cli(const std::vector<std::string>& args, const TempDir& dir) {
  RunResult r = run(kCli, args, dir);
  EXPECT_TRUE(r.exited && r.exit_code == 0)
      << "backprop " << (args.empty() ? "" : args[0]) << ": " << r.describe();
  return r;
}

// A helper script under tests/interop run by the system Python; its stdout is one JSON object.
inline json python(const std::string& script, const std::vector<std::string>& args,
                   const TempDir& dir) {
  std::vector<std::string> full = {kScripts + "/" + script};
  full.insert(full.end(), args.begin(), args.end());
  RunResult r = run(kPython, full, dir);
  if (!r.exited || r.exit_code != 0) {
    ADD_FAILURE() << kPython << " " << script
                  << " failed (scripts/setup installs python3-torch, python3-numpy and "
                     "python3-onnx): "
                  << r.describe();
    return json::object();
  }
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) ADD_FAILURE() << script << " printed no JSON object: " << r.describe();
  return j;
}

// Prints a measured figure, so the test log (ctest --output-on-failure -V) records it.
inline void report(const std::string& what, double value) {
  std::printf("[ measured ] %s: %.3e\n", what.c_str(), value);
  std::fflush(stdout);
}

}  // namespace backprop::interop
