// One launch for all layers of a step (issue 19, item 5): the layout's index arithmetic (runs
// without a device: the kernel uses the same function), and on a GPU, add_step on a dense and
// on a padded [layers][slots] array against one add_counts per layer, on random counts.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <vector>

#include "device/device_support.h"
#include "swiftbalancer/device/device_recorder.h"
#include "swiftbalancer/device/step_counts_layout.h"

namespace swiftbalancer::device {
namespace {

using namespace std::chrono_literals;
using swiftbalancer::testing::DeviceBytes;
using swiftbalancer::testing::Stream;

constexpr int kLayers = 58, kSlots = 9, kPadded = 16, kSteps = 5;

TEST(StepCountsLayout, DenseRowsMapOneToOne) {
  const StepCountsLayout dense{kLayers, kSlots, 0};
  ASSERT_TRUE(dense.check().ok());
  EXPECT_EQ(dense.stride(), kSlots);
  EXPECT_EQ(dense.cells(), kLayers * kSlots);
  EXPECT_EQ(dense.extent(), kLayers * kSlots);
  for (std::int64_t i = 0; i < dense.cells(); ++i)
    ASSERT_EQ(step_source_index(i, kSlots, dense.stride()), i);
}

TEST(StepCountsLayout, PaddedRowsSkipThePadding) {
  const StepCountsLayout padded{kLayers, kSlots, kPadded};
  ASSERT_TRUE(padded.check().ok());
  EXPECT_EQ(padded.extent(), (kLayers - 1) * kPadded + kSlots);
  // Counter cell (layer 3, slot 4) reads counts[3 * 16 + 4]; the last cell the last row's end.
  EXPECT_EQ(step_source_index(3 * kSlots + 4, kSlots, kPadded), 3 * kPadded + 4);
  EXPECT_EQ(step_source_index(padded.cells() - 1, kSlots, kPadded), padded.extent() - 1);
  // Every source index is inside a row, and no two cells read the same element.
  std::vector<int> reads(static_cast<std::size_t>(padded.extent()), 0);
  for (std::int64_t i = 0; i < padded.cells(); ++i) {
    const std::int64_t src = step_source_index(i, kSlots, kPadded);
    ASSERT_GE(src, 0);
    ASSERT_LT(src, padded.extent());
    EXPECT_LT(src % kPadded, kSlots) << "cell " << i << " reads padding";
    ++reads[static_cast<std::size_t>(src)];
  }
  for (int r : reads) EXPECT_LE(r, 1);
}

TEST(StepCountsLayout, BadLayoutsAreNamed) {
  const Status short_rows = StepCountsLayout{kLayers, kSlots, kSlots - 1}.check();
  EXPECT_EQ(short_rows.code(), StatusCode::kInvalidInput);
  EXPECT_NE(short_rows.message().find("row stride 8"), std::string::npos) << short_rows.message();
  EXPECT_EQ(StepCountsLayout({0, kSlots, 0}).check().code(), StatusCode::kInvalidInput);
  EXPECT_EQ(StepCountsLayout({kLayers, 0, 0}).check().code(), StatusCode::kInvalidInput);
}

std::vector<std::int64_t> take(DeviceRecorder& rec, cudaStream_t stream) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(kLayers) * kSlots);
  EXPECT_TRUE(rec.start_gather(stream).ok());
  EXPECT_TRUE(rec.wait_gather(Clock::now() + 10s).ok());
  EXPECT_EQ(rec.take_interval(out), 0);
  return out;
}

TEST(DeviceRecorder, OneLaunchPerStepCountsAsOneLaunchPerLayer) {
  SKIP_WITHOUT_DEVICE();
  std::mt19937 rng(19);
  std::uniform_int_distribution<std::int32_t> count(0, 5000);
  Stream stream;
  DeviceRecorder per_layer(kLayers, kSlots), dense(kLayers, kSlots), padded(kLayers, kSlots),
      wide(kLayers, kSlots);
  std::vector<std::int64_t> want(static_cast<std::size_t>(kLayers) * kSlots, 0);
  std::vector<std::unique_ptr<DeviceBytes>> keep;  // every step's arrays live until the gather
  for (int step = 0; step < kSteps; ++step) {
    std::vector<std::int32_t> d(static_cast<std::size_t>(kLayers) * kSlots);
    std::vector<std::int32_t> p(static_cast<std::size_t>((kLayers - 1) * kPadded + kSlots), -7777);
    std::vector<std::int64_t> w(d.size());
    for (int l = 0; l < kLayers; ++l)
      for (int s = 0; s < kSlots; ++s) {
        const std::int32_t c = count(rng);
        d[static_cast<std::size_t>(l * kSlots + s)] = c;
        p[static_cast<std::size_t>(l * kPadded + s)] = c;  // padding stays -7777: never added
        w[static_cast<std::size_t>(l * kSlots + s)] = c;
        want[static_cast<std::size_t>(l * kSlots + s)] += c;
      }
    auto& dd = *keep.emplace_back(std::make_unique<DeviceBytes>(d.size() * sizeof(d[0])));
    auto& pd = *keep.emplace_back(std::make_unique<DeviceBytes>(p.size() * sizeof(p[0])));
    auto& wd = *keep.emplace_back(std::make_unique<DeviceBytes>(w.size() * sizeof(w[0])));
    dd.upload(d.data());
    pd.upload(p.data());
    wd.upload(w.data());
    for (int l = 0; l < kLayers; ++l)
      per_layer.add_counts(l, dd.as<std::int32_t>() + l * kSlots, stream.s);
    dense.add_step(dd.as<std::int32_t>(), stream.s);
    padded.add_step(pd.as<std::int32_t>(), stream.s, kPadded);
    wide.add_step(wd.as<std::int64_t>(), stream.s);
  }
  const auto got_per_layer = take(per_layer, stream.s);
  EXPECT_EQ(got_per_layer, want);
  EXPECT_EQ(take(dense, stream.s), got_per_layer);
  EXPECT_EQ(take(padded, stream.s), got_per_layer);
  EXPECT_EQ(take(wide, stream.s), got_per_layer);
  EXPECT_THROW(dense.add_step(keep[0]->as<std::int32_t>(), stream.s, kSlots - 1), InputError);
}

}  // namespace
}  // namespace swiftbalancer::device
