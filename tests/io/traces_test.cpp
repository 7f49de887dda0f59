// Every shared trace file loads (skipped when ../shared/traces is absent), with the shapes the
// traces README states, and a DeepSeek dump reads in milliseconds.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "swiftbalancer/io/load_io.h"

namespace swiftbalancer {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> files_in(const std::string& sub, const std::string& ext) {
  std::vector<fs::path> out;
  const fs::path dir = fs::path(SWIFTBALANCER_TRACES_DIR) / sub;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ext) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(SharedTraces, DeepSeekJsonLoads) {
  const auto files = files_in("deepseek_v3r1", ".json");
  if (files.empty()) GTEST_SKIP() << "no shared traces at " << SWIFTBALANCER_TRACES_DIR;
  for (const auto& f : files) {
    const LoadMatrix m = read_load(f.string());
    EXPECT_EQ(m.layers(), 61) << f;
    EXPECT_EQ(m.experts(), 256) << f;
    EXPECT_TRUE(m.validate().ok()) << f;
    for (int l = 0; l < 3; ++l) EXPECT_FALSE(m.layer_has_load(l)) << f << " dense layer " << l;
    for (int l = 3; l < 61; ++l) EXPECT_TRUE(m.layer_has_load(l)) << f << " layer " << l;
  }
}

TEST(SharedTraces, QwenCsvLoadsWithSteps) {
  const auto files = files_in("qwen15moe", ".csv");
  if (files.empty()) GTEST_SKIP() << "no shared traces at " << SWIFTBALANCER_TRACES_DIR;
  for (const auto& f : files) {
    const auto steps = read_load_steps(f.string());
    ASSERT_EQ(steps.size(), 20u) << f;
    EXPECT_EQ(steps[0].layers(), 12) << f;
    EXPECT_EQ(steps[0].experts(), 60) << f;
    // 98,304 tokens per step and layer.
    for (const auto& s : steps) EXPECT_DOUBLE_EQ(s.layer_total(5), 98304.0) << f;
    const LoadMatrix sum = read_load(f.string());
    EXPECT_DOUBLE_EQ(sum.layer_total(0), 20 * 98304.0) << f;
  }
}

TEST(SharedTraces, OlmoeMixtralCsvLoads) {
  const auto files = files_in("olmoe_mixtral", ".csv");
  if (files.empty()) GTEST_SKIP() << "no shared traces at " << SWIFTBALANCER_TRACES_DIR;
  for (const auto& f : files) {
    const LoadMatrix m = read_load(f.string());
    const bool mixtral = f.filename().string().rfind("mistral", 0) == 0;
    EXPECT_EQ(m.layers(), 16) << f;  // layers 0, 7 and 15 recorded
    EXPECT_EQ(m.experts(), mixtral ? 8 : 64) << f;
    EXPECT_TRUE(m.layer_has_load(0) && m.layer_has_load(7) && m.layer_has_load(15)) << f;
    EXPECT_FALSE(m.layer_has_load(1)) << f;
  }
}

TEST(SharedTraces, DeepSeekJsonReadsInMilliseconds) {
  const fs::path f = fs::path(SWIFTBALANCER_TRACES_DIR) / "deepseek_v3r1/decode_in1000out1000.json";
  std::error_code ec;
  if (!fs::exists(f, ec)) GTEST_SKIP() << "no shared traces at " << SWIFTBALANCER_TRACES_DIR;
  double best = 1e9;
  for (int k = 0; k < 5; ++k) {
    const auto t0 = std::chrono::steady_clock::now();
    const LoadMatrix m = read_load(f.string());
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::milli>(t1 - t0).count());
    ASSERT_EQ(m.layers(), 61);
  }
  RecordProperty("best_read_ms", std::to_string(best));
  // Generous: a loose guard against an accidental quadratic path, not a benchmark.
  EXPECT_LT(best, 200.0);
}

}  // namespace
}  // namespace swiftbalancer
