// Placeholder until the bench subcommand lands; replaced by its real implementation.
#include "cli/commands.h"
#include "swiftbalancer/core/status.h"

namespace swiftbalancer::cli {

CommandRunner add_bench_command(CLI::App& app) {
  app.add_subcommand("bench", "(not built yet)");
  return [] () -> int { throw InputError("the bench subcommand is not built yet"); };
}

}  // namespace swiftbalancer::cli
