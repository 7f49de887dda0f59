#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "swiftbalancer/stats/recorder.h"
#include "swiftbalancer/stats/window.h"

namespace swiftbalancer {
namespace {

TEST(Recorder, AccumulatesRepeatedLayerRunsAndClears) {
  Recorder rec(2, 3);
  const std::vector<std::int64_t> a = {1, 2, 3}, b = {10, 0, 5};
  rec.record(1, a);
  rec.record(1, b);  // the layer runs twice in one step (MTP): counts add up
  rec.record(0, 2, 7);
  EXPECT_EQ(std::vector<std::int64_t>(rec.layer(1).begin(), rec.layer(1).end()),
            (std::vector<std::int64_t>{11, 2, 8}));
  EXPECT_EQ(std::vector<std::int64_t>(rec.all().begin(), rec.all().end()),
            (std::vector<std::int64_t>{0, 0, 7, 11, 2, 8}));
  rec.clear_layer(1);
  EXPECT_EQ(rec.layer(1)[0], 0);
  EXPECT_EQ(rec.layer(0)[2], 7);
  rec.clear();
  EXPECT_EQ(rec.layer(0)[2], 0);
}

TEST(Recorder, CheckedRecordRejectsBadInput) {
  Recorder rec(2, 3);
  const std::vector<std::int64_t> two = {1, 2}, three = {1, 2, 3};
  EXPECT_THROW(rec.record_checked(0, two), InputError);
  EXPECT_THROW(rec.record_checked(2, three), InputError);
  EXPECT_THROW(Recorder(0, 3), InputError);
}

TEST(Fold, HandWorkedTwoRanks) {
  // 2 ranks x 2 slots, 3 experts, 1 layer: slots hold experts [0, 1 | 2, 0].
  const Topology topo = Topology::make(2, 2);
  const Placement pl(1, 4, 3, {0, 1, 2, 0});
  // rank 0 block then rank 1 block.
  const std::vector<std::int64_t> gathered = {5, 3, 4, 6};
  const LoadMatrix load = fold_slot_counts(gathered, pl, topo);
  EXPECT_EQ(load.data(), (std::vector<double>{11, 3, 4}));
}

TEST(Fold, LayoutIsRankMajorOverLayers) {
  const Topology topo = Topology::make(2, 1);
  const Placement pl(2, 2, 2, {0, 1, 1, 0});
  // rank 0: layer0 slot0, layer1 slot0; rank 1: same.
  const std::vector<std::int64_t> gathered = {1, 2, 30, 40};
  const LoadMatrix load = fold_slot_counts(gathered, pl, topo);
  EXPECT_EQ(load.data(), (std::vector<double>{1, 30, 40, 2}));
  EXPECT_THROW(fold_slot_counts(std::vector<std::int64_t>(3), pl, topo), InputError);
}

TEST(Fold, TotalsArePreservedOnRandomInput) {
  std::mt19937 rng(7);
  const Topology topo = Topology::make(4, 5);
  const Placement pl = contiguous_placement(topo, 3, 16);
  std::vector<std::int64_t> gathered(3 * 20);
  std::int64_t total = 0;
  for (auto& v : gathered) total += (v = rng() % 100);
  const LoadMatrix load = fold_slot_counts(gathered, pl, topo);
  double sum = 0;
  for (double v : load.data()) sum += v;
  EXPECT_EQ(sum, static_cast<double>(total));
}

TEST(LoadWindow, SlidingSumDropsTheOldest) {
  LoadWindow w(1, 2, 2);
  w.push(LoadMatrix(1, 2, {1, 2}));
  EXPECT_EQ(w.sum().data(), (std::vector<double>{1, 2}));
  w.push(LoadMatrix(1, 2, {10, 20}));
  EXPECT_EQ(w.sum().data(), (std::vector<double>{11, 22}));
  w.push(LoadMatrix(1, 2, {100, 200}));
  EXPECT_EQ(w.sum().data(), (std::vector<double>{110, 220}));
  EXPECT_EQ(w.filled(), 2);
  EXPECT_THROW(w.push(LoadMatrix(1, 3)), InputError);
}

TEST(LoadWindow, DecayedSum) {
  LoadWindow w(1, 1, 1, 0.5);
  w.push(LoadMatrix(1, 1, {8}));
  w.push(LoadMatrix(1, 1, {4}));
  EXPECT_EQ(w.sum().at(0, 0), 8.0);
  EXPECT_THROW(LoadWindow(1, 1, 1, 1.0), InputError);
  EXPECT_THROW(LoadWindow(1, 1, 0), InputError);
}

}  // namespace
}  // namespace swiftbalancer
