// The modelled step time of replay: a small, documented cost model (docs/replay.md).
//
//   compute(step) = sum over layers of ( layer_us + token_us * max over ranks of rank load )
//     The busiest rank sets each layer's time: the all-to-all after the experts waits for it.
//     layer_us covers what every rank does alike (attention, dispatch/combine, weight reads).
//   transfer(set of layer changes) = max over ranks of max(send time, receive time), where a
//     rank's send (receive) time is its intra-node bytes / intra_gbps + inter-node bytes /
//     inter_gbps (links are full duplex; sends and receives of one rank overlap).
//   async: a batch of layers moves during one step's forward pass; only the part of its transfer
//     time beyond that step's compute is exposed (added to the step).
//   sync: everything moves at once while serving stops: policy time + transfer time is added.
//
// Which rank sends each copy is the runtime's transfer plan (make_layer_plan, through
// runtime_model.h's layer_moves): the model only times the copies it is given.
//
// CostModel is a plain value; TransferTimer is not thread-safe (one owner).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "swiftbalancer/core/topology.h"

namespace swiftbalancer::replay {

struct CostModel {
  double token_us = 0.25;     // per token-to-expert assignment on one rank, one layer
  double layer_us = 150.0;    // per layer per step, the same on every rank
  double expert_mb = 44.0;    // one expert's tensors (DeepSeek-V3 fp8: 3 x 7168 x 2048 bytes)
  double intra_gbps = 200.0;  // per rank, within a node (GB/s, 1e9 bytes)
  double inter_gbps = 40.0;   // per rank, across nodes
  // One shift check: an all-gather of one int64 per layer per rank (a few KB, latency-bound),
  // added to the step that runs it.
  double check_us = 30.0;
  // Throws InputError when a figure is negative or a bandwidth is not positive.
  void validate() const;
  double expert_bytes() const { return expert_mb * 1e6; }
};

// One cross-rank copy of an expert.
struct Move {
  std::int32_t expert = -1;
  std::int32_t src_rank = -1;
  std::int32_t dst_rank = -1;
};

// Accumulates per-rank traffic of a batch of moves and answers its transfer time.
class TransferTimer {
 public:
  TransferTimer(const Topology& topo, const CostModel& cost);
  void add(std::span<const Move> moves);
  void clear();
  double time_ms() const;
  std::int64_t moves() const { return moves_; }

 private:
  Topology topo_;
  CostModel cost_;
  // Per rank: bytes sent and received, intra- and inter-node (in expert units).
  std::vector<double> send_intra_, send_inter_, recv_intra_, recv_inter_;
  std::int64_t moves_ = 0;
};

}  // namespace swiftbalancer::replay
