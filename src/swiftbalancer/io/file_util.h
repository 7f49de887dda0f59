// Internal helpers of the io component: whole-file reads and writes whose errors are InputError
// messages starting with the path. Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <new>
#include <string>
#include <utility>

namespace swiftbalancer::io_detail {

// Throws InputError "<path>: file not found" / "is a directory" / "is a FIFO" / "cannot open"
// (check_input_file: regular files only, so a FIFO never blocks a reader).
void require_file(const std::string& path);
// A JSON or CSV input (a load, a trace, a placement) is read whole and parsed in memory, at up to
// 16 bytes per number it holds (nlohmann::json values) besides the text: 256 MiB of text is at
// most 2 GiB parsed, within 4 GB of address space. Checked from the file's size before anything
// is read; larger data belongs in .npy, which is streamed. (The other limits: core/limits.h.)
inline constexpr std::int64_t kMaxTextInputBytes = std::int64_t{1} << 28;  // 256 MiB

// Throws InputError naming the file, its size and the limit when `bytes` is above
// kMaxTextInputBytes (checked before a text file is read).
void check_text_input_size(const std::string& path, std::int64_t bytes);
// The whole file; its size is checked first (check_text_input_size), and an allocation that fails
// anyway is a ResourceError naming the file and the size.
std::string read_file(const std::string& path);
// Throws the ResourceError of reading() below.
[[noreturn]] void out_of_memory_reading(const std::string& path);
// Runs fn() (which reads `path`) and turns a std::bad_alloc into a ResourceError naming the file
// and its size: the CLI exits 3 with it.
template <typename F>
decltype(auto) reading(const std::string& path, F&& fn) {
  try {
    return std::forward<F>(fn)();
  } catch (const std::bad_alloc&) {
    out_of_memory_reading(path);
  }
}
// Writes the whole file atomically (AtomicFile): InputError for a path where no file can be
// created, WriteError when the write itself fails; never leaves a partial file.
void write_text(const std::string& path, const std::string& text);

}  // namespace swiftbalancer::io_detail
