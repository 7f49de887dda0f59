#include "swiftbalancer/demo/cuda/demo_cuda.h"

#include <cuda_runtime_api.h>

#include <memory>
#include <vector>

#include "swiftbalancer/demo/cuda/expert_mlp_cuda.h"
#include "swiftbalancer/device/cuda_util.h"
#include "swiftbalancer/device/device_expert_store.h"
#include "swiftbalancer/device/single_gpu_transport.h"
#include "swiftbalancer/transport/inprocess_transport.h"

namespace swiftbalancer::demo_cuda {
namespace {

using device::check_cuda;

// Device memory of `bytes` bytes on the current device, freed on destruction.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes) {
    check_cuda(cudaMalloc(&ptr_, bytes == 0 ? 1 : bytes), "demo: cudaMalloc");
  }
  ~DeviceBuffer() { (void)cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
};

// The engine's stream of one rank (its forward), synchronised and destroyed last.
class EngineStream {
 public:
  EngineStream() {
    check_cuda(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "demo: cudaStreamCreate");
  }
  ~EngineStream() {
    (void)cudaStreamSynchronize(s_);
    (void)cudaStreamDestroy(s_);
  }
  EngineStream(const EngineStream&) = delete;
  EngineStream& operator=(const EngineStream&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

// One rank's experts on the GPU: slot memory [layer][local slot][expert bytes] (an expert's
// tensors back to back, as expert_mlp_cuda.h reads them), registered with a DeviceExpertStore
// that the balancer writes on commit; the MLP of a layer's received rows in one launch pair on
// the engine stream. Members are destroyed in reverse order: the store (it waits for its side
// stream) before the slot memory, the engine stream last.
class DeviceRankExperts final : public RankExperts {
 public:
  DeviceRankExperts(const DemoOptions& opt, const std::array<std::size_t, 3>& tensor_bytes)
      : mlp_(opt.mlp),
        L_(opt.workload.layers),
        S_(opt.slots_per_rank),
        expert_bytes_(tensor_bytes[0] + tensor_bytes[1] + tensor_bytes[2]),
        // A rank receives at most every (token, k) of every rank in one layer.
        max_rows_(static_cast<std::size_t>(opt.ranks) * opt.workload.tokens_per_rank *
                  opt.workload.topk),
        slot_mem_(expert_bytes_ * static_cast<std::size_t>(L_) * static_cast<std::size_t>(S_)),
        rows_(max_rows_ * sizeof(float) * static_cast<std::size_t>(mlp_.hidden)),
        slot_ids_(max_rows_ * sizeof(std::int32_t)),
        scratch_(max_rows_ * sizeof(float) * static_cast<std::size_t>(mlp_.ffn)),
        out_(max_rows_ * sizeof(float) * static_cast<std::size_t>(mlp_.hidden)),
        store_(std::make_unique<device::DeviceExpertStore>(L_, S_, engine_.get())) {}

  cudaStream_t side_stream() const { return store_->side_stream(); }

  void load(const CanonicalExperts& canonical, const Topology& topo, const Placement& initial,
            int rank) override {
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

  ExpertStore& store() override { return *store_; }

  void compute(int layer, std::span<const float> rows, std::span<const std::int32_t> slots,
               std::span<float> out) override {
    const std::size_t n = slots.size();
    if (n == 0) return;
    if (n > max_rows_) throw std::logic_error("demo: more rows than a rank can receive");
    const std::size_t row_bytes = n * sizeof(float) * static_cast<std::size_t>(mlp_.hidden);
    cudaStream_t s = engine_.get();
    check_cuda(
        cudaMemcpyAsync(rows_.as<float>(), rows.data(), row_bytes, cudaMemcpyHostToDevice, s),
        "demo: rows to the device");
    check_cuda(cudaMemcpyAsync(slot_ids_.as<std::int32_t>(), slots.data(), n * sizeof(std::int32_t),
                               cudaMemcpyHostToDevice, s),
               "demo: slots to the device");
    check_cuda(
        launch_expert_mlp(mlp_.hidden, mlp_.ffn, slot_mem_.as<std::byte>() + offset(layer, 0),
                          expert_bytes_, rows_.as<float>(), slot_ids_.as<std::int32_t>(),
                          static_cast<int>(n), scratch_.as<float>(), out_.as<float>(), s),
        "demo: expert MLP kernel");
    check_cuda(cudaMemcpyAsync(out.data(), out_.as<float>(), row_bytes, cudaMemcpyDeviceToHost, s),
               "demo: results to the host");
    // The combine runs on the host: wait for this stream (never the whole device).
    check_cuda(cudaStreamSynchronize(s), "demo: expert MLP");
  }

 private:
  std::size_t offset(int layer, int slot) const {
    return (static_cast<std::size_t>(layer) * S_ + static_cast<std::size_t>(slot)) * expert_bytes_;
  }

  MlpShape mlp_;
  int L_, S_;
  std::size_t expert_bytes_, max_rows_;
  EngineStream engine_;
  DeviceBuffer slot_mem_, rows_, slot_ids_, scratch_, out_;
  std::unique_ptr<device::DeviceExpertStore> store_;
};

}  // namespace

DemoResult run_demo_cuda(const DemoOptions& opt) {
  if (const std::string why = device::device_unavailable_reason(); !why.empty())
    throw InputError("--device cuda: " + why);
  device::use_device(0);
  const CanonicalExperts canonical(opt.mlp, opt.workload.layers, opt.workload.experts,
                                   opt.workload.seed);
  const auto tensor_bytes = expert_tensor_bytes(opt.mlp);
  device::SingleGpuWorld weights(opt.ranks);
  InProcessWorld tokens(opt.ranks);
  std::vector<std::unique_ptr<Transport>> token_ts;
  for (int r = 0; r < opt.ranks; ++r) token_ts.push_back(tokens.transport(r));
  return run_ranks_as_threads(opt.ranks, [&](int r) {
    device::use_device(0);  // per thread
    // The experts (and their streams) outlive the transport that copies on their side stream.
    DeviceRankExperts experts(opt, tensor_bytes);
    const auto w = weights.transport(r, experts.side_stream());
    return run_demo_rank(opt, *token_ts[static_cast<std::size_t>(r)], *w, experts, canonical);
  });
}

}  // namespace swiftbalancer::demo_cuda
