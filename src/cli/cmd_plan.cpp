// Placeholder until the plan subcommand lands; replaced by its real implementation.
#include "cli/commands.h"
#include "swiftbalancer/core/status.h"

namespace swiftbalancer::cli {

CommandRunner add_plan_command(CLI::App& app) {
  app.add_subcommand("plan", "(not built yet)");
  return [] () -> int { throw InputError("the plan subcommand is not built yet"); };
}

}  // namespace swiftbalancer::cli
