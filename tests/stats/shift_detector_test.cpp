// ShiftDetector on hand-made signals: stationary, a step change, an oscillation around the level.
#include "swiftbalancer/stats/shift_detector.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer {
namespace {

// Feeds `levels` one check every `every` steps (first at step `every`); returns the steps at
// which the detector fired.
std::vector<std::int64_t> fire_steps(ShiftDetector& d, const std::vector<double>& levels,
                                     std::int64_t every) {
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < levels.size(); ++i) {
    const std::int64_t step = static_cast<std::int64_t>(i + 1) * every;
    if (d.observe(step, levels[i])) out.push_back(step);
  }
  return out;
}

TEST(ShiftSignal, MaxOverMeanPerLayerAndMeanOverLoadedLayers) {
  // 2 ranks x 3 layers, rank-major: layer 0 {30, 10} -> 1.5, layer 1 {5, 5} -> 1, layer 2 none.
  const std::vector<std::int64_t> totals = {30, 5, 0, 10, 5, 0};
  const ShiftSignal s = shift_signal(totals, 2, 3);
  ASSERT_EQ(s.per_layer.size(), 3u);
  EXPECT_DOUBLE_EQ(s.per_layer[0], 1.5);
  EXPECT_DOUBLE_EQ(s.per_layer[1], 1.0);
  EXPECT_DOUBLE_EQ(s.per_layer[2], 0.0);
  EXPECT_DOUBLE_EQ(s.level, 1.25);
  EXPECT_THROW(shift_signal(totals, 4, 3), InputError);
}

TEST(ShiftSignal, OrderLayersWorstFirstAndSkipsFineOnes) {
  const std::vector<double> sig = {1.2, 2.0, 1.05, 2.0, 1.5};
  const std::vector<int> changed = {0, 1, 2, 3, 4};
  EXPECT_EQ(order_layers(changed, sig, 0.0), (std::vector<int>{1, 3, 4, 0, 2}));
  EXPECT_EQ(order_layers(changed, sig, 1.1), (std::vector<int>{1, 3, 4, 0}));
  EXPECT_EQ(order_layers(changed, {}, 1.1), changed);
}

TEST(ShiftDetector, NoTriggerOnAStationaryLoad) {
  ShiftDetector d({1.3, 1.1, 20});
  // Noise of +-10% around 1.5: never 1.3 x the reference (1.5), even from a low reference.
  std::vector<double> levels;
  for (int i = 0; i < 500; ++i) levels.push_back(1.5 + 0.1 * ((i * 7919) % 11 - 5) / 5.0);
  EXPECT_TRUE(fire_steps(d, levels, 5).empty());
  EXPECT_EQ(d.fired(), 0);
}

TEST(ShiftDetector, TriggersAtTheFirstCheckAfterAStepChange) {
  ShiftDetector d({1.3, 1.1, 20});
  std::vector<double> levels(40, 1.1);
  levels.resize(80, 2.5);  // the load switches between check 40 (step 200) and 41 (step 205)
  EXPECT_EQ(fire_steps(d, levels, 5), (std::vector<std::int64_t>{205}));
  EXPECT_DOUBLE_EQ(d.reference(), 1.1);
}

TEST(ShiftDetector, HysteresisHoldsOnALoadOscillatingAroundTheLevel) {
  ShiftDetector d({1.3, 1.1, 0});  // no gap: only the hysteresis stops it
  std::vector<double> levels = {1.0};
  for (int i = 0; i < 100; ++i) levels.push_back(i % 2 ? 1.25 : 1.35);  // around 1.3
  EXPECT_EQ(fire_steps(d, levels, 1), (std::vector<std::int64_t>{2}));
  // Below the re-arm level (1.1) it arms again, and fires on the next rise.
  EXPECT_FALSE(d.observe(300, 1.05));
  EXPECT_TRUE(d.armed());
  EXPECT_TRUE(d.observe(301, 1.35));
}

TEST(ShiftDetector, MinimumGapBetweenFirings) {
  ShiftDetector d({1.3, 1.1, 50});
  EXPECT_FALSE(d.observe(10, 1.0));  // reference
  EXPECT_FALSE(d.observe(20, 1.3));  // at the level, not above it
  EXPECT_TRUE(d.armed());
  EXPECT_TRUE(d.observe(30, 2.0));
  EXPECT_FALSE(d.observe(40, 1.0));  // re-arms
  EXPECT_FALSE(d.observe(50, 2.0));  // only 20 steps after the last firing
  EXPECT_FALSE(d.observe(70, 2.0));
  EXPECT_TRUE(d.observe(80, 2.0));  // 50 steps after
  d.reset_reference();
  EXPECT_FALSE(d.observe(90, 1.25));  // the new reference
  EXPECT_DOUBLE_EQ(d.reference(), 1.25);
}

// A cycle ends just as the load shifts: the first level after the reset is already past the
// trigger of the previous reference. Taking it as the new reference would hide the shift for
// good; the detector keeps the previous reference and fires (once the gap allows).
TEST(ShiftDetector, AShiftAsACycleEndsIsNotTakenAsTheReference) {
  ShiftDetector d({1.3, 1.1, 50});
  EXPECT_FALSE(d.observe(10, 1.1));   // reference 1.1
  d.reset_reference();                // a cycle ended
  EXPECT_FALSE(d.observe(20, 1.05));  // an ordinary new reference
  EXPECT_DOUBLE_EQ(d.reference(), 1.05);
  d.reset_reference();
  EXPECT_TRUE(d.observe(30, 2.0));  // 2.0 > 1.3 x 1.05: fires against 1.05
  EXPECT_DOUBLE_EQ(d.reference(), 1.05);
  d.reset_reference();               // the early cycle ended
  EXPECT_FALSE(d.observe(40, 2.0));  // still high, but within the gap: no firing ...
  EXPECT_DOUBLE_EQ(d.reference(), 1.05);
  EXPECT_TRUE(d.observe(80, 2.0));  // ... until 50 steps after the last one
  d.reset_reference();
  EXPECT_FALSE(d.observe(90, 1.2));  // not past 1.3 x 1.05: the new reference
  EXPECT_DOUBLE_EQ(d.reference(), 1.2);
}

TEST(ShiftDetector, RejectsBadConfig) {
  EXPECT_THROW(ShiftDetector({1.0, 1.0, 0}), InputError);
  EXPECT_THROW(ShiftDetector({1.3, 1.4, 0}), InputError);
  EXPECT_THROW(ShiftDetector({1.3, 1.1, -1}), InputError);
}

}  // namespace
}  // namespace swiftbalancer
