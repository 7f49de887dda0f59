#include "swiftbalancer/torch/torch_balancer.h"

#include <climits>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>

#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/status.h"
#include "swiftbalancer/policy/policy.h"

namespace swiftbalancer::torch_engine {
namespace {

Placement placement_of(const at::Tensor& phy2log, const Topology& topo) {
  if (!phy2log.defined() || phy2log.dim() != 2 || phy2log.size(0) <= 0 ||
      phy2log.size(1) != topo.num_slots())
    throw InputError("phy2log must be [layers, " + std::to_string(topo.num_slots()) + "]");
  if (at::isFloatingType(phy2log.scalar_type()) || phy2log.scalar_type() == at::kBool)
    throw InputError("phy2log must hold integer expert ids");
  if (phy2log.size(0) > INT32_MAX) throw InputError("phy2log has too many layers");
  const at::Tensor ids = phy2log.to(at::kCPU, at::kLong).contiguous();
  const std::int64_t* d = ids.data_ptr<std::int64_t>();
  std::vector<ExpertId> v(static_cast<std::size_t>(ids.numel()));
  std::int64_t max_id = -1;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (d[i] < 0 || d[i] > INT32_MAX)
      throw InputError("phy2log holds invalid expert id " + std::to_string(d[i]) + " at layer " +
                       std::to_string(i / static_cast<std::size_t>(topo.num_slots())) + " slot " +
                       std::to_string(i % static_cast<std::size_t>(topo.num_slots())));
    v[i] = static_cast<ExpertId>(d[i]);
    max_id = std::max(max_id, d[i]);
  }
  return Placement(static_cast<int>(phy2log.size(0)), topo.num_slots(),
                   static_cast<int>(max_id + 1), std::move(v));
}

std::string shape_text(c10::IntArrayRef shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// record() and record_step() accept exactly `shape` of any integer dtype (bool is not a count);
// `meaning` names the dimensions in the message.
void check_counts(const at::Tensor& counts, c10::IntArrayRef shape, const char* meaning) {
  if (counts.defined() && counts.sizes().equals(shape) &&
      at::isIntegralType(counts.scalar_type(), /*includeBool=*/false))
    return;
  std::string got = "None";
  if (counts.defined())
    got = "torch." + std::string(c10::getDtypeNames(counts.scalar_type()).first) + " " +
          shape_text(counts.sizes());
  throw InputError("counts must be an integer tensor " + shape_text(shape) + " (" + meaning +
                   "); got " + got);
}

// The first negative value of rows x slots counts of layers [first, ...), as an error naming
// its layer and slot; empty when there is none. A negative count is an engine bug: folded into
// the load it would hide the tokens of a replica elsewhere, or fail the decision later, far
// from its cause.
std::string negative_count(const std::int64_t* d, int first, int rows, int slots) {
  const std::int64_t n = static_cast<std::int64_t>(rows) * slots;
  for (std::int64_t i = 0; i < n; ++i)
    if (d[i] < 0)
      return "counts must not be negative: layer " + std::to_string(first + i / slots) +
             ", local slot " + std::to_string(i % slots) + " holds " + std::to_string(d[i]);
  return {};
}

}  // namespace

TorchBalancer::TorchBalancer(const Topology& topo, c10::intrusive_ptr<c10d::ProcessGroup> control,
                             c10::intrusive_ptr<c10d::ProcessGroup> weights,
                             const std::string& policy, const at::Tensor& phy2log,
                             std::vector<std::vector<at::Tensor>> experts, BalancerConfig config,
                             TorchBalancerOptions options)
    : topo_(topo) {
  if (!control) throw InputError("the control group must not be None");
  if (!weights) weights = control;
  if (control->getSize() != topo.ranks)
    throw InputError("the process group has " + std::to_string(control->getSize()) +
                     " ranks, the topology " + std::to_string(topo.ranks));
  rank_ = control->getRank();
  Placement initial = placement_of(phy2log, topo);
  // Before the tables are sized from it (at most one replica of an expert per rank) and before
  // the store or the groups are touched: a bad placement is the engine's input error.
  throw_if_error(validate_placement(initial, topo));
  layers_ = initial.layers();
  if (experts.size() != static_cast<std::size_t>(layers_))
    throw InputError("experts has " + std::to_string(experts.size()) + " layers, phy2log " +
                     std::to_string(layers_));
  store_ = std::make_unique<TorchExpertStore>(std::move(experts), topo.slots_per_rank);
  ProcessGroupTransportOptions topt;
  topt.max_ops_in_flight = options.max_ops_in_flight;
  topt.control_device = options.control_device;
  topt.weight_device = store_->device();
  transport_ =
      std::make_unique<ProcessGroupTransport>(std::move(control), std::move(weights), topt);
  transport_->set_stream(store_->side_stream());
  tables_ = std::make_unique<RoutingTensors>(topo, initial, store_->device());
  balancer_ = std::make_unique<Balancer>(topo, rank_, *transport_, make_policy(policy),
                                         std::move(initial), *store_, std::move(config));
}

TorchBalancer::~TorchBalancer() {
  balancer_.reset();
}

void TorchBalancer::check_layer(std::int64_t layer) const {
  if (layer < 0 || layer >= layers_)
    throw InputError("layer " + std::to_string(layer) + " out of range [0, " +
                     std::to_string(layers_) + ")");
}

void TorchBalancer::record(std::int64_t layer, const at::Tensor& counts) {
  check_layer(layer);
  check_counts(counts, {topo_.slots_per_rank}, "one per local slot");
  add_counts(static_cast<int>(layer), 1, counts);
}

at::Tensor TorchBalancer::route(std::int64_t layer, const at::Tensor& topk_ids) const {
  check_layer(layer);
  return tables_->route(static_cast<int>(layer), topk_ids, rank_);
}

void TorchBalancer::record_step(const at::Tensor& counts) {
  check_counts(counts, {layers_, topo_.slots_per_rank}, "layers x local slots");
  add_counts(0, layers_, counts);
}

void TorchBalancer::bind_counts(const at::Tensor& counts) {
  if (!counts.defined()) {
    bound_counts_ = at::Tensor();
    return;
  }
  check_counts(counts, {layers_, topo_.slots_per_rank}, "layers x local slots");
  if (!counts.device().is_cpu() && counts.device() != store_->device())
    throw InputError("bound counts must be on the CPU or the experts' device (" +
                     store_->device().str() + "); got " + counts.device().str());
  bound_counts_ = counts;
}

void TorchBalancer::add_counts(int first, int rows, const at::Tensor& counts) {
  const auto slots = static_cast<std::size_t>(topo_.slots_per_rank);
  if (!counts.device().is_cpu()) {
    if (counts.device() != store_->device())
      throw InputError("counts must be on the CPU or the experts' device (" +
                       store_->device().str() + "); got " + counts.device().str());
    if (!device_counts_.defined()) {
      device_counts_ = at::zeros({layers_, topo_.slots_per_rank},
                                 at::TensorOptions().dtype(at::kLong).device(counts.device()));
      // One view per layer, made once: a view made per call (narrow) is a tensor built on the
      // serving thread at every layer of every step.
      device_rows_.reserve(static_cast<std::size_t>(layers_));
      for (int l = 0; l < layers_; ++l) device_rows_.push_back(device_counts_.select(0, l));
    }
    // One kernel either way: a whole step (record_step, a bound tensor) or one layer's row
    // (record; with one layer, its [slots] broadcasts over the [1, slots] accumulator).
    if (rows == layers_)
      device_counts_.add_(counts);
    else
      device_rows_[static_cast<std::size_t>(first)].add_(counts);
    device_counts_dirty_ = true;
    return;
  }
  // int64 and contiguous: the rows are read in place, nothing allocated.
  const bool in_place = counts.scalar_type() == at::kLong && counts.is_contiguous();
  const at::Tensor converted = in_place ? at::Tensor() : counts.to(at::kLong).contiguous();
  const std::int64_t* d = (in_place ? counts : converted).data_ptr<std::int64_t>();
  if (std::string bad = negative_count(d, first, rows, topo_.slots_per_rank); !bad.empty())
    throw InputError(bad);  // nothing recorded
  for (int r = 0; r < rows; ++r)
    balancer_->record(first + r,
                      {d + static_cast<std::ptrdiff_t>(r) * topo_.slots_per_rank, slots});
}

void TorchBalancer::flush_device_counts() {
  if (!device_counts_dirty_) return;
  const at::Tensor host = device_counts_.to(at::kCPU);  // waits for the counting kernels
  device_counts_.zero_();
  device_counts_dirty_ = false;
  const std::int64_t* d = host.data_ptr<std::int64_t>();
  if (std::string bad = negative_count(d, 0, layers_, topo_.slots_per_rank); !bad.empty())
    throw InputError(bad + " (counted on " + device_counts_.device().str() +
                     " since the last hand-over)");
  for (int l = 0; l < layers_; ++l)
    balancer_->record(l, {d + static_cast<std::ptrdiff_t>(l) * topo_.slots_per_rank,
                          static_cast<std::size_t>(topo_.slots_per_rank)});
}

void TorchBalancer::before_forward() {
  balancer_->before_forward();
}

StepStats TorchBalancer::after_forward() {
  // Bad counts found here are dropped and reported after the step: the step itself runs on
  // every rank alike (its collectives pair with the other ranks'), so this rank stays in step.
  std::string dropped;
  if (bound_counts_.defined()) {
    try {
      add_counts(0, layers_, bound_counts_);
    } catch (const InputError& e) {
      dropped = std::string("the bound counts were dropped: ") + e.what();
    }
    // Host int64 rows are cleared in place without a tensor op: a cold dispatcher call costs
    // the serving thread more than the memset.
    if (bound_counts_.device().is_cpu() && bound_counts_.scalar_type() == at::kLong &&
        bound_counts_.is_contiguous())
      std::memset(bound_counts_.data_ptr<std::int64_t>(), 0,
                  static_cast<std::size_t>(bound_counts_.numel()) * sizeof(std::int64_t));
    else
      bound_counts_.zero_();
  }
  // Device counts reach the runtime only when it reads them or when a layer may commit: counts
  // recorded before a commit belong to the slot's old expert (each flush waits for the device).
  if (device_counts_dirty_ && (balancer_->reads_counts_next() || balancer_->may_commit_next())) {
    try {
      flush_device_counts();
    } catch (const InputError& e) {
      dropped += (dropped.empty() ? "" : "; ") + std::string("the device counts were dropped: ") +
                 e.what();
    }
  }
  StepStats s = balancer_->after_forward();
  if (s.layers_committed > 0) tables_->update(balancer_->placement());
  if (!dropped.empty())
    throw InputError(dropped + "; step " + std::to_string(s.step) + " ran without them");
  return s;
}

}  // namespace swiftbalancer::torch_engine
