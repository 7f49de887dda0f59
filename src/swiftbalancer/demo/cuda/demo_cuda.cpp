#include "swiftbalancer/demo/cuda/demo_cuda.h"

#include <cuda_runtime_api.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "swiftbalancer/demo/cuda/device_rank_experts.h"
#include "swiftbalancer/device/cuda_util.h"
#include "swiftbalancer/device/nccl_transport.h"
#include "swiftbalancer/device/single_gpu_transport.h"
#include "swiftbalancer/transport/inprocess_transport.h"

namespace swiftbalancer::demo_cuda {
namespace {

using device::check_cuda;

// NCCL's first communicator on a node loads the library, probes the topology and connects the
// ranks: seconds on a busy 8-GPU node. Bounded, so that a rank that never arrives ends the run.
constexpr Millis kBootstrapTimeout{60000};

// An environment variable that mpirun sets, as a non-negative int; `fallback` when unset.
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  errno = 0;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (errno != 0 || *end != '\0' || n < 0 || n > (1 << 24))
    throw InputError(std::string(name) + " is '" + v + "', not a process count or index");
  return static_cast<int>(n);
}

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

ProcessDevice pick_process_device(int rank, int size) {
  if (const std::string why = device::device_unavailable_reason(); !why.empty())
    throw InputError(why);
  ProcessDevice d;
  d.local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", rank);
  d.local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", size);
  check_cuda(cudaGetDeviceCount(&d.visible), "cudaGetDeviceCount");
  d.device = d.local_rank % d.visible;
  device::use_device(d.device);
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, d.device), "cudaGetDeviceProperties");
  static_assert(sizeof(prop.uuid) == sizeof(d.uuid));
  std::memcpy(d.uuid.data(), &prop.uuid, sizeof(d.uuid));
  return d;
}

void check_distinct_devices(const ProcessDevice& mine, Transport& host, Millis timeout) {
  constexpr std::size_t kWords = 6;
  const std::vector<std::int64_t> me = {mine.uuid[0], mine.uuid[1],    mine.device,
                                        mine.visible, mine.local_rank, mine.local_size};
  static_assert(kWords == 6);
  std::vector<std::int64_t> all(kWords * static_cast<std::size_t>(host.size()));
  if (const Status s = host.all_gather(me, all, timeout); !s.ok())
    throw std::runtime_error("exchanging the ranks' CUDA devices failed: " + s.to_string());
  // Every rank scans the same gathered words in the same order: the same verdict everywhere.
  const auto at = [&](int r, std::size_t w) {
    return all[static_cast<std::size_t>(r) * kWords + w];
  };
  for (int j = 1; j < host.size(); ++j)
    for (int i = 0; i < j; ++i) {
      if (at(i, 0) != at(j, 0) || at(i, 1) != at(j, 1)) continue;
      throw InputError(
          "ranks " + std::to_string(i) + " and " + std::to_string(j) +
          " would both serve on CUDA " + "device " + std::to_string(at(j, 2)) + ": " +
          std::to_string(at(j, 5)) + " processes on their node, " + std::to_string(at(j, 3)) +
          " CUDA device(s) visible to each; NCCL cannot put two ranks of one communicator on one "
          "device (start at most one process per GPU)");
    }
}

DemoResult run_demo_cuda_rank(const DemoOptions& opt, Transport& host,
                              const CanonicalExperts& canonical) {
  // The experts (and their streams) outlive the communicator that copies on their side stream.
  DeviceRankExperts experts(opt, expert_tensor_bytes(opt.mlp));
  const auto nccl =
      device::NcclTransport::bootstrap(host, experts.side_stream(), kBootstrapTimeout);
  return run_demo_rank(opt, host, *nccl, experts, canonical);
}

}  // namespace swiftbalancer::demo_cuda
