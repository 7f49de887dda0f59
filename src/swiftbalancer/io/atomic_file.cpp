#include "swiftbalancer/io/atomic_file.h"

#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "swiftbalancer/core/status.h"
#include "swiftbalancer/io/file_check.h"

namespace swiftbalancer {
namespace {

// Distinguishes temporaries of several writers in one process; the pid separates processes.
std::atomic<unsigned> g_counter{0};

// The live temporaries, for the signal handler. A slot is kFree, kFilling (being claimed: its
// path is being copied, the handler skips it) or kLive (path complete). Beyond kSlots live
// temporaries the rest are not tracked (a run has a handful).
constexpr int kSlots = 64;
enum : int { kFree = 0, kFilling = 1, kLive = 2 };
struct TempSlot {
  std::atomic<int> state{kFree};
  char path[PATH_MAX];
};
TempSlot g_slots[kSlots];
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs lock-free atomics");

int track(const std::string& tmp) {
  if (tmp.size() >= PATH_MAX) return -1;
  for (int i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (g_slots[i].state.compare_exchange_strong(expected, kFilling)) {
      std::memcpy(g_slots[i].path, tmp.c_str(), tmp.size() + 1);
      g_slots[i].state.store(kLive, std::memory_order_release);
      return i;
    }
  }
  return -1;
}

void untrack(int slot) {
  if (slot >= 0) g_slots[slot].state.store(kFree, std::memory_order_release);
}

extern "C" void remove_temporaries_and_die(int sig) {
  const int saved = errno;
  for (TempSlot& s : g_slots)
    if (s.state.load(std::memory_order_acquire) == kLive) ::unlink(s.path);
  errno = saved;
  // Die of the same signal, so the parent sees "killed by SIGTERM", not an exit code.
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

OutputGroup* g_group = nullptr;

std::size_t name_max_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const long n = ::pathconf(dir.c_str(), _PC_NAME_MAX);
  return n > 0 ? static_cast<std::size_t>(n) : 255;
}

}  // namespace

std::string temporary_name(const std::string& path, const std::string& suffix,
                           std::size_t name_max) {
  const std::size_t slash = path.rfind('/');
  const std::size_t start = slash == std::string::npos ? 0 : slash + 1;
  std::string name = path.substr(start);
  if (name.size() + suffix.size() > name_max)
    name.resize(name_max > suffix.size() ? name_max - suffix.size() : 0);
  return path.substr(0, start) + name + suffix;
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  check_output_file(path_);
  const std::size_t name_max = name_max_of(path_);
  // O_EXCL: never reuse (or follow a link at) a name someone else created. Mode 0666 minus the
  // umask, like any newly created file.
  for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
    tmp_ = temporary_name(
        path_, ".tmp." + std::to_string(::getpid()) + "." + std::to_string(g_counter++), name_max);
    // Claimed before the file exists, so a signal between open() and the claim cannot leave it.
    slot_ = track(tmp_);
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0) {
      const int err = errno;
      untrack(slot_);
      slot_ = -1;
      if (err != EEXIST)
        throw InputError(path_ + ": cannot open for writing (" + std::strerror(err) + ")");
    }
  }
  if (fd_ < 0) throw InputError(path_ + ": cannot create a temporary file next to it");
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
  if (!committed_) untrack(slot_);
}

void AtomicFile::fail(const std::string& what) {
  const std::string msg = path_ + ": " + what;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(tmp_.c_str());
  untrack(slot_);
  slot_ = -1;
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
  if (::close(fd) != 0) fail(std::string("write failed (") + std::strerror(errno) + ")");
  if (OutputGroup* g = OutputGroup::current()) {
    g->adopt(tmp_, path_, slot_);  // the group renames or removes it now
    committed_ = true;
    return;
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    fail(std::string("cannot move the finished file into place (") + std::strerror(errno) + ")");
  committed_ = true;
  untrack(slot_);
}

OutputGroup::OutputGroup() {
  if (g_group != nullptr) throw InternalError("OutputGroup: a group is already open");
  g_group = this;
}

OutputGroup::~OutputGroup() {
  if (g_group == this) g_group = nullptr;
  if (committed_) return;
  for (const Pending& p : pending_) {
    ::unlink(p.tmp.c_str());
    untrack(p.slot);
  }
}

OutputGroup* OutputGroup::current() {
  return g_group;
}

void OutputGroup::adopt(std::string tmp, std::string path, int slot) {
  pending_.push_back({std::move(tmp), std::move(path), slot});
}

void OutputGroup::commit() {
  g_group = nullptr;  // writers after this commit on their own
  for (std::size_t i = 0; i < pending_.size(); ++i) {
    const Pending& p = pending_[i];
    if (::rename(p.tmp.c_str(), p.path.c_str()) != 0) {
      const int err = errno;
      // The ones not yet renamed go; the destructor removes them.
      pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(i));
      throw WriteError(pending_.front().path + ": cannot move the finished file into place (" +
                       std::strerror(err) + ")");
    }
    untrack(p.slot);
  }
  committed_ = true;
}

void write_file_atomically(const std::string& path, std::string_view text) {
  AtomicFile f(path);
  f.write(text);
  f.commit();
}

void install_temporary_cleanup() {
  struct sigaction sa {};
  sa.sa_handler = remove_temporaries_and_die;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old {};
    // A signal ignored by the parent (nohup, `trap '' INT`) stays ignored.
    if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    ::sigaction(sig, &sa, nullptr);
  }
}

}  // namespace swiftbalancer
