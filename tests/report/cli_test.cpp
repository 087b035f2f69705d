// backprop report and train --report on bad input: each refusal is one line naming the flag or
// the file (and the line of a bad log), exit 2 for usage and 1 for bad files, and no output file
// is left behind; a good invocation writes the file atomically. The pages themselves are checked
// in a browser by tests/report/browser_test.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "cli/cli_util.hpp"

namespace backprop::cli_test {
namespace {

const std::string kCli = BACKPROP_CLI;

RunResult run(const std::vector<std::string>& args, const TempDir& dir) {
  return run_process(kCli, args, dir.path());
}

// Exit `code`, one line on stderr holding every part, and `output` not written.
void expect_refused(const RunResult& r, int code, const std::vector<std::string>& parts,
                    const std::string& output) {
  ASSERT_TRUE(r.exited) << r.describe();
  EXPECT_EQ(r.exit_code, code) << r.describe();
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  for (const std::string& p : parts) EXPECT_NE(r.err.find(p), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(output)) << output;
}

const std::string kLine =
    "{\"epoch\":1,\"train_loss\":0.5,\"train_accuracy\":0.8,\"learning_rate\":0.1,"
    "\"layers\":[{\"layer\":1,\"weight_norm\":1,\"grad_norm\":0.1}]}\n";

TEST(ReportCli, WritesAReportFromALogAlone) {
  TempDir dir;
  write_text(dir / "run.jsonl", kLine);
  RunResult r = run({"report", "--log", dir / "run.jsonl", "--output", dir / "r.html"}, dir);
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.describe();
  const std::string html = read_text(dir / "r.html");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("Training accuracy 80.00% (running) after 1 epoch"), std::string::npos);
  EXPECT_NE(html.find("Copyright (c) 2022 Leon Sorokin"), std::string::npos) << "uPlot licence";
  // No temporary file is left beside it.
  for (const std::string& name : dir.entries()) {
    EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
  }
}

TEST(ReportCli, RefusesBadFlagsAndFilesWithOneLineAndNoOutput) {
  TempDir dir;
  write_text(dir / "run.jsonl", kLine);
  write_text(dir / "bad.jsonl", kLine + "{\"epoch\":2,\"train_loss\":\"high\"}\n");
  const std::string out = dir / "r.html";
  expect_refused(run({"report", "--output", out}, dir), 2, {"--log"}, out);
  expect_refused(run({"report", "--log", dir / "missing.jsonl", "--output", out}, dir), 1,
                 {"missing.jsonl"}, out);
  expect_refused(run({"report", "--log", dir / "bad.jsonl", "--output", out}, dir), 1,
                 {"bad.jsonl:2:", "\"train_loss\" is not a number"}, out);
  expect_refused(run({"report", "--log", dir / "run.jsonl", "--output", dir / "no/r.html"}, dir), 2,
                 {"--output", "does not exist"}, dir / "no/r.html");
  expect_refused(run({"report", "--log", dir / "run.jsonl", "--output", dir / "run.jsonl"}, dir), 2,
                 {"--output", "is also an input file"}, out);
  expect_refused(
      run({"report", "--log", dir / "run.jsonl", "--data", dir.path().string(), "--output", out},
          dir),
      2, {"--data and --test need --model"}, out);
  expect_refused(run({"report", "--log", dir / "run.jsonl", "--model", dir / "none.safetensors",
                      "--output", out},
                     dir),
                 1, {"none.safetensors"}, out);
  // train checks --report before reading any data.
  expect_refused(run({"train", "--train", dir / "absent.csv", "--report", dir / "no/r.html"}, dir),
                 2, {"--report", "does not exist"}, dir / "no/r.html");
  expect_refused(run({"train", "--train", dir / "absent.csv", "--log", out, "--report", out}, dir),
                 2, {"--report names the same file"}, out);
}

}  // namespace
}  // namespace backprop::cli_test
