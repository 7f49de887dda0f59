// libFuzzer target: the trace readers of replay (replay/trace.h). The input is written twice:
// as a .npy (open_npy_trace, streamed step by step) and without an extension, so that
// open_trace_file picks the format from the content (npy magic, JSON, else CSV) and holds a
// per-step CSV or JSON dump in memory. Every step is drained, as replay would read it.
#include <vector>

#include "fuzz_support.h"
#include "swiftbalancer/core/status.h"
#include "swiftbalancer/replay/trace.h"

namespace {

void drain(swiftbalancer::replay::TraceSource& src) {
  std::vector<double> step(static_cast<std::size_t>(src.layers()) *
                           static_cast<std::size_t>(src.experts()));
  for (std::int64_t t = 0; t < src.steps(); ++t) src.next(step);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace swiftbalancer;
  static const std::string npy = fuzz::scratch_file(".npy");
  static const std::string bare = fuzz::scratch_file("");
  fuzz::write_scratch(npy, data, size);
  fuzz::write_scratch(bare, data, size);
  try {
    drain(*replay::open_npy_trace(npy));
  } catch (const InputError&) {
  }
  try {
    drain(*replay::open_trace_file(bare));
  } catch (const InputError&) {
  }
  return 0;
}
