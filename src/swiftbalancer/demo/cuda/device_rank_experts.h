// One demo rank's experts on the GPU, shared by both `demo --device cuda` runs: in-process ranks
// on one device (demo_cuda.h, run_demo_cuda) and one rank per MPI process with NCCL
// (run_demo_cuda_rank).
//
// Slot memory is one device allocation [layer][local slot][expert bytes] (an expert's tensors
// back to back, as expert_mlp_cuda.h reads them), registered with a DeviceExpertStore that the
// balancer writes on commit; the MLP of a layer's received rows is one launch pair on the rank's
// engine stream, bit for bit apply_mlp.
//
// Ownership: everything is allocated on the device current at construction; a transport that
// copies on side_stream() must be destroyed before this object (the store waits for its side
// stream, then the slot memory goes, the engine stream last). Thread-safety: the rank's serving
// thread only (the balancer's worker reaches the store through its own contract).
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstddef>
#include <memory>

#include "swiftbalancer/demo/demo_engine.h"
#include "swiftbalancer/device/device_expert_store.h"

namespace swiftbalancer::demo_cuda {

// Device memory of `bytes` bytes on the current device, freed on destruction.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes);
  ~DeviceBuffer();
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
  EngineStream();
  ~EngineStream();
  EngineStream(const EngineStream&) = delete;
  EngineStream& operator=(const EngineStream&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

class DeviceRankExperts final : public RankExperts {
 public:
  // Sized for opt.ranks ranks: a rank receives at most every (token, k) of every rank in one
  // layer. Throws DeviceError (std::bad_alloc when the device is out of memory).
  DeviceRankExperts(const DemoOptions& opt, const std::array<std::size_t, 3>& tensor_bytes);

  // The stream the store copies on; a transport moving this rank's weights should run on it.
  cudaStream_t side_stream() const { return store_->side_stream(); }

  void load(const CanonicalExperts& canonical, const Topology& topo, const Placement& initial,
            int rank) override;
  ExpertStore& store() override { return *store_; }
  void compute(int layer, std::span<const float> rows, std::span<const std::int32_t> slots,
               std::span<float> out) override;

 private:
  std::size_t offset(int layer, int slot) const {
    return (static_cast<std::size_t>(layer) * S_ + static_cast<std::size_t>(slot)) * expert_bytes_;
  }

  MlpShape mlp_;
  int L_, S_;
  std::size_t expert_bytes_, max_rows_;
  // Destroyed in reverse order: the store (it waits for its side stream) before the slot
  // memory, the engine stream last.
  EngineStream engine_;
  DeviceBuffer slot_mem_, rows_, slot_ids_, scratch_, out_;
  std::unique_ptr<device::DeviceExpertStore> store_;
};

}  // namespace swiftbalancer::demo_cuda
