// `swiftbalancer demo --device cuda`: the demo model served on one GPU. Every rank is a thread
// of this process; its experts live in device memory (DeviceExpertStore), the expert MLP runs on
// the GPU (expert_mlp_cuda.h, bit for bit apply_mlp), weights move over the single-GPU transport
// (device-to-device copies on the store's side stream) and tokens over the in-process transport,
// as in the CPU demo. Every token's output is still checked against the host reference.
//
// Built only with the CUDA device path (SWIFTBALANCER_CUDA); the CPU demo does not link it.
// Thread-safety: one call at a time per process (the ranks share device 0).
#pragma once

#include "swiftbalancer/demo/demo_engine.h"

namespace swiftbalancer::demo_cuda {

// Throws InputError naming the reason ("no CUDA device: ...") when no device can be used.
DemoResult run_demo_cuda(const DemoOptions& opt);

}  // namespace swiftbalancer::demo_cuda
