// `demo --device cpu|cuda`: where the demo's experts live and their MLP runs. cuda needs a build
// with the CUDA device path (SWIFTBALANCER_CUDA) and a CUDA device; without either it is an
// InputError naming what is missing, checked before any work.
//
// In-process (--transport inprocess) the ranks are threads on device 0, checked here before MPI
// or anything else. Under mpirun (--transport mpi) each process serves one rank on its own GPU
// with NCCL for the weights; what each process can use is only known once MPI has started, so
// prepare_demo_cuda_mpi() checks it then, on every rank, and the ranks agree on the outcome: all
// of them throw, or none does.
//
// Thread-safety: call from the command's thread (the one that started MPI).
#pragma once

#include <string>

#include "swiftbalancer/demo/demo_engine.h"

namespace swiftbalancer::cli {

// Throws InputError for an unknown device; for cuda in-process, in a build without the CUDA
// device path or without a usable device. Under mpi, cuda's device checks wait for
// prepare_demo_cuda_mpi().
void check_demo_device(const std::string& device, const std::string& transport);

// The in-process demo on device 0 (demo/cuda/demo_cuda.h); only after check_demo_device("cuda").
DemoResult run_demo_cuda_inprocess(const DemoOptions& opt);

// Under mpirun with --device cuda, before any work: picks this process's device (local rank %
// visible devices) and checks, over `host`, that every rank has one and that no two share one.
// Every rank throws when any rank fails: InputError (exit 2) with the message of the lowest
// failing rank ("--device cuda: ..."; "rank k of n: " after the colon when k is not 0), or
// std::runtime_error when the failure was not the input's. Every rank must call it.
void prepare_demo_cuda_mpi(Transport& host, Millis timeout);

// One mode on this process's rank and GPU (demo/cuda/demo_cuda.h, run_demo_cuda_rank); only
// after prepare_demo_cuda_mpi() returned.
DemoResult run_demo_cuda_mpi(const DemoOptions& opt, Transport& host,
                             const CanonicalExperts& canonical);

}  // namespace swiftbalancer::cli
