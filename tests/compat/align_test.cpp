// compat::align_to_current: exact small cases and invariants on random placements.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "swiftbalancer/compat/align.h"
#include "swiftbalancer/core/placement.h"

namespace swiftbalancer::compat {
namespace {

std::vector<ExpertId> aligned(const Topology& topo, std::vector<ExpertId> cur,
                              std::vector<ExpertId> next, int experts) {
  const int slots = topo.num_slots();
  const Placement c(1, slots, experts, std::move(cur));
  Placement n(1, slots, experts, std::move(next));
  align_to_current(c, n, topo);
  return n.data();
}

// The Python test's case (tests/python/test_library.py): rank 0 keeps 0 and 2, takes 4 into the
// slot 1 frees; rank 1 keeps 3 and 5 and takes 1 into slot 1.
TEST(Align, KeepsStayingExpertsInTheirSlots) {
  const Topology topo = Topology::make(2, 3);
  EXPECT_EQ(aligned(topo, {0, 1, 2, 3, 4, 5}, {4, 2, 0, 1, 5, 3}, 6),
            (std::vector<ExpertId>{0, 4, 2, 3, 1, 5}));
}

// Two newcomers fill the freed slots in their order in `next`: rank 0 keeps only 1 (slot 1);
// 5 then 4 (their order in next) go to slots 0 and 2.
TEST(Align, NewcomersFillFreedSlotsInTheirOrder) {
  const Topology topo = Topology::make(2, 3);
  EXPECT_EQ(aligned(topo, {0, 1, 2, 3, 4, 5}, {5, 1, 4, 3, 0, 2}, 6),
            (std::vector<ExpertId>{5, 1, 4, 3, 0, 2}));
  // The same sets in another order: rank 1's newcomers now come as 2, 0.
  EXPECT_EQ(aligned(topo, {0, 1, 2, 3, 4, 5}, {1, 5, 4, 2, 0, 3}, 6),
            (std::vector<ExpertId>{5, 1, 4, 3, 2, 0}));
}

// An unchanged set on every rank in another order comes back as the current placement.
TEST(Align, PermutedSameSetsComeBackUnchanged) {
  const Topology topo = Topology::make(3, 2);
  EXPECT_EQ(aligned(topo, {0, 1, 2, 3, 4, 0}, {1, 0, 3, 2, 0, 4}, 5),
            (std::vector<ExpertId>{0, 1, 2, 3, 4, 0}));
}

// Ids held twice by a rank (engines' maps, not valid placements) and -1 (an empty slot) are ids
// like any other: min(old, new) of a repeated id keep their slots. (The former code treated a
// matched -1 as a freed slot and read past the rank's slots.)
TEST(Align, RepeatedIdsAndEmptySlots) {
  const Topology topo = Topology::make(1, 4);
  EXPECT_EQ(aligned(topo, {2, 0, 2, 1}, {0, 2, 3, 3}, 4), (std::vector<ExpertId>{2, 0, 3, 3}));
  EXPECT_EQ(aligned(topo, {-1, 0, 1, -1}, {-1, 2, 1, 3}, 4), (std::vector<ExpertId>{-1, 2, 1, 3}));
  EXPECT_EQ(aligned(Topology::make(1, 2), {-1, 0}, {-1, 1}, 2), (std::vector<ExpertId>{-1, 1}));
}

TEST(Align, ShapesMustAgree) {
  const Topology topo = Topology::make(2, 2);
  const Placement cur(1, 4, 3, {0, 1, 2, 0});
  Placement two_layers(2, 4, 3, {0, 1, 2, 0, 0, 1, 2, 0});
  EXPECT_THROW(align_to_current(cur, two_layers, topo), InputError);
  Placement wide(1, 6, 3, {0, 1, 2, 0, 1, 2});
  EXPECT_THROW(align_to_current(cur, wide, topo), InputError);
  Placement same = cur;
  try {
    align_to_current(cur, same, Topology::make(3, 2));
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("slots per layer"), std::string::npos) << e.what();
  }
}

// A random valid placement: every expert once, the rest random replicas on ranks that lack them.
Placement random_placement(std::mt19937& rng, const Topology& topo, int layers, int experts) {
  Placement p(layers, topo.num_slots(), experts);
  const int S = topo.slots_per_rank;
  for (int l = 0; l < layers; ++l) {
    for (;;) {
      std::vector<ExpertId> row(topo.num_slots());
      for (int i = 0; i < topo.num_slots(); ++i)
        row[i] = i < experts ? i : static_cast<ExpertId>(rng() % experts);
      std::shuffle(row.begin(), row.end(), rng);
      bool ok = true;
      for (int r = 0; r < topo.ranks && ok; ++r) {
        std::vector<ExpertId> seg(row.begin() + r * S, row.begin() + (r + 1) * S);
        std::sort(seg.begin(), seg.end());
        ok = std::adjacent_find(seg.begin(), seg.end()) == seg.end();
      }
      if (!ok) continue;
      std::copy(row.begin(), row.end(), p.layer(l).begin());
      break;
    }
  }
  return p;
}

// For every rank: the multiset of ids is unchanged; every expert held both before and after
// sits in its old slot; validity is kept; aligning twice changes nothing.
TEST(Align, InvariantsOnRandomPlacements) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int ranks = 1 + static_cast<int>(rng() % 6), S = 1 + static_cast<int>(rng() % 6);
    const Topology topo = Topology::make(ranks, S);
    const int experts = std::max(S, topo.num_slots() - static_cast<int>(rng() % (S + 1)));
    const Placement cur = random_placement(rng, topo, 2, experts);
    const Placement next = random_placement(rng, topo, 2, experts);
    Placement got = next;
    align_to_current(cur, got, topo);
    ASSERT_TRUE(validate_placement(got, topo).ok()) << "trial " << trial;
    for (int l = 0; l < 2; ++l)
      for (int r = 0; r < ranks; ++r) {
        const auto o = cur.layer(l).subspan(r * S, S), n = next.layer(l).subspan(r * S, S);
        const auto g = got.layer(l).subspan(r * S, S);
        std::vector<ExpertId> a(n.begin(), n.end()), b(g.begin(), g.end());
        std::sort(a.begin(), a.end());
        std::sort(b.begin(), b.end());
        EXPECT_EQ(a, b) << "trial " << trial << " layer " << l << " rank " << r;
        for (int s = 0; s < S; ++s) {
          if (std::find(n.begin(), n.end(), o[s]) != n.end()) {
            EXPECT_EQ(g[s], o[s]) << "trial " << trial << " layer " << l << " rank " << r;
          }
        }
      }
    Placement again = got;
    align_to_current(cur, again, topo);
    EXPECT_EQ(again, got) << "trial " << trial;
  }
}

}  // namespace
}  // namespace swiftbalancer::compat
