#include "swiftbalancer/replay/runtime_model.h"

#include <algorithm>
#include <string>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer::replay {
namespace {

int window_intervals(int interval, int window_steps, double decay) {
  if (interval <= 0) throw InputError("interval must be positive");
  if (decay > 0.0) return 1;  // a decayed sum keeps no ring
  if (window_steps <= 0) throw InputError("window must be positive");
  if (window_steps % interval != 0)
    throw InputError("window (" + std::to_string(window_steps) +
                     " steps) must be a whole number of intervals (" + std::to_string(interval) +
                     " steps): the runtime's window holds whole intervals");
  return window_steps / interval;
}

}  // namespace

StepWindow::StepWindow(int layers, int experts, int interval, int window_steps, double decay)
    : decay_(decay),
      interval_load_(layers, experts),
      window_(layers, experts, window_intervals(interval, window_steps, decay), decay) {}

void StepWindow::add_step(std::span<const double> counts) {
  const int L = interval_load_.layers(), E = interval_load_.experts();
  if (counts.size() != interval_load_.data().size())
    throw InputError("step window: " + std::to_string(counts.size()) + " counts, expected " +
                     std::to_string(interval_load_.data().size()));
  for (int l = 0; l < L; ++l) {
    auto row = interval_load_.row(l);
    const double* in = counts.data() + static_cast<std::size_t>(l) * E;
    for (int e = 0; e < E; ++e) row[e] += in[e];
  }
}

void StepWindow::drop() {
  window_ = LoadWindow(interval_load_.layers(), interval_load_.experts(), window_.size(), decay_);
  for (int l = 0; l < interval_load_.layers(); ++l) {
    auto row = interval_load_.row(l);
    std::fill(row.begin(), row.end(), 0.0);
  }
}

void StepWindow::gather() {
  window_.push(interval_load_);
  for (int l = 0; l < interval_load_.layers(); ++l) {
    auto row = interval_load_.row(l);
    std::fill(row.begin(), row.end(), 0.0);
  }
}

std::int64_t StepWindow::bytes() const {
  // A sliding window keeps `size` interval loads and their sum; a decayed one only the sum.
  const std::int64_t matrices = (decay_ > 0.0 ? 1 : window_.size() + 1) + 1;
  return matrices * static_cast<std::int64_t>(interval_load_.data().size() * sizeof(double));
}

LinkWeights link_weights(const CostModel& cost) {
  cost.validate();
  return LinkWeights{1.0, cost.intra_gbps / cost.inter_gbps};
}

std::vector<Move> layer_moves(std::span<const ExpertId> old_layer,
                              std::span<const ExpertId> new_layer, int layer_index, int experts,
                              const Topology& topo, const LinkWeights& weights) {
  const LayerPlan plan = make_layer_plan(old_layer, new_layer, layer_index, experts, topo, weights);
  std::vector<Move> out;
  out.reserve(static_cast<std::size_t>(plan.remote_ops));
  for (const TransferOp& op : plan.ops)
    if (!op.is_local()) out.push_back(Move{op.expert, op.src_rank, op.dst_rank});
  return out;
}

}  // namespace swiftbalancer::replay
