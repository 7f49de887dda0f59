// libFuzzer target: the placement reader (SGLang and vllm-ascend JSON) against a few topologies.
// The first input byte picks the topology, the rest is the file.
#include "fuzz_support.h"
#include "swiftbalancer/core/status.h"
#include "swiftbalancer/io/placement_io.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const std::string path = swiftbalancer::fuzz::scratch_file(".json");
  swiftbalancer::fuzz::write_scratch(path, data + 1, size - 1);
  const int ranks = 1 + data[0] % 4, slots = 1 + (data[0] / 4) % 4;
  const int experts = ranks * slots - (data[0] / 16) % 2;
  try {
    const swiftbalancer::Topology topo = swiftbalancer::Topology::make(ranks, slots);
    swiftbalancer::read_placement(path, topo, experts > 0 ? experts : 1);
  } catch (const swiftbalancer::InputError&) {
  }
  return 0;
}
