// Placeholder until the demo subcommand lands; replaced by its real implementation.
#include "cli/commands.h"
#include "swiftbalancer/core/status.h"

namespace swiftbalancer::cli {

CommandRunner add_demo_command(CLI::App& app) {
  app.add_subcommand("demo", "(not built yet)");
  return [] () -> int { throw InputError("the demo subcommand is not built yet"); };
}

}  // namespace swiftbalancer::cli
