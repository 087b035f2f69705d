// F7 (RELIABILITY.md B.1): command lines. The input is split on NUL bytes into arguments (at most
// 64), which go through the same CLI11 application main() builds (every subcommand's flags and
// validators, cli/*.cpp) without running the command; then each argument goes through the
// parsers a command applies before it reads any data: width lists (--layers, --hidden), comma
// lists (--label-column) and the activation/output/loss triple. A usage error must be one line.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "commands.hpp"
#include "common.hpp"
#include "fuzz_util.hpp"

using namespace backprop;
using namespace backprop::fuzz;

namespace {

constexpr std::size_t kMaxArgs = 64;

// main()'s application: the same subcommands and settings (cli/main.cpp).
void parse_command_line(std::vector<std::string> args) {
  CLI::App app{"backprop", "backprop"};
  app.set_version_flag("--version", std::string("0"));
  app.require_subcommand(1);
  app.fallthrough(false);
  std::vector<cli::Run> runs;
  for (auto add : {cli::add_train, cli::add_eval, cli::add_predict, cli::add_info,
                   cli::add_gradcheck, cli::add_export, cli::add_report}) {
    runs.push_back(add(app));
  }
  std::vector<char*> argv;
  std::string program = "backprop";
  argv.push_back(program.data());
  for (std::string& a : args) argv.push_back(a.data());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::Error&) {
    // A usage error (or --help/--version): main prints it as one line and exits 2 (or 0).
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args;
  std::string cur;
  for (std::size_t i = 0; i < size && args.size() < kMaxArgs; ++i) {
    if (data[i] == 0) {
      args.push_back(cur);
      cur.clear();
    } else {
      cur += static_cast<char>(data[i]);
    }
  }
  if (args.size() < kMaxArgs) args.push_back(cur);

  parse_command_line(args);
  for (const std::string& a : args) {
    accepts([&] { cli::parse_width_list("--layers", a); });
    (void)cli::split_list(a);
  }
  if (args.size() >= 3) {
    ModelSpec spec;
    accepts([&] { cli::parse_spec_flags(spec, args[0], args[1], args[2]); });
  }
  return 0;
}
