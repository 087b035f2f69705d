// docs/interop.md's examples run as they are: every python, sh and js block of the page, in order,
// in one folder holding the inputs the page names (tests/interop/docs_examples.py), with the CLI
// built here, Debian's torch, NumPy and onnx, and the onnxruntime-node that scripts/setup installs.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>

#include "interop/interop_util.hpp"

namespace backprop {
namespace {

using interop::json;

TEST(InteropDocs, EveryExampleRunsAsItIs) {
  const std::string node = interop::find_program("node");
  ASSERT_FALSE(node.empty()) << "node is not on PATH (scripts/setup installs nodejs)";
  ASSERT_TRUE(std::filesystem::exists(interop::kOnnxRuntime + "/package.json"))
      << interop::kOnnxRuntime << " is missing: run scripts/setup (it installs onnxruntime-node)";
  interop::TempDir dir;
  json out = interop::python("docs_examples.py",
                             {interop::kSourceDir + "/docs/interop.md", dir.path().string(),
                              interop::kCli, interop::kSourceDir + "/.interop/node_modules", node},
                             dir);
  ASSERT_TRUE(out.contains("blocks")) << out.dump();
  std::map<std::string, int> count;
  for (const json& b : out["blocks"]) {
    ++count[b["lang"].get<std::string>()];
    EXPECT_TRUE(b["ok"].get<bool>())
        << "docs/interop.md:" << b["line"] << " (" << b["lang"] << "):\n"
        << b["output"].get<std::string>();
  }
  // Every direction has its example: PyTorch both ways, ONNX (export, check, run), NumPy.
  EXPECT_GE(count["python"], 6);
  EXPECT_GE(count["sh"], 3);
  EXPECT_GE(count["js"], 1);
}

}  // namespace
}  // namespace backprop
