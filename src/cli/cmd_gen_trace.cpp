// `swiftbalancer gen-trace`: writes per-step expert counts [steps][layers][experts] (int64 .npy)
// sampled from base distributions that switch or blend over time, then reads the file back and
// checks it (shape, exactly tokens x top-k assignments per loaded layer and step).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/cli_options.h"
#include "cli/commands.h"
#include "cli/option_checks.h"
#include "swiftbalancer/core/resource.h"
#include "swiftbalancer/core/status.h"
#include "swiftbalancer/replay/trace.h"

namespace swiftbalancer::cli {
namespace {

struct ShapeRange {
  double lo = 1e300, hi = 0, sum = 0;
  int n = 0;
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
    ++n;
  }
  std::string str() const {
    char buf[96];
    if (n == 0) return "-";
    std::snprintf(buf, sizeof buf, "mean %.2f, range %.2f-%.2f", sum / n, lo, hi);
    return buf;
  }
};

}  // namespace

CommandRunner add_gen_trace_command(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "gen-trace",
      "Generate per-step expert counts [steps][layers][experts] (.npy, int64) from base "
      "distributions that switch or blend over time");
  struct Opts {
    replay::TraceOptions trace;
    std::string out;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("-o,--out", o->out, "Output .npy file")->required();
  o->trace.add_to(sub);
  sub->add_flag("-q,--quiet", o->quiet, "Print nothing on success");
  return [o]() -> int {
    check_outputs({{"--out", o->out}});  // before the --base files are read
    // The bases and the generator's inclusion probabilities, within limits::kMaxTraceBaseCells
    // (checked by make_spec before any is made); an allocation that fails anyway names them.
    const std::int64_t base_cells =
        replay::trace_workloads(o->trace) * o->trace.layers * o->trace.experts;
    const std::string bases =
        o->trace.base_files.empty()
            ? "the built-in base distributions (" + std::to_string(base_cells) + " cells)"
            : "the --base distributions";
    replay::TraceSpec spec =
        allocating(bases, base_cells * 8, [&] { return o->trace.make_spec(); });
    // Shape of the bases (what the sampler draws from).
    std::vector<ShapeRange> base_max(spec.bases.size()), base_cv(spec.bases.size());
    std::vector<int> hottest_distinct(spec.bases.size(), 0);
    for (std::size_t b = 0; b < spec.bases.size(); ++b) {
      std::vector<int> hot;
      for (int l = 0; l < spec.bases[b].layers(); ++l) {
        const replay::LayerShape s = replay::layer_shape(spec.bases[b].row(l));
        if (!s.has_load) continue;
        base_max[b].add(s.max_over_mean);
        base_cv[b].add(s.cv);
        hot.push_back(s.hottest);
      }
      std::sort(hot.begin(), hot.end());
      hottest_distinct[b] = static_cast<int>(std::unique(hot.begin(), hot.end()) - hot.begin());
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::int64_t cells = 0;
    for (const LoadMatrix& b : spec.bases) cells += std::int64_t{b.layers()} * b.experts();
    replay::TraceGenerator gen =
        allocating("the trace generator's inclusion probabilities", cells * 8,
                   [&] { return replay::TraceGenerator(spec); });
    const std::int64_t T = gen.steps();
    const int L = gen.layers(), E = gen.experts();
    {
      replay::ProgressBar bar("gen-trace");
      replay::write_trace_npy(o->out, gen, [&](std::int64_t done) { bar.update(done, T); });
      bar.finish();
    }
    const double gen_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    // Read back and check, streaming.
    auto src = replay::open_npy_trace(o->out);
    if (src->steps() != T || src->layers() != L || src->experts() != E)
      throw std::runtime_error(o->out + ": read back with a different shape");
    std::vector<double> step(static_cast<std::size_t>(L) * E);
    const double want = static_cast<double>(spec.tokens) * spec.top_k;
    for (std::int64_t t = 0; t < T; ++t) {
      src->next(step);
      for (int l = 0; l < L; ++l) {
        double s = 0.0;
        for (int e = 0; e < E; ++e) s += step[static_cast<std::size_t>(l) * E + e];
        if (s != 0.0 && s != want)
          throw std::runtime_error(o->out + ": step " + std::to_string(t) + ", layer " +
                                   std::to_string(l) + " holds " + std::to_string(s) +
                                   " assignments, expected " + std::to_string(want));
      }
    }
    if (o->quiet) return 0;
    std::printf(
        "wrote %s: int64 [%lld][%d][%d], %lld tokens x top-%d per step, seed %llu "
        "(%.2f s), read back and checked\n",
        o->out.c_str(), static_cast<long long>(T), L, E, static_cast<long long>(spec.tokens),
        spec.top_k, static_cast<unsigned long long>(spec.seed), gen_s);
    for (std::size_t b = 0; b < spec.bases.size(); ++b) {
      const std::string name = o->trace.base_files.empty()
                                   ? "built-in workload " + std::to_string(b)
                                   : o->trace.base_files[b];
      std::string when =
          b == 0 ? "from step 0" : "from step " + std::to_string(spec.switch_at[b - 1]);
      if (b > 0 && spec.blend > 0) when += " (blended over " + std::to_string(spec.blend) + ")";
      std::printf(
          "  base %zu: %s, %s; per layer max/mean %s; CV %s; %d distinct hottest "
          "experts over %d layers\n",
          b, name.c_str(), when.c_str(), base_max[b].str().c_str(), base_cv[b].str().c_str(),
          hottest_distinct[b], base_max[b].n);
    }
    return 0;
  };
}

}  // namespace swiftbalancer::cli
