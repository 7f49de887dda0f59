#include "swiftbalancer/demo/cuda/device_rank_experts.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "swiftbalancer/demo/cuda/expert_mlp_cuda.h"
#include "swiftbalancer/device/cuda_util.h"

namespace swiftbalancer::demo_cuda {

using device::check_cuda;

DeviceBuffer::DeviceBuffer(std::size_t bytes) {
  check_cuda(cudaMalloc(&ptr_, bytes == 0 ? 1 : bytes), "demo: cudaMalloc");
}

DeviceBuffer::~DeviceBuffer() {
  (void)cudaFree(ptr_);
}

EngineStream::EngineStream() {
  check_cuda(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "demo: cudaStreamCreate");
}

EngineStream::~EngineStream() {
  (void)cudaStreamSynchronize(s_);
  (void)cudaStreamDestroy(s_);
}

DeviceRankExperts::DeviceRankExperts(const DemoOptions& opt,
                                     const std::array<std::size_t, 3>& tensor_bytes)
    : mlp_(opt.mlp),
      L_(opt.workload.layers),
      S_(opt.slots_per_rank),
      expert_bytes_(tensor_bytes[0] + tensor_bytes[1] + tensor_bytes[2]),
      max_rows_(static_cast<std::size_t>(opt.ranks) * opt.workload.tokens_per_rank *
                opt.workload.topk),
      slot_mem_(expert_bytes_ * static_cast<std::size_t>(L_) * static_cast<std::size_t>(S_)),
      rows_(max_rows_ * sizeof(float) * static_cast<std::size_t>(mlp_.hidden)),
      slot_ids_(max_rows_ * sizeof(std::int32_t)),
      scratch_(max_rows_ * sizeof(float) * static_cast<std::size_t>(mlp_.ffn)),
      out_(max_rows_ * sizeof(float) * static_cast<std::size_t>(mlp_.hidden)),
      store_(std::make_unique<device::DeviceExpertStore>(L_, S_, engine_.get())) {}

void DeviceRankExperts::load(const CanonicalExperts& canonical, const Topology& topo,
                             const Placement& initial, int rank) {
  std::vector<std::byte> host(expert_bytes_ * static_cast<std::size_t>(L_) * S_);
  for (int l = 0; l < L_; ++l)
    for (int s = 0; s < S_; ++s) {
      const int e = initial.at(l, topo.slot_id(rank, s));
      std::byte* dst = host.data() + offset(l, s);
      std::vector<std::span<std::byte>> tensors;
      for (int t = 0; t < 3; ++t) {
        const auto src = canonical.tensor(l, e, t);
        std::copy(src.begin(), src.end(), dst);
        tensors.emplace_back(slot_mem_.as<std::byte>() + (dst - host.data()), src.size());
        dst += src.size();
      }
      store_->register_expert(l, s, std::move(tensors));
    }
  // On the engine stream: the store's first copy waits for it (DeviceExpertStore::stage).
  check_cuda(cudaMemcpyAsync(slot_mem_.as<std::byte>(), host.data(), host.size(),
                             cudaMemcpyHostToDevice, engine_.get()),
             "demo: upload experts");
  check_cuda(cudaStreamSynchronize(engine_.get()), "demo: upload experts");
}

void DeviceRankExperts::compute(int layer, std::span<const float> rows,
                                std::span<const std::int32_t> slots, std::span<float> out) {
  const std::size_t n = slots.size();
  if (n == 0) return;
  if (n > max_rows_) throw std::logic_error("demo: more rows than a rank can receive");
  const std::size_t row_bytes = n * sizeof(float) * static_cast<std::size_t>(mlp_.hidden);
  cudaStream_t s = engine_.get();
  check_cuda(cudaMemcpyAsync(rows_.as<float>(), rows.data(), row_bytes, cudaMemcpyHostToDevice, s),
             "demo: rows to the device");
  check_cuda(cudaMemcpyAsync(slot_ids_.as<std::int32_t>(), slots.data(), n * sizeof(std::int32_t),
                             cudaMemcpyHostToDevice, s),
             "demo: slots to the device");
  check_cuda(launch_expert_mlp(mlp_.hidden, mlp_.ffn, slot_mem_.as<std::byte>() + offset(layer, 0),
                               expert_bytes_, rows_.as<float>(), slot_ids_.as<std::int32_t>(),
                               static_cast<int>(n), scratch_.as<float>(), out_.as<float>(), s),
             "demo: expert MLP kernel");
  check_cuda(cudaMemcpyAsync(out.data(), out_.as<float>(), row_bytes, cudaMemcpyDeviceToHost, s),
             "demo: results to the host");
  // The combine runs on the host: wait for this stream (never the whole device).
  check_cuda(cudaStreamSynchronize(s), "demo: expert MLP");
}

}  // namespace swiftbalancer::demo_cuda
