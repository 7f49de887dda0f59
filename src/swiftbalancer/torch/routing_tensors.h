// RoutingTensors: the placement in service as the tensors an engine's router reads, in the
// layout vLLM's EPLB state uses (int64, on the engine's device):
//   phy2log[L, P]                 the logical expert in each physical slot;
//   log2phy[L, E, max_replicas]   each expert's physical slots in ascending order, -1 padded;
//   replica_count[L, E]           how many of those there are.
// max_replicas = min(ranks, P - E + 1): a rank holds at most one replica of an expert.
//
// Tables are written in place, one layer's rows at that layer's commit, so their addresses never
// change (a captured CUDA graph keeps reading the right tables). On a device the rows are copied
// on the engine's current stream, after the expert store made that stream wait for the layer's
// installs: weights first, then the table. On the CPU the tables are the host rows themselves,
// written in place with no tensor operation (a commit step's cost on the serving thread).
//
// Thread-safety: the serving thread only.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"

namespace swiftbalancer::torch_engine {

class RoutingTensors {
 public:
  // Tables for `initial` (a valid placement for `topo`) on `device`.
  RoutingTensors(const Topology& topo, const Placement& initial, c10::Device device);

  const at::Tensor& phy2log() const { return phy2log_; }
  const at::Tensor& log2phy() const { return log2phy_; }
  const at::Tensor& replica_count() const { return replica_count_; }
  int max_replicas() const { return max_replicas_; }

  // Rewrites the rows of every layer whose slots differ from the tables'; returns how many.
  int update(const Placement& in_service);

  // Physical slots for logical top-k ids of `layer` (0 <= layer < layers; any shape, any integer
  // dtype, on the tables' device): the (token, k) pair at flat position i goes to replica
  // (i + offset) % count of its expert (offset >= 0), as swiftbalancer.torch.route_topk does, so
  // tokens spread evenly over replicas. Returns int64 shaped like `ids`. On the CPU a loop over
  // the host rows, each id checked against [0, experts) (InputError); on a device the same
  // tensor operations as route_topk, on the current stream with no host sync (ids unchecked:
  // checking would sync).
  at::Tensor route(int layer, const at::Tensor& ids, std::int64_t offset) const;

 private:
  void fill_host(int layer, std::span<const ExpertId> row);
  void upload(int layer);

  int layers_, slots_, experts_, max_replicas_;
  std::vector<ExpertId> shown_;  // [L][P]: what the tables hold
  // Host rows (pinned is not needed: commits are rare), copied into the device tables; on the
  // CPU they are the tables.
  at::Tensor host_phy2log_, host_log2phy_, host_count_;
  bool on_host_ = false;
  at::Tensor phy2log_, log2phy_, replica_count_;
};

}  // namespace swiftbalancer::torch_engine
