// swiftbalancer: the command-line front of the library. Exit codes: 0 success, 1 a failure at
// run time (including a failed check or a failed write), 2 bad input or usage, 3 a resource the
// machine could not give (memory, a thread; the message names what and how big) or an internal
// error.
#include <csignal>
#include <cstdio>
#include <exception>
#include <new>
#include <system_error>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "swiftbalancer/core/resource.h"
#include "swiftbalancer/core/status.h"
#include "swiftbalancer/io/atomic_file.h"

int main(int argc, char** argv) {
  namespace sbc = swiftbalancer::cli;
  // Past a file-size limit (ulimit -f) a write then fails with EFBIG, reported as a write error
  // (exit 1, the temporary removed), instead of SIGXFSZ killing the process mid-file.
  std::signal(SIGXFSZ, SIG_IGN);
  // SIGINT/SIGTERM/SIGHUP mid-write: the run's temporaries are removed before it dies.
  swiftbalancer::install_temporary_cleanup();
  CLI::App app{"SwiftBalancer: asynchronous expert-parallel load balancing for MoE inference"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Print help for every subcommand");

  std::vector<std::pair<CLI::App*, sbc::CommandRunner>> commands;
  auto add = [&](sbc::CommandRunner (*fn)(CLI::App&)) {
    auto runner = fn(app);
    commands.emplace_back(app.get_subcommands({}).back(), std::move(runner));
  };
  add(&sbc::add_plan_command);
  add(&sbc::add_bench_command);
  add(&sbc::add_demo_command);
  add(&sbc::add_gen_trace_command);
  add(&sbc::add_replay_command);

  // Strict integers and no empty text values, for every option of every command; an empty
  // --title is a title-less picture.
  sbc::harden_options(app, {"--title"});

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    for (auto& [sub, run] : commands)
      if (sub->parsed()) return run();
  } catch (const swiftbalancer::InputError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const swiftbalancer::ResourceError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 3;
  } catch (const std::bad_alloc&) {
    // An allocation no check named (the named ones are ResourceErrors).
    std::fprintf(stderr, "error: out of memory (std::bad_alloc)\n");
    return 3;
  } catch (const std::system_error& e) {
    // A thread or another system resource that could not be had.
    std::fprintf(stderr, "error: %s\n", e.what());
    return 3;
  } catch (const swiftbalancer::InternalError& e) {
    std::fprintf(stderr, "internal error (a bug, please report it): %s\n", e.what());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 2;
}
