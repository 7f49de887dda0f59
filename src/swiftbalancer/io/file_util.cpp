#include "swiftbalancer/io/file_util.h"

#include <filesystem>
#include <fstream>
#include <system_error>

#include "swiftbalancer/core/resource.h"
#include "swiftbalancer/core/status.h"
#include "swiftbalancer/io/atomic_file.h"
#include "swiftbalancer/io/file_check.h"

namespace swiftbalancer::io_detail {

void check_text_input_size(const std::string& path, std::int64_t bytes) {
  if (bytes > kMaxTextInputBytes)
    throw InputError(path + ": a file of " + byte_size_text(bytes) + " is above the limit of " +
                     byte_size_text(kMaxTextInputBytes) +
                     " for JSON and CSV inputs (docs/formats.md); store large loads and traces "
                     "as .npy, which is streamed");
}

void out_of_memory_reading(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  throw ResourceError(
      "out of memory reading " + path +
      (ec ? std::string()
          : " (a file of " + byte_size_text(static_cast<std::int64_t>(size)) + ")"));
}

void require_file(const std::string& path) {
  check_input_file(path);
}

std::string read_file(const std::string& path) {
  require_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open file (unreadable)");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw InputError(path + ": cannot read file");
  check_text_input_size(path, size);
  std::string text = allocating("the contents of " + path, size,
                                [&] { return std::string(static_cast<std::size_t>(size), '\0'); });
  in.seekg(0);
  if (size > 0 && !in.read(text.data(), size)) throw InputError(path + ": cannot read file");
  return text;
}

void write_text(const std::string& path, const std::string& text) {
  write_file_atomically(path, text);
}

}  // namespace swiftbalancer::io_detail
