// Trace generation: the sampler's exact properties (sums, distinct top-k, caps), its statistics,
// determinism, switching and blending, the built-in base's calibration, .npy round trips.
#include <gtest/gtest.h>

#include <unistd.h>
#include <fstream>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "swiftbalancer/core/status.h"
#include "swiftbalancer/io/load_io.h"
#include "swiftbalancer/io/npy.h"
#include "swiftbalancer/replay/rng.h"
#include "swiftbalancer/replay/trace.h"

namespace swiftbalancer::replay {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("sb_replay_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

LoadMatrix matrix(int layers, int experts, std::vector<double> v) {
  return LoadMatrix(layers, experts, std::move(v));
}

TEST(Rng, BinomialMeanAndVarianceMatch) {
  Rng rng(7);
  struct Case {
    std::int64_t n;
    double p;
  };
  // Inversion (small n p), the halving path (large n p) and the symmetric path (p > 0.5).
  for (const Case c :
       {Case{20, 0.1}, Case{4096, 0.004}, Case{4096, 0.3}, Case{20000, 0.5}, Case{50, 0.9}}) {
    const int draws = c.n > 5000 ? 4000 : 20000;  // the cost of a draw grows with n * p
    double sum = 0, sq = 0;
    for (int i = 0; i < draws; ++i) {
      const double x = static_cast<double>(rng.binomial(c.n, c.p));
      ASSERT_GE(x, 0);
      ASSERT_LE(x, c.n);
      sum += x;
      sq += x * x;
    }
    const double mean = sum / draws, var = sq / draws - mean * mean;
    const double want_mean = c.n * c.p, want_var = c.n * c.p * (1 - c.p);
    EXPECT_NEAR(mean, want_mean, 5 * std::sqrt(want_var / draws)) << c.n << " " << c.p;
    EXPECT_NEAR(var / want_var, 1.0, 5 * std::sqrt(2.0 / draws)) << c.n << " " << c.p;
  }
  EXPECT_EQ(rng.binomial(10, 0.0), 0);
  EXPECT_EQ(rng.binomial(10, 1.0), 10);
  EXPECT_EQ(rng.binomial(0, 0.5), 0);
}

TEST(InclusionProbabilities, CapsAtOneAndSumsToK) {
  const std::vector<double> w = {10, 1, 1, 1};
  const auto pi = inclusion_probabilities(w, 2);
  ASSERT_EQ(pi.size(), 4u);
  EXPECT_DOUBLE_EQ(pi[0], 1.0);  // 2 * 10/13 > 1: capped, the rest spread over the others
  for (int e = 1; e < 4; ++e) EXPECT_NEAR(pi[e], 1.0 / 3.0, 1e-12);
  const auto zero = inclusion_probabilities(std::vector<double>{0, 0, 0}, 2);
  for (double v : zero) EXPECT_EQ(v, 0.0);
}

TEST(TraceGenerator, EveryStepHasTokensTimesKDistinctPicks) {
  TraceSpec spec;
  spec.steps = 50;
  spec.tokens = 333;
  spec.top_k = 3;
  spec.seed = 5;
  spec.bases = {synthetic_base(4, 16, 9, 0)};
  TraceGenerator gen(spec);
  std::vector<std::int64_t> step(4 * 16);
  for (int t = 0; t < 50; ++t) {
    gen.next(step);
    for (int l = 0; l < 4; ++l) {
      std::int64_t s = 0;
      for (int e = 0; e < 16; ++e) {
        const std::int64_t c = step[l * 16 + e];
        EXPECT_GE(c, 0);
        EXPECT_LE(c, 333);  // a token picks an expert at most once
        s += c;
      }
      EXPECT_EQ(s, 333 * 3);
    }
  }
  EXPECT_THROW(gen.next(step), InputError);
}

TEST(TraceGenerator, CappedExpertIsPickedByEveryToken) {
  // pi = {1, 1/3, 1/3, 1/3}: expert 0 is in every token's top-2, so its count is exactly tokens.
  TraceSpec spec;
  spec.steps = 20;
  spec.tokens = 100;
  spec.top_k = 2;
  spec.bases = {matrix(1, 4, {10, 1, 1, 1})};
  TraceGenerator gen(spec);
  std::vector<std::int64_t> step(4);
  for (int t = 0; t < 20; ++t) {
    gen.next(step);
    EXPECT_EQ(step[0], 100);
    EXPECT_EQ(step[1] + step[2] + step[3], 100);
  }
  // k == E: every token picks every expert.
  spec.top_k = 4;
  spec.bases = {matrix(1, 4, {5, 1, 2, 3})};
  TraceGenerator all(spec);
  all.next(step);
  for (int e = 0; e < 4; ++e) EXPECT_EQ(step[e], 100);
}

TEST(TraceGenerator, CountsFollowTheInclusionProbabilities) {
  TraceSpec spec;
  spec.steps = 400;
  spec.tokens = 1000;
  spec.top_k = 2;
  spec.bases = {matrix(1, 5, {6, 4, 3, 2, 1})};  // pi = 0.75, 0.5, 0.375, 0.25, 0.125
  const auto pi = inclusion_probabilities(spec.bases[0].row(0), 2);
  TraceGenerator gen(spec);
  std::vector<double> sum(5, 0.0), sq(5, 0.0);
  std::vector<std::int64_t> step(5);
  for (int t = 0; t < 400; ++t) {
    gen.next(step);
    for (int e = 0; e < 5; ++e) {
      sum[e] += step[e];
      sq[e] += static_cast<double>(step[e]) * step[e];
    }
  }
  for (int e = 0; e < 5; ++e) {
    const double mean = sum[e] / 400, var = sq[e] / 400 - mean * mean;
    const double want = 1000 * pi[e], want_var = 1000 * pi[e] * (1 - pi[e]);
    EXPECT_NEAR(mean, want, 5 * std::sqrt(want_var / 400)) << "expert " << e;
    // Each count is Binomial(tokens, pi_e).
    EXPECT_NEAR(var / want_var, 1.0, 0.25) << "expert " << e;
  }
}

TEST(TraceGenerator, SameSeedSameTraceOtherSeedOther) {
  TraceSpec spec;
  spec.steps = 5;
  spec.tokens = 512;
  spec.bases = {synthetic_base(3, 32, 1, 0)};
  auto run = [&](std::uint64_t seed) {
    TraceSpec s = spec;
    s.seed = seed;
    TraceGenerator g(s);
    std::vector<std::int64_t> all, step(3 * 32);
    for (int t = 0; t < 5; ++t) {
      g.next(step);
      all.insert(all.end(), step.begin(), step.end());
    }
    return all;
  };
  EXPECT_EQ(run(3), run(3));
  EXPECT_NE(run(3), run(4));
}

TEST(TraceGenerator, SwitchesAndBlendsBetweenBases) {
  // Base A loads only expert 0, base B only expert 2 (top-1).
  TraceSpec spec;
  spec.steps = 30;
  spec.tokens = 200;
  spec.top_k = 1;
  spec.bases = {matrix(1, 4, {1, 0, 0, 0}), matrix(1, 4, {0, 0, 1, 0})};
  spec.switch_at = {10};
  {
    TraceGenerator gen(spec);
    std::vector<std::int64_t> step(4);
    for (int t = 0; t < 30; ++t) {
      gen.next(step);
      EXPECT_EQ(step[0], t < 10 ? 200 : 0) << t;
      EXPECT_EQ(step[2], t < 10 ? 0 : 200) << t;
    }
  }
  spec.blend = 10;  // steps 10..20: linear from A to B
  TraceGenerator gen(spec);
  std::vector<std::int64_t> step(4);
  for (int t = 0; t < 30; ++t) {
    gen.next(step);
    EXPECT_EQ(step[0] + step[2], 200);
    if (t <= 10) {
      EXPECT_EQ(step[0], 200) << t;
    }
    if (t >= 20) {
      EXPECT_EQ(step[2], 200) << t;
    }
    if (t == 15) {  // half way: about 100 each (Binomial(200, 0.5): 8 sd is 57)
      EXPECT_GT(step[0], 43);
      EXPECT_GT(step[2], 43);
    }
  }
}

TEST(TraceGenerator, EvenlySpacedSwitchesAndBadSpecs) {
  TraceSpec spec;
  spec.steps = 90;
  spec.bases = {synthetic_base(2, 16, 1, 0), synthetic_base(2, 16, 1, 1),
                synthetic_base(2, 16, 1, 2)};
  finalize_spec(spec);
  EXPECT_EQ(spec.switch_at, (std::vector<std::int64_t>{30, 60}));

  TraceSpec bad = spec;
  bad.switch_at = {60, 30};
  EXPECT_THROW(finalize_spec(bad), InputError);
  bad.switch_at = {30, 91};
  EXPECT_THROW(finalize_spec(bad), InputError);
  bad.switch_at = {30};
  EXPECT_THROW(finalize_spec(bad), InputError);
  bad = spec;
  bad.top_k = 17;
  EXPECT_THROW(finalize_spec(bad), InputError);
  bad = spec;
  bad.bases.push_back(synthetic_base(3, 16, 1, 3));  // another shape
  bad.switch_at.clear();
  EXPECT_THROW(finalize_spec(bad), InputError);
  bad = spec;
  bad.top_k = 2;
  bad.bases = {matrix(1, 4, {1, 0, 0, 0})};  // one expert with load, top-2
  bad.switch_at.clear();
  EXPECT_THROW(finalize_spec(bad), InputError);
  bad = spec;
  bad.steps = 0;
  EXPECT_THROW(finalize_spec(bad), InputError);
}

// The built-in base is calibrated to DeepSeek-V3's figures (see /work/shared/traces/README.md):
// per-layer max/mean about 5-8, coefficient of variation 0.7-1.0, hottest experts differ.
TEST(SyntheticBase, MatchesDeepSeekV3Shape) {
  for (int workload : {0, 1}) {
    const LoadMatrix base = synthetic_base(58, 256, 1, workload);
    std::set<int> hottest;
    double sum_max = 0;
    for (int l = 0; l < 58; ++l) {
      const LayerShape s = layer_shape(base.row(l));
      ASSERT_TRUE(s.has_load);
      EXPECT_GE(s.max_over_mean, 5.0) << l;
      EXPECT_LE(s.max_over_mean, 8.2) << l;
      EXPECT_GE(s.cv, 0.70) << l;
      EXPECT_LE(s.cv, 1.00) << l;
      hottest.insert(s.hottest);
      sum_max += s.max_over_mean;
    }
    EXPECT_GE(hottest.size(), 40u);  // the hottest expert differs across layers
    EXPECT_NEAR(sum_max / 58, 6.5, 0.6);
  }
  // Another workload puts the load elsewhere (the switch moves hot experts).
  const LoadMatrix a = synthetic_base(58, 256, 1, 0), b = synthetic_base(58, 256, 1, 1);
  int same_hottest = 0;
  for (int l = 0; l < 58; ++l)
    same_hottest += layer_shape(a.row(l)).hottest == layer_shape(b.row(l)).hottest;
  EXPECT_LE(same_hottest, 3);
  EXPECT_EQ(synthetic_base(4, 8, 3, 0), synthetic_base(4, 8, 3, 0));
}

// Sampled steps keep the skew: the sum of many steps has the base's shape.
TEST(SyntheticBase, SampledTraceKeepsTheShape) {
  TraceSpec spec;
  spec.steps = 40;
  spec.tokens = 4096;
  spec.bases = {synthetic_base(6, 256, 2, 0)};
  TraceGenerator gen(spec);
  std::vector<std::int64_t> step(6 * 256);
  std::vector<double> sum(6 * 256, 0.0);
  for (int t = 0; t < 40; ++t) {
    gen.next(step);
    for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += static_cast<double>(step[i]);
  }
  for (int l = 0; l < 6; ++l) {
    const LayerShape want = layer_shape(spec.bases[0].row(l));
    const LayerShape got = layer_shape(std::span<const double>(sum.data() + l * 256, 256));
    EXPECT_NEAR(got.cv, want.cv, 0.05) << l;
    EXPECT_NEAR(got.max_over_mean, want.max_over_mean, 0.6) << l;
    EXPECT_EQ(got.hottest, want.hottest) << l;
  }
}

TEST(TraceNpy, WritesAndStreamsBack) {
  TraceSpec spec;
  spec.steps = 7;
  spec.tokens = 300;
  spec.top_k = 4;
  spec.seed = 11;
  spec.bases = {synthetic_base(3, 20, 1, 0), synthetic_base(3, 20, 1, 1)};
  const std::string path = temp_path("trace.npy");
  TraceGenerator writer_gen(spec);
  std::int64_t last = 0;
  write_trace_npy(path, writer_gen, [&](std::int64_t n) { last = n; });
  EXPECT_EQ(last, 7);
  NpyReader header(path);
  EXPECT_EQ(header.header().dtype, "<i8");
  EXPECT_EQ(header.header().shape, (std::vector<std::int64_t>{7, 3, 20}));

  auto src = open_npy_trace(path);
  ASSERT_EQ(src->steps(), 7);
  ASSERT_EQ(src->layers(), 3);
  ASSERT_EQ(src->experts(), 20);
  auto gen = generated_trace(spec);  // the same spec on the fly gives the same steps
  std::vector<double> a(60), b(60);
  for (int t = 0; t < 7; ++t) {
    src->next(a);
    gen->next(b);
    EXPECT_EQ(a, b) << t;
  }
  EXPECT_THROW(src->next(a), InputError);
  std::remove(path.c_str());
}

TEST(TraceNpy, RejectsBadFiles) {
  EXPECT_THROW(open_npy_trace(temp_path("missing.npy")), InputError);
  const std::string flat = temp_path("flat.npy");
  const std::vector<std::int64_t> shape = {2, 3};
  const std::vector<double> data = {1, 2, 3, 4, 5, 6};
  write_npy(flat, shape, data);
  EXPECT_THROW(open_npy_trace(flat), InputError);  // not 3-D
  const std::string neg = temp_path("neg.npy");
  const std::vector<std::int64_t> shape3 = {1, 1, 2};
  const std::vector<double> bad = {1, -1};
  write_npy(neg, shape3, bad);
  auto src = open_npy_trace(neg);
  std::vector<double> out(2);
  EXPECT_THROW(src->next(out), InputError);
  std::remove(flat.c_str());
  std::remove(neg.c_str());
}

// A per-step CSV (the qwen15moe format) reads as one trace step per step id; two files play one
// after the other; a part of another shape is refused, naming it.
TEST(TraceFiles, CsvStepsAndConcatenation) {
  const std::string a = temp_path("a.csv"), b = temp_path("b.csv"), c = temp_path("c.csv");
  {
    std::ofstream f(a);
    f << "step,layer,expert,tokens\n0,0,0,3\n0,0,1,1\n1,0,1,5\n";
  }
  {
    std::ofstream f(b);
    f << "step,layer,expert,tokens\n0,0,0,7\n";  // expert 1 missing: its cell is 0 ... and the
    f << "0,0,1,0\n";                            // shape must match, so name it
  }
  {
    std::ofstream f(c);
    f << "step,layer,expert,tokens\n0,0,2,1\n";  // 3 experts
  }
  auto ta = open_trace_file(a);
  EXPECT_EQ(ta->steps(), 2);
  EXPECT_EQ(ta->layers(), 1);
  EXPECT_EQ(ta->experts(), 2);
  std::vector<std::unique_ptr<TraceSource>> parts;
  parts.push_back(std::move(ta));
  parts.push_back(open_trace_file(b));
  auto both = concat_traces(std::move(parts));
  ASSERT_EQ(both->steps(), 3);
  std::vector<double> out(2);
  both->next(out);
  EXPECT_EQ(out, (std::vector<double>{3, 1}));
  both->next(out);
  EXPECT_EQ(out, (std::vector<double>{0, 5}));
  both->next(out);
  EXPECT_EQ(out, (std::vector<double>{7, 0}));
  EXPECT_THROW(both->next(out), InputError);

  std::vector<std::unique_ptr<TraceSource>> bad;
  bad.push_back(open_trace_file(a));
  bad.push_back(open_trace_file(c));
  try {
    concat_traces(std::move(bad));
    ADD_FAILURE() << "a part of another shape was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("trace part 2"), std::string::npos) << e.what();
  }
  for (const std::string& p : {a, b, c}) std::remove(p.c_str());
}

TEST(TraceBases, RealDumpDropsDenseLayers) {
  const std::string path =
      std::string(SWIFTBALANCER_TRACES_DIR) + "/deepseek_v3r1/prefill_in1024.json";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "shared traces not found: " << path;
  std::vector<LoadMatrix> bases = {read_load(path)};
  ASSERT_EQ(bases[0].layers(), 61);
  EXPECT_FALSE(bases[0].layer_has_load(0));
  drop_zero_layers(bases);
  ASSERT_EQ(bases[0].layers(), 58);
  for (int l = 0; l < 58; ++l) EXPECT_TRUE(bases[0].layer_has_load(l));
  TraceSpec spec;
  spec.steps = 3;
  spec.bases = bases;
  TraceGenerator gen(spec);
  std::vector<std::int64_t> step(58 * 256);
  gen.next(step);
  std::int64_t s = 0;
  for (int e = 0; e < 256; ++e) s += step[e];
  EXPECT_EQ(s, 4096 * 8);
}

}  // namespace
}  // namespace swiftbalancer::replay
