// Placeholder until the gen-trace subcommand lands; replaced by its real implementation.
#include "cli/commands.h"
#include "swiftbalancer/core/status.h"

namespace swiftbalancer::cli {

CommandRunner add_gen_trace_command(CLI::App& app) {
  app.add_subcommand("gen-trace", "(not built yet)");
  return [] () -> int { throw InputError("the gen-trace subcommand is not built yet"); };
}

}  // namespace swiftbalancer::cli
