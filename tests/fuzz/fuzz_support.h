// Shared by the libFuzzer targets: the readers take paths, so each input is written to one
// scratch file per process. Expected rejections are InputError; anything else (a crash, a
// sanitizer report, another exception, a hang) is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace swiftbalancer::fuzz {

inline std::string scratch_file(const char* ext) {
  return "/tmp/sb_fuzz_" + std::to_string(::getpid()) + ext;
}

inline void write_scratch(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return;
  if (size > 0) std::fwrite(data, 1, size, f);
  std::fclose(f);
}

}  // namespace swiftbalancer::fuzz
