// Checks on the files a command reads and writes, made before any work so that bad paths fail
// fast with a message naming the file (and the option that gave it, when the caller passes one).
// Stateless; safe from any thread (the answers are only as fresh as the file system).
//
// Inputs are regular files only: opening a FIFO blocks until a writer appears and a device or a
// directory is never a load dump, so all three are refused up front instead of hanging or
// reading garbage. Outputs must be creatable as a regular file in an existing, writable folder.
#pragma once

#include <string>

namespace swiftbalancer {

// Throws InputError "[<option> ]<path>: file not found" / "is a directory, not a file" /
// "is a FIFO (named pipe), not a regular file" / "is a character device, ..." / "cannot be read".
// Follows symbolic links (a link to a regular file is fine).
void check_input_file(const std::string& path, const std::string& option = "");

// Throws InputError naming the path when a file could not be written there: an empty path, a
// missing folder, a folder that is not writable, or an existing path that is not a regular file
// (a directory, a FIFO, a device). Creates nothing.
void check_output_file(const std::string& path, const std::string& option = "");

}  // namespace swiftbalancer
