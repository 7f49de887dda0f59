#include "swiftbalancer/io/file_check.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer {
namespace {

std::string prefix(const std::string& path, const std::string& option) {
  return option.empty() ? path : option + " " + path;
}

// What a non-regular file is, for the message.
const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory, not a file";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe), not a regular file";
  if (S_ISCHR(mode)) return "a character device, not a regular file";
  if (S_ISBLK(mode)) return "a block device, not a regular file";
  if (S_ISSOCK(mode)) return "a socket, not a regular file";
  return "not a regular file";
}

}  // namespace

void check_input_file(const std::string& path, const std::string& option) {
  const std::string who = prefix(path, option);
  if (path.empty()) throw InputError((option.empty() ? "input" : option) + ": empty file name");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) throw InputError(who + ": file not found");
    throw InputError(who + ": cannot access file (" + std::strerror(errno) + ")");
  }
  if (!S_ISREG(st.st_mode)) throw InputError(who + ": is " + kind_of(st.st_mode));
  if (::access(path.c_str(), R_OK) != 0) throw InputError(who + ": cannot open file (unreadable)");
}

void check_output_file(const std::string& path, const std::string& option) {
  const std::string who = prefix(path, option);
  if (path.empty()) throw InputError((option.empty() ? "output" : option) + ": empty file name");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw InputError(who + ": cannot write here: is " + kind_of(st.st_mode));
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  struct stat ds {};
  if (::stat(dir.c_str(), &ds) != 0)
    throw InputError(who + ": cannot write here: folder " + dir.string() + " does not exist");
  if (!S_ISDIR(ds.st_mode))
    throw InputError(who + ": cannot write here: " + dir.string() + " is not a folder");
  // The file is written to a temporary in the same folder and renamed into place, so the folder
  // itself must be writable (not only an existing file in it).
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw InputError(who + ": cannot write here: folder " + dir.string() + " is not writable");
}

}  // namespace swiftbalancer
