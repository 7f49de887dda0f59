// Checks on command-line values shared by the subcommands: CLI11 validators for numbers (finite,
// non-negative, ranged; CLI::Range alone lets NaN through, since every comparison with NaN is
// false) and path checks that name the option. A failed validator is a CLI11 parse error and a
// failed path check an InputError: exit code 2 either way, before any work.
// Stateless; the validators are values, safe to copy.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <utility>
#include <vector>

#include "swiftbalancer/core/topology.h"

namespace swiftbalancer::cli {

// A finite number in [lo, hi] (either bound may be +-infinity for "none").
CLI::Validator finite_range(double lo, double hi);
// A finite number >= 0.
CLI::Validator finite_non_negative();
// A finite number > 0.
CLI::Validator finite_positive();

// Adds, to every option of every subcommand of `app`, the checks CLI11 2.x leaves out (call it
// once, after every option is added):
//   - an integer option ("INT"/"UINT") takes a plain decimal integer that fits in 64 bits: CLI11
//     converts with strtoll/strtoull, which saturate (2^63 becomes 2^63-1), wrap ("-1" becomes
//     2^64-1 for an unsigned option) and read "010" as octal 8; all three are refused;
//   - a text option (a path, a name, a list) is never empty: an empty --report '' used to be
//     skipped and an empty --trace '' fell back to the default. `allow_empty` lists the text
//     options where empty is a meaningful value.
void harden_options(CLI::App& app, const std::vector<std::string>& allow_empty);

// Pairs of (option name, path); empty paths are skipped (the option was not given).
using PathOptions = std::vector<std::pair<std::string, std::string>>;
// Regular, readable files only (a FIFO would block the reader): InputError naming the option.
void check_inputs(const PathOptions& inputs);
// Each output can be created (existing folder, writable, not a directory or device), and no two
// outputs name the same file: InputError naming the option.
void check_outputs(const PathOptions& outputs);

// Topology::make with the options that gave the sizes named in its error ("--ranks
// --slots-per-rank: ranks x slots per rank (...) exceed the limit ...").
Topology make_topology(int ranks, int slots_per_rank, int ranks_per_node, const std::string& names);

}  // namespace swiftbalancer::cli
