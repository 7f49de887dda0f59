// Command-line options shared by `gen-trace` and `replay` (which can generate its trace on the
// fly), and a terminal progress bar. Header-only; used by src/cli only (needs CLI11).
// Not thread-safe; one instance per command.
#pragma once

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "swiftbalancer/core/limits.h"
#include "swiftbalancer/io/file_check.h"
#include "swiftbalancer/io/load_io.h"
#include "swiftbalancer/replay/trace.h"

namespace swiftbalancer::replay {

struct TraceOptions {
  std::int64_t steps = 2000;
  int layers = 58;
  int experts = 256;
  std::int64_t tokens = 4096;
  int top_k = 8;
  std::uint64_t seed = 1;
  std::vector<std::string> base_files;
  bool drop_zero_layers = false;
  int workloads = 0;  // synthetic workloads; 0: one more than the switch points
  std::vector<std::int64_t> switch_at;
  std::int64_t blend = 0;

  void add_to(CLI::App* app) {
    // Ranges keep every size an int and every cell count within core/limits.h.
    app->add_option("--steps", steps, "Steps in the trace")
        ->capture_default_str()
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
    app->add_option("--layers", layers, "MoE layers (built-in base)")
        ->capture_default_str()
        ->check(CLI::Range(1, static_cast<int>(limits::kMaxLayers)));
    app->add_option("--experts", experts, "Logical experts per layer (built-in base)")
        ->capture_default_str()
        ->check(CLI::Range(1, static_cast<int>(limits::kMaxExperts)));
    app->add_option("--tokens", tokens, "Tokens per step (each picks top-k experts)")
        ->capture_default_str()
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 40));
    app->add_option("--top-k", top_k, "Distinct experts each token picks")
        ->capture_default_str()
        ->check(CLI::Range(1, static_cast<int>(limits::kMaxExperts)));
    app->add_option("--seed", seed, "Random seed (same seed, same trace)")->capture_default_str();
    app->add_option("--base", base_files,
                    "Base distributions from load dumps (SGLang logical_count JSON, CSV, .npy), "
                    "visited in order; default: the built-in DeepSeek-V3-like base");
    app->add_flag("--drop-zero-layers", drop_zero_layers,
                  "Drop layers that are all zero in every --base file (DeepSeek's dense layers)");
    app->add_option("--workloads", workloads,
                    "Built-in workloads to visit (default: one more than the switch points)")
        ->check(CLI::Range(0, 1 << 16));
    app->add_option("--switch-at", switch_at,
                    "Steps where the trace moves to the next base (default: evenly spaced)")
        ->delimiter(',')
        ->check(CLI::Range(std::int64_t{1}, std::numeric_limits<std::int64_t>::max()));
    app->add_option("--blend", blend, "Steps of linear blending after each switch (0: abrupt)")
        ->capture_default_str()
        ->check(CLI::Range(std::int64_t{0}, std::numeric_limits<std::int64_t>::max()));
  }

  // Builds the spec (reads the --base files). Throws InputError on bad values.
  TraceSpec make_spec() const {
    TraceSpec spec;
    spec.steps = steps;
    spec.tokens = tokens;
    spec.top_k = top_k;
    spec.seed = seed;
    spec.switch_at = switch_at;
    spec.blend = blend;
    if (!base_files.empty()) {
      if (workloads != 0) throw InputError("--workloads is for the built-in base, not --base");
      for (const std::string& f : base_files) {
        check_input_file(f, "--base");  // a FIFO would block the reader
        spec.bases.push_back(read_load(f));
        std::int64_t cells = 0;
        for (const LoadMatrix& b : spec.bases) cells += std::int64_t{b.layers()} * b.experts();
        if (cells > limits::kMaxTraceBaseCells)
          throw InputError("--base: the files up to " + f + " hold " + std::to_string(cells) +
                           " cells (layers x experts), above the limit of " +
                           std::to_string(limits::kMaxTraceBaseCells) + " for a trace's bases");
      }
      if (drop_zero_layers) ::swiftbalancer::replay::drop_zero_layers(spec.bases);
    } else {
      if (drop_zero_layers) throw InputError("--drop-zero-layers needs --base files");
      if (layers <= 0 || experts <= 0) throw InputError("--layers and --experts must be positive");
      int n = workloads > 0 ? workloads : static_cast<int>(switch_at.size()) + 1;
      if (workloads < 0) throw InputError("--workloads must not be negative");
      // Before any base is made: the generator holds them all (core/limits.h).
      const std::int64_t cells = std::int64_t{n} * layers * experts;
      if (cells > limits::kMaxTraceBaseCells)
        throw InputError("--workloads --layers --experts: " + std::to_string(n) + " workloads x " +
                         std::to_string(layers) + " layers x " + std::to_string(experts) +
                         " experts = " + std::to_string(cells) + " cells exceed the limit of " +
                         std::to_string(limits::kMaxTraceBaseCells) + " for generated traces");
      for (int w = 0; w < n; ++w) spec.bases.push_back(synthetic_base(layers, experts, seed, w));
    }
    finalize_spec(spec);
    return spec;
  }
};

// The built-in workloads a spec will hold (for sizes in messages; --base files aside).
inline std::int64_t trace_workloads(const TraceOptions& t) {
  return t.workloads > 0 ? t.workloads : static_cast<std::int64_t>(t.switch_at.size()) + 1;
}

// A progress bar on stderr, drawn only when stderr is a terminal; redrawn at most 10 times a
// second. finish() clears the line.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label)
      : label_(std::move(label)), enabled_(isatty(fileno(stderr)) != 0) {}
  void update(std::int64_t done, std::int64_t total) {
    if (!enabled_ || total <= 0) return;
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const int width = 40;
    const int fill = static_cast<int>(width * done / total);
    std::string bar(static_cast<std::size_t>(fill), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r%s [%s] %3d%% %lld/%lld", label_.c_str(), bar.c_str(),
                 static_cast<int>(100 * done / total), static_cast<long long>(done),
                 static_cast<long long>(total));
    std::fflush(stderr);
    drawn_ = true;
  }
  void finish() {
    if (drawn_) std::fprintf(stderr, "\r%*s\r", 80, "");
    drawn_ = false;
  }

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace swiftbalancer::replay
