#include "py_balancer.h"

#include <algorithm>
#include <climits>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer::python {
namespace {

Placement initial_placement(const py::array& initial, const Topology& topo) {
  if (initial.ndim() != 2 || initial.shape(1) != topo.num_slots() || initial.shape(0) <= 0)
    throw InputError("initial must be [layers][" + std::to_string(topo.num_slots()) + "]");
  const char kind = initial.dtype().kind();
  if (kind != 'i' && kind != 'u') throw InputError("initial must hold integer expert ids");
  auto ids = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(initial);
  std::vector<ExpertId> v(static_cast<std::size_t>(ids.size()));
  std::int64_t max_id = -1;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::int64_t e = ids.data()[i];
    if (e < 0 || e > INT32_MAX)
      throw InputError("initial holds invalid expert id " + std::to_string(e));
    v[i] = static_cast<ExpertId>(e);
    max_id = std::max(max_id, e);
  }
  return Placement(static_cast<int>(initial.shape(0)), topo.num_slots(),
                   static_cast<int>(max_id + 1), std::move(v));
}

}  // namespace

PyBalancer::PyBalancer(std::shared_ptr<InProcessWorld> world, const Topology& topo, int rank,
                       const std::string& policy, const py::array& initial,
                       const BalancerConfig& cfg)
    : world_(std::move(world)), topo_(topo) {
  if (!world_) throw InputError("world must not be None");
  if (world_->size() != topo.ranks)
    throw InputError("the world has " + std::to_string(world_->size()) + " ranks, the topology " +
                     std::to_string(topo.ranks));
  Placement p = initial_placement(initial, topo);
  transport_ = world_->transport(rank);
  std::shared_ptr<const Policy> pol = make_policy(policy);
  balancer_ =
      std::make_unique<Balancer>(topo, rank, *transport_, std::move(pol), std::move(p), cfg);
}

PyBalancer::~PyBalancer() {
  py::gil_scoped_release nogil;  // the destructor waits for a running policy
  balancer_.reset();
}

void PyBalancer::register_expert(int layer, int slot, std::vector<py::array> tensors) {
  std::vector<std::span<std::byte>> spans;
  for (py::array& a : tensors) {
    if (!(a.flags() & py::array::c_style) || !a.writeable())
      throw InputError("expert buffers must be writeable C-contiguous arrays");
    spans.emplace_back(static_cast<std::byte*>(a.mutable_data()),
                       static_cast<std::size_t>(a.nbytes()));
  }
  balancer_->register_expert(layer, slot, spans);
  for (const py::array& a : tensors) keep_.push_back(a);
}

void PyBalancer::record(int layer, py::handle counts_obj) {
  if (layer < 0 || layer >= balancer_->placement().layers())
    throw InputError("layer " + std::to_string(layer) + " out of range");
  py::array a = py::array::ensure(counts_obj);
  if (!a || (a.dtype().kind() != 'i' && a.dtype().kind() != 'u') || a.ndim() != 1 ||
      a.shape(0) != topo_.slots_per_rank)
    throw InputError("counts must be integers, one per local slot (" +
                     std::to_string(topo_.slots_per_rank) + ")");
  auto c = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
  balancer_->record(layer, {c.data(), static_cast<std::size_t>(c.size())});
}

void PyBalancer::before_forward() {
  py::gil_scoped_release nogil;
  balancer_->before_forward();
}

StepStats PyBalancer::after_forward() {
  py::gil_scoped_release nogil;
  return balancer_->after_forward();
}

const RoutingTable& PyBalancer::table(int layer) const {
  if (layer < 0 || layer >= balancer_->placement().layers())
    throw InputError("layer " + std::to_string(layer) + " out of range");
  return balancer_->routing(layer);
}

py::array_t<std::int64_t> PyBalancer::placement() const {
  const Placement& p = balancer_->placement();
  py::array_t<std::int64_t> out(
      {static_cast<py::ssize_t>(p.layers()), static_cast<py::ssize_t>(p.num_slots())});
  std::copy(p.data().begin(), p.data().end(), out.mutable_data());
  return out;
}

BalancerCounters PyBalancer::counters() const {
  // Without the GIL: the counters' lock may be held by the worker while it calls a Python log
  // sink, which takes the GIL.
  py::gil_scoped_release nogil;
  return balancer_->counters();
}

}  // namespace swiftbalancer::python
