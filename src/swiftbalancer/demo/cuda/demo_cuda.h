// `swiftbalancer demo --device cuda`: the demo model with its experts in device memory
// (DeviceRankExperts: a DeviceExpertStore, the expert MLP on the GPU, bit for bit apply_mlp).
// Every token's output is still checked against the host reference. Two ways to run it:
//
//   - run_demo_cuda: in-process ranks (threads of this process) on device 0; weights move over
//     the single-GPU transport (device-to-device copies on each store's side stream), tokens over
//     the in-process transport, as in the CPU demo. One call at a time per process.
//   - under mpirun, one rank per process and one GPU per rank: pick_process_device() chooses and
//     selects this process's device, check_distinct_devices() makes sure no two ranks landed on
//     one device, and run_demo_cuda_rank() serves one mode with the weights over an NcclTransport
//     bootstrapped over the host transport (on the store's side stream), tokens and the demo's
//     collectives over the host transport exactly as the CPU MPI demo does. Nothing here knows
//     MPI: the host transport is whatever the caller has (the CLI's MpiTransport).
//
// Built only with the CUDA device path (SWIFTBALANCER_CUDA); the CPU demo does not link it.
#pragma once

#include <array>
#include <cstdint>

#include "swiftbalancer/demo/demo_engine.h"

namespace swiftbalancer::demo_cuda {

// Throws InputError naming the reason ("no CUDA device: ...") when no device can be used.
DemoResult run_demo_cuda(const DemoOptions& opt);

// The device one process's rank serves on, and what it was chosen from.
struct ProcessDevice {
  int device = 0;                      // index among the devices this process sees
  int visible = 0;                     // devices this process sees (cudaGetDeviceCount)
  int local_rank = 0;                  // among the processes of this node
  int local_size = 1;                  // processes on this node
  std::array<std::int64_t, 2> uuid{};  // the device's UUID (unique across nodes)
};

// Picks device local_rank % visible and makes it current on the calling thread. The local rank
// and size come from OMPI_COMM_WORLD_LOCAL_RANK / _SIZE (Open MPI's mpirun), else `rank` and
// `size` (every process on one node). Talks to no other rank. Throws InputError "no CUDA device:
// ..." when this process sees no device, DeviceError when the device refuses to be selected.
ProcessDevice pick_process_device(int rank, int size);

// All ranks' devices through host.all_gather: throws InputError, the same message on every rank,
// when two ranks would serve on one device (NCCL cannot put two ranks of one communicator on one
// device; fewer GPUs than processes works only when each process still gets its own, e.g. by
// CUDA_VISIBLE_DEVICES), naming the ranks, the device and the counts. Every rank must call it,
// after pick_process_device succeeded on every rank. Throws std::runtime_error when the exchange
// fails within `timeout`.
void check_distinct_devices(const ProcessDevice& mine, Transport& host, Millis timeout);

// One mode on this process's rank, on the current device (pick_process_device): experts in a
// DeviceExpertStore, weights over an NcclTransport bootstrapped over `host` for this run only (a
// fault may abort it; the next mode gets a fresh one), tokens and collectives over `host`. Every
// rank calls it with the same options; returns the same DemoResult on every rank.
DemoResult run_demo_cuda_rank(const DemoOptions& opt, Transport& host,
                              const CanonicalExperts& canonical);

}  // namespace swiftbalancer::demo_cuda
