// Internal helpers of the io component: whole-file reads and writes whose errors are InputError
// messages starting with the path. Stateless; safe from any thread.
#pragma once

#include <string>

namespace swiftbalancer::io_detail {

// Throws InputError "<path>: file not found" / "is a directory" / "cannot open".
void require_file(const std::string& path);
std::string read_file(const std::string& path);
// Truncates and writes; throws InputError when the file cannot be opened or written.
void write_text(const std::string& path, const std::string& text);

}  // namespace swiftbalancer::io_detail
