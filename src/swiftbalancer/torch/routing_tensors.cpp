#include "swiftbalancer/torch/routing_tensors.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer::torch_engine {

RoutingTensors::RoutingTensors(const Topology& topo, const Placement& initial, c10::Device device)
    : layers_(initial.layers()),
      slots_(initial.num_slots()),
      experts_(initial.experts()),
      max_replicas_(std::min(topo.ranks, initial.num_slots() - initial.experts() + 1)) {
  if (max_replicas_ < 1) throw InputError("the placement has more experts than slots");
  const auto cpu = at::TensorOptions().dtype(at::kLong);
  host_phy2log_ = at::empty({layers_, slots_}, cpu);
  host_log2phy_ = at::empty({layers_, experts_, max_replicas_}, cpu);
  host_count_ = at::empty({layers_, experts_}, cpu);
  shown_ = initial.data();
  for (int l = 0; l < layers_; ++l) fill_host(l, initial.layer(l));
  on_host_ = device.is_cpu();
  if (on_host_) {
    phy2log_ = host_phy2log_;
    log2phy_ = host_log2phy_;
    replica_count_ = host_count_;
    return;
  }
  phy2log_ = host_phy2log_.to(device, /*non_blocking=*/false, /*copy=*/true);
  log2phy_ = host_log2phy_.to(device, false, true);
  replica_count_ = host_count_.to(device, false, true);
}

void RoutingTensors::fill_host(int layer, std::span<const ExpertId> row) {
  std::int64_t* p2l =
      host_phy2log_.data_ptr<std::int64_t>() + static_cast<std::int64_t>(layer) * slots_;
  std::int64_t* l2p = host_log2phy_.data_ptr<std::int64_t>() +
                      static_cast<std::int64_t>(layer) * experts_ * max_replicas_;
  std::int64_t* cnt =
      host_count_.data_ptr<std::int64_t>() + static_cast<std::int64_t>(layer) * experts_;
  std::fill(l2p, l2p + static_cast<std::ptrdiff_t>(experts_) * max_replicas_, -1);
  std::fill(cnt, cnt + experts_, 0);
  for (int p = 0; p < slots_; ++p) {
    const ExpertId e = row[static_cast<std::size_t>(p)];
    p2l[p] = e;
    if (e < 0 || e >= experts_) throw InternalError("placement slot out of range in the tables");
    std::int64_t& c = cnt[e];
    if (c >= max_replicas_) throw InternalError("more replicas than the tables can hold");
    l2p[static_cast<std::ptrdiff_t>(e) * max_replicas_ + c++] = p;
  }
}

void RoutingTensors::upload(int layer) {
  phy2log_.select(0, layer).copy_(host_phy2log_.select(0, layer));
  log2phy_.select(0, layer).copy_(host_log2phy_.select(0, layer));
  replica_count_.select(0, layer).copy_(host_count_.select(0, layer));
}

int RoutingTensors::update(const Placement& in_service) {
  int changed = 0;
  for (int l = 0; l < layers_; ++l) {
    const std::span<const ExpertId> row = in_service.layer(l);
    ExpertId* shown =
        shown_.data() + static_cast<std::size_t>(l) * static_cast<std::size_t>(slots_);
    if (std::equal(row.begin(), row.end(), shown)) continue;
    std::copy(row.begin(), row.end(), shown);
    fill_host(l, row);
    if (!on_host_) upload(l);
    ++changed;
  }
  return changed;
}

at::Tensor RoutingTensors::route(int layer, const at::Tensor& ids, std::int64_t offset) const {
  if (layer < 0 || layer >= layers_ || offset < 0)
    throw InternalError("route: layer or offset out of range");
  if (!ids.defined() || !at::isIntegralType(ids.scalar_type(), /*includeBool=*/false))
    throw InputError("topk_ids must be an integer tensor; got " +
                     (ids.defined()
                          ? "torch." + std::string(c10::getDtypeNames(ids.scalar_type()).first)
                          : std::string("None")));
  if (ids.device() != phy2log_.device())
    throw InputError("topk_ids must be on the tables' device (" + phy2log_.device().str() +
                     "); got " + ids.device().str());
  if (!on_host_) {
    const at::Tensor e = ids.to(at::kLong);
    at::Tensor pick = at::arange(offset, offset + e.numel(), e.options()).view(e.sizes());
    pick.remainder_(replica_count_.select(0, layer).take(e));
    // One flat gather: log2phy[layer][e][r] sits at e * max_replicas + r of the layer's rows.
    return log2phy_.select(0, layer).take(pick.add_(e, max_replicas_));
  }
  const bool in_place = ids.scalar_type() == at::kLong && ids.is_contiguous();
  const at::Tensor e = in_place ? ids : ids.to(at::kLong).contiguous();
  at::Tensor out = at::empty(e.sizes(), e.options());
  const std::int64_t* in = e.data_ptr<std::int64_t>();
  std::int64_t* o = out.data_ptr<std::int64_t>();
  const std::int64_t* l2p = host_log2phy_.data_ptr<std::int64_t>() +
                            static_cast<std::int64_t>(layer) * experts_ * max_replicas_;
  const std::int64_t* cnt =
      host_count_.data_ptr<std::int64_t>() + static_cast<std::int64_t>(layer) * experts_;
  const std::int64_t n = e.numel();
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t x = in[i];
    if (x < 0 || x >= experts_)
      throw InputError("topk id " + std::to_string(x) + " out of range [0, " +
                       std::to_string(experts_) + ")");
    // Every expert has a replica in a valid placement, so the count is at least 1.
    o[i] = l2p[x * max_replicas_ + (i + offset) % cnt[x]];
  }
  return out;
}

}  // namespace swiftbalancer::torch_engine
