#include "cli/demo_device.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <vector>

#include "swiftbalancer/core/status.h"
#ifdef SWIFTBALANCER_HAVE_CUDA
#include "swiftbalancer/demo/cuda/demo_cuda.h"
#include "swiftbalancer/device/cuda_util.h"
#endif

namespace swiftbalancer::cli {
namespace {

constexpr const char* kNoCudaBuild =
    "this build has no CUDA device path (configure with -DSWIFTBALANCER_CUDA=ON; needs the CUDA "
    "toolkit and NCCL)";

// One rank's verdict on a check every rank makes: ok, bad input (exit 2) or a run-time failure.
enum class Verdict : std::int64_t { kOk = 0, kInput = 2, kRuntime = 1 };

// Every rank's verdict and reason through host.all_gather; when any rank failed, every rank
// throws the lowest failing rank's reason (InputError for kInput, std::runtime_error otherwise),
// so that all ranks stop together instead of some waiting on the others until a timeout.
// Reasons are cut to fit a fixed number of words.
void agree(Transport& host, Verdict mine, const std::string& why, Millis timeout) {
  constexpr std::size_t kTextWords = 48;  // 384 bytes of reason, the last one a NUL
  constexpr std::size_t kWords = 1 + kTextWords;
  std::vector<std::int64_t> me(kWords, 0);
  me[0] = static_cast<std::int64_t>(mine);
  std::memcpy(me.data() + 1, why.data(), std::min(why.size(), kTextWords * 8 - 1));
  std::vector<std::int64_t> all(kWords * static_cast<std::size_t>(host.size()));
  if (const Status s = host.all_gather(me, all, timeout); !s.ok())
    throw std::runtime_error("--device cuda: the ranks could not agree on their devices: " +
                             s.to_string());
  for (int r = 0; r < host.size(); ++r) {
    const std::int64_t* w = all.data() + static_cast<std::size_t>(r) * kWords;
    if (w[0] == static_cast<std::int64_t>(Verdict::kOk)) continue;
    const char* text = reinterpret_cast<const char*>(w + 1);
    const std::string msg =
        "--device cuda: " +
        (r == 0 ? std::string()
                : "rank " + std::to_string(r) + " of " + std::to_string(host.size()) + ": ") +
        std::string(text, strnlen(text, kTextWords * 8));
    if (w[0] == static_cast<std::int64_t>(Verdict::kInput)) throw InputError(msg);
    throw std::runtime_error(msg);
  }
}

}  // namespace

void check_demo_device(const std::string& device, const std::string& transport) {
  if (device == "cpu") return;
  if (device != "cuda") throw InputError("--device must be cpu or cuda, not '" + device + "'");
  if (transport == "mpi") return;  // prepare_demo_cuda_mpi(), once MPI has started
#ifdef SWIFTBALANCER_HAVE_CUDA
  if (const std::string why = device::device_unavailable_reason(); !why.empty())
    throw InputError("--device cuda: " + why);
#else
  throw InputError(std::string("--device cuda: ") + kNoCudaBuild);
#endif
}

DemoResult run_demo_cuda_inprocess(const DemoOptions& opt) {
#ifdef SWIFTBALANCER_HAVE_CUDA
  return demo_cuda::run_demo_cuda(opt);
#else
  (void)opt;
  throw InputError(std::string("--device cuda: ") + kNoCudaBuild);
#endif
}

void prepare_demo_cuda_mpi(Transport& host, Millis timeout) {
#ifdef SWIFTBALANCER_HAVE_CUDA
  demo_cuda::ProcessDevice mine;
  Verdict verdict = Verdict::kOk;
  std::string why;
  try {
    mine = demo_cuda::pick_process_device(host.rank(), host.size());
  } catch (const InputError& e) {
    verdict = Verdict::kInput;
    why = e.what();
  } catch (const std::exception& e) {
    verdict = Verdict::kRuntime;
    why = e.what();
  }
  agree(host, verdict, why, timeout);
  // Every rank has a device; all see the same gathered devices and reach the same verdict.
  try {
    demo_cuda::check_distinct_devices(mine, host, timeout);
  } catch (const InputError& e) {
    throw InputError(std::string("--device cuda: ") + e.what());
  }
#else
  // The same on every rank; agreed all the same, so that every rank takes the same path.
  agree(host, Verdict::kInput, kNoCudaBuild, timeout);
#endif
}

DemoResult run_demo_cuda_mpi(const DemoOptions& opt, Transport& host,
                             const CanonicalExperts& canonical) {
#ifdef SWIFTBALANCER_HAVE_CUDA
  return demo_cuda::run_demo_cuda_rank(opt, host, canonical);
#else
  (void)opt, (void)host, (void)canonical;
  throw InputError(std::string("--device cuda: ") + kNoCudaBuild);
#endif
}

}  // namespace swiftbalancer::cli
