// `demo --device cpu|cuda`: where the demo's experts live and their MLP runs. cuda needs a build
// with the CUDA device path (SWIFTBALANCER_CUDA) and a CUDA device; without either it is an
// InputError naming what is missing, checked before any work. Thread-safety: call from the
// command's thread.
#pragma once

#include <string>

#include "swiftbalancer/demo/demo_engine.h"

namespace swiftbalancer::cli {

// Throws InputError for an unknown device, for cuda under --transport mpi (not built yet),
// for cuda in a build without the CUDA device path, and for cuda without a usable device.
void check_demo_device(const std::string& device, const std::string& transport);

// The in-process demo on device 0 (demo/cuda/demo_cuda.h); only after check_demo_device("cuda").
DemoResult run_demo_cuda_inprocess(const DemoOptions& opt);

}  // namespace swiftbalancer::cli
