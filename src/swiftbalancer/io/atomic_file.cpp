#include "swiftbalancer/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "swiftbalancer/core/status.h"
#include "swiftbalancer/io/file_check.h"

namespace swiftbalancer {
namespace {

// Distinguishes temporaries of several writers in one process; the pid separates processes.
std::atomic<unsigned> g_counter{0};

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  check_output_file(path_);
  // O_EXCL: never reuse (or follow a link at) a name someone else created. Mode 0666 minus the
  // umask, like any newly created file.
  for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
    tmp_ = path_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(g_counter++);
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && errno != EEXIST)
      throw InputError(path_ + ": cannot open for writing (" + std::strerror(errno) + ")");
  }
  if (fd_ < 0) throw InputError(path_ + ": cannot create a temporary file next to it");
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
}

void AtomicFile::fail(const std::string& what) {
  const std::string msg = path_ + ": " + what;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(tmp_.c_str());
  tmp_.clear();
  throw WriteError(msg);
}

void AtomicFile::write(const void* data, std::size_t bytes) {
  if (fd_ < 0) throw WriteError(path_ + ": write after the file was closed");
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd_, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(std::string("write failed (") + std::strerror(n < 0 ? errno : EIO) + ")");
    p += n;
    bytes -= static_cast<std::size_t>(n);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) throw WriteError(path_ + ": commit after the file was closed");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    ::unlink(tmp_.c_str());
    tmp_.clear();
    throw WriteError(path_ + ": write failed (" + std::strerror(errno) + ")");
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    tmp_.clear();
    throw WriteError(path_ + ": cannot move the finished file into place (" + std::strerror(err) +
                     ")");
  }
  committed_ = true;
}

void write_file_atomically(const std::string& path, std::string_view text) {
  AtomicFile f(path);
  f.write(text);
  f.commit();
}

}  // namespace swiftbalancer
