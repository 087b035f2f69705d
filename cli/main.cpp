// backprop: train, evaluate and inspect multilayer perceptrons.
// Exit status: 0 success, 1 failure (bad data, bad model file, I/O, a diverging run), 2 usage
// (an unknown flag, a value that does not parse or is out of range). Errors are one line on stderr.
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "backprop/error.hpp"
#include "backprop/version.hpp"
#include "commands.hpp"
#include "common.hpp"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// CLI11 messages may span lines; ours must not.
std::string flat(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  // Writing into a closed pipe (backprop train | head -1) must not kill the run.
  std::signal(SIGPIPE, SIG_IGN);

  CLI::App app{"backprop: train fully connected neural networks with hand-derived back propagation",
               "backprop"};
  app.set_version_flag("--version", std::string(backprop::version()));
  app.require_subcommand(1);
  app.fallthrough(false);

  using namespace backprop::cli;
  std::vector<std::pair<CLI::App*, Run>> commands;
  for (auto add :
       {add_train, add_eval, add_predict, add_info, add_gradcheck, add_export, add_report}) {
    std::size_t before = app.get_subcommands({}).size();
    Run run = add(app);
    commands.emplace_back(app.get_subcommands({})[before], std::move(run));
  }

  std::string who = "backprop";
  // CLI11 would call a misspelt command "a subcommand is required"; name it instead.
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (auto& [cmd, run] : commands) known = known || cmd->get_name() == argv[1];
    if (!known) {
      std::fprintf(stderr,
                   "backprop: error: unknown command '%s': expected train, eval, predict, info, "
                   "gradcheck, export or report (see --help)\n",
                   argv[1]);
      return kExitUsage;
    }
  }
  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
      return app.exit(CLI::CallForHelp());
    } catch (const CLI::ParseError& e) {
      if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
      for (auto& [cmd, run] : commands) {
        if (cmd->parsed()) who = "backprop " + cmd->get_name();
      }
      std::fprintf(stderr, "%s: error: %s (see --help)\n", who.c_str(),
                   escape_controls(flat(e.what())).c_str());
      return kExitUsage;
    }
    for (auto& [cmd, run] : commands) {
      if (cmd->parsed()) {
        who = "backprop " + cmd->get_name();
        return run();
      }
    }
    return kExitUsage;
  } catch (const backprop::Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", who.c_str(), escape_controls(e.what()).c_str());
    return e.code() == backprop::ErrorCode::kUsage ? kExitUsage : kExitFailure;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: error: out of memory\n", who.c_str());
    return kExitFailure;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", who.c_str(), escape_controls(e.what()).c_str());
    return kExitFailure;
  }
}
