// Placeholder until the replay subcommand lands; replaced by its real implementation.
#include "cli/commands.h"
#include "swiftbalancer/core/status.h"

namespace swiftbalancer::cli {

CommandRunner add_replay_command(CLI::App& app) {
  app.add_subcommand("replay", "(not built yet)");
  return [] () -> int { throw InputError("the replay subcommand is not built yet"); };
}

}  // namespace swiftbalancer::cli
