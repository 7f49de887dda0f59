// libFuzzer target: the CSV load reader (header, fields, ids, numbers, memory cap).
#include "fuzz_support.h"
#include "swiftbalancer/core/status.h"
#include "swiftbalancer/io/load_io.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = swiftbalancer::fuzz::scratch_file(".csv");
  swiftbalancer::fuzz::write_scratch(path, data, size);
  try {
    swiftbalancer::read_load(path, swiftbalancer::LoadFormat::kCsv);
    swiftbalancer::read_load_steps(path, swiftbalancer::LoadFormat::kCsv);
  } catch (const swiftbalancer::InputError&) {
  }
  return 0;
}
