// The subcommands: each registers its flags on the app and runs when selected.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace backprop::cli {

// Returns the exit status. Errors are thrown (backprop::Error) and mapped to statuses by main.
using Run = std::function<int()>;

Run add_train(CLI::App& app);
Run add_eval(CLI::App& app);
Run add_predict(CLI::App& app);
Run add_info(CLI::App& app);
Run add_gradcheck(CLI::App& app);
Run add_export(CLI::App& app);
Run add_report(CLI::App& app);

}  // namespace backprop::cli
