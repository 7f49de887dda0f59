// TorchBalancer: the whole asynchronous runtime for a torch engine, one object per rank: the
// engine's process groups as the transport (ProcessGroupTransport), its expert tensors as the
// store (TorchExpertStore), and the placement in service as routing tensors the router reads
// (RoutingTensors). The schedule and the mover protocol are the runtime's own (Balancer); this
// class only adapts tensors to it.
//
//   TorchBalancer b(topo, control_group, weight_group, "swift", phy2log, experts, config);
//   every step, on the serving thread:
//     b.before_forward();
//     for each MoE layer: route with b.log2phy() / b.replica_count(); dispatch;
//                         b.record(layer, counts_per_local_slot);  expert MLP; combine
//     StepStats s = b.after_forward();
//   or, one call per step instead of one per layer: the layers write their counts into one
//   [layers, slots_per_rank] tensor (plain tensor ops, zeroed each step), and
//     b.record_step(step_counts);  right before b.after_forward()
//   or, no call at all: the engine binds that tensor once (as vLLM keeps its expert-load
//   tensor), its layers add into it, and every after_forward() takes it and zeroes it in place:
//     b.bind_counts(step_counts);  once, before the first step
//
// Counts: a CPU tensor is added into the recorder at once (allocation-free for contiguous
// int64); counts on a device are added into a device [layers, slots] int64 accumulator (one
// kernel per call, no sync, safe in a captured graph) that is copied to the host only before a
// step at which the runtime reads counts (a gather or a shift check) or may commit a layer (the
// counts until a commit belong to the old placement). record() and record_step()
// add into the same counts, so an engine may mix them within a step; a bound tensor is taken as
// a record_step() at the start of after_forward().
//
// Ownership: the groups and tensors are shared with the engine (reference counted). Threading:
// as Balancer (one serving thread; counters() and metrics from any thread). No Python here.
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <memory>
#include <string>
#include <vector>

#include "swiftbalancer/runtime/balancer.h"
#include "swiftbalancer/torch/process_group_transport.h"
#include "swiftbalancer/torch/routing_tensors.h"
#include "swiftbalancer/torch/torch_expert_store.h"

namespace swiftbalancer::torch_engine {

struct TorchBalancerOptions {
  int max_ops_in_flight = 512;
  // Where the control group's collectives take tensors: CPU (gloo) unless the only group is
  // an accelerator's (then the experts' device).
  c10::Device control_device = c10::Device(c10::kCPU);
};

class TorchBalancer {
 public:
  // phy2log: integer tensor [layers, ranks * slots_per_rank] (any device), a valid placement.
  // experts[layer]: this rank's tensors of that layer, leading dimension slots_per_rank.
  // Throws InputError naming the problem.
  TorchBalancer(const Topology& topo, c10::intrusive_ptr<c10d::ProcessGroup> control,
                c10::intrusive_ptr<c10d::ProcessGroup> weights, const std::string& policy,
                const at::Tensor& phy2log, std::vector<std::vector<at::Tensor>> experts,
                BalancerConfig config, TorchBalancerOptions options = {});
  ~TorchBalancer();
  TorchBalancer(const TorchBalancer&) = delete;
  TorchBalancer& operator=(const TorchBalancer&) = delete;

  // counts: integer tensor [slots_per_rank], this rank's tokens per local slot for `layer`.
  // Counts are never negative: on the CPU a negative one is an InputError naming its layer and
  // slot, and nothing of the call is recorded. A bound tensor's or the device accumulator's
  // (checked when copied to the host) are dropped whole instead and after_forward() throws that
  // InputError once the step is done on this rank like on the others.
  void record(std::int64_t layer, const at::Tensor& counts);
  // counts: integer tensor [layers, slots_per_rank], one step's record() of every layer at once.
  void record_step(const at::Tensor& counts);
  // counts: integer tensor [layers, slots_per_rank] on the CPU or the experts' device, kept
  // (shared with the engine) until another bind_counts(); an undefined tensor unbinds. Every
  // after_forward() then adds it as record_step() would and zeroes it (in place: on a device, a
  // kernel on the current stream, no sync), so the engine's layers only add into it.
  void bind_counts(const at::Tensor& counts);
  void before_forward();
  StepStats after_forward();

  // Physical slots for logical top-k ids of `layer`, spread over replicas starting at this
  // rank's offset (RoutingTensors::route). Throws InputError for a layer out of range, ids that
  // are not integers or not on the tables' device, and (CPU) an id out of range.
  at::Tensor route(std::int64_t layer, const at::Tensor& topk_ids) const;

  const at::Tensor& phy2log() const { return tables_->phy2log(); }
  const at::Tensor& log2phy() const { return tables_->log2phy(); }
  const at::Tensor& replica_count() const { return tables_->replica_count(); }
  const Balancer& balancer() const { return *balancer_; }
  const Topology& topology() const { return topo_; }
  int rank() const { return rank_; }
  int layers() const { return layers_; }
  c10::Device device() const { return store_->device(); }
  std::string transport_name() const { return transport_->name(); }

 private:
  // Adds validated counts of layers [first, first + rows): `counts` holds rows x slots_per_rank
  // values in layer order ([slots_per_rank] when rows is 1).
  void add_counts(int first, int rows, const at::Tensor& counts);
  void check_layer(std::int64_t layer) const;  // InputError unless 0 <= layer < layers
  void flush_device_counts();

  Topology topo_;
  int rank_ = 0;
  int layers_ = 0;
  std::unique_ptr<TorchExpertStore> store_;
  std::unique_ptr<ProcessGroupTransport> transport_;
  std::unique_ptr<RoutingTensors> tables_;
  at::Tensor bound_counts_;   // bind_counts(): the engine's [layers, slots] tensor, or undefined
  at::Tensor device_counts_;  // [layers, slots] int64 on the experts' device, when used
  std::vector<at::Tensor> device_rows_;  // device_counts_'s rows, as views made once
  bool device_counts_dirty_ = false;
  std::unique_ptr<Balancer> balancer_;  // last: destroyed first (it uses the others)
};

}  // namespace swiftbalancer::torch_engine
