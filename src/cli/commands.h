// The swiftbalancer subcommands. Each add_*_command registers its options on `app` and returns
// the function main() runs when that subcommand is chosen; it returns the exit code.
// Bad input is reported by throwing swiftbalancer::InputError (exit code 2 in main).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace swiftbalancer::cli {

using CommandRunner = std::function<int()>;

CommandRunner add_plan_command(CLI::App& app);       // static placement from a load dump
CommandRunner add_bench_command(CLI::App& app);      // policy comparison table on shared traces
CommandRunner add_demo_command(CLI::App& app);       // the asynchronous runtime serving a model
CommandRunner add_gen_trace_command(CLI::App& app);  // synthetic per-step expert counts
CommandRunner add_replay_command(CLI::App& app);     // trace-driven simulation

}  // namespace swiftbalancer::cli
