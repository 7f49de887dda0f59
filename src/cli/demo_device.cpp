#include "cli/demo_device.h"

#include "swiftbalancer/core/status.h"
#ifdef SWIFTBALANCER_HAVE_CUDA
#include "swiftbalancer/demo/cuda/demo_cuda.h"
#include "swiftbalancer/device/cuda_util.h"
#endif

namespace swiftbalancer::cli {

void check_demo_device(const std::string& device, const std::string& transport) {
  if (device == "cpu") return;
  if (device != "cuda") throw InputError("--device must be cpu or cuda, not '" + device + "'");
  if (transport != "inprocess")
    throw InputError("--device cuda runs in-process ranks on one GPU (--transport inprocess)");
#ifdef SWIFTBALANCER_HAVE_CUDA
  if (const std::string why = device::device_unavailable_reason(); !why.empty())
    throw InputError("--device cuda: " + why);
#else
  throw InputError(
      "--device cuda: this build has no CUDA device path (configure with "
      "-DSWIFTBALANCER_CUDA=ON; needs the CUDA toolkit and NCCL)");
#endif
}

DemoResult run_demo_cuda_inprocess(const DemoOptions& opt) {
#ifdef SWIFTBALANCER_HAVE_CUDA
  return demo_cuda::run_demo_cuda(opt);
#else
  (void)opt;
  throw InputError("--device cuda: this build has no CUDA device path");
#endif
}

}  // namespace swiftbalancer::cli
