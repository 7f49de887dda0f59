// Internal helpers of the io component: whole-file reads and writes whose errors are InputError
// messages starting with the path. Stateless; safe from any thread.
#pragma once

#include <string>

namespace swiftbalancer::io_detail {

// Throws InputError "<path>: file not found" / "is a directory" / "is a FIFO" / "cannot open"
// (check_input_file: regular files only, so a FIFO never blocks a reader).
void require_file(const std::string& path);
std::string read_file(const std::string& path);
// Writes the whole file atomically (AtomicFile): InputError for a path where no file can be
// created, WriteError when the write itself fails; never leaves a partial file.
void write_text(const std::string& path, const std::string& text);

}  // namespace swiftbalancer::io_detail
