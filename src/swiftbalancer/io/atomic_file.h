// AtomicFile: writes a file so that readers see either the old file or the whole new one, never
// a partial one. Bytes go to a temporary next to the destination ("<name>.tmp.<pid>.<n>", same
// folder, so the rename stays on one file system; the name is shortened to fit the folder's
// NAME_MAX when the destination's own name is long); commit() flushes, closes and renames it into
// place. A writer destroyed without commit() (an exception, a failed write) removes the
// temporary, so a failed run leaves no file behind.
//
// OutputGroup: the outputs of one run, committed together. While a group is open on this
// process, AtomicFile::commit() only closes the file (where a full disk or a file-size limit
// shows) and hands the finished temporary to the group; group.commit() then renames them all. A
// group destroyed without commit() (one output failed, an exception) removes every temporary it
// holds, so either every output of the run is in place or none is. (The renames themselves come
// after every write has succeeded; a rename into a folder already checked writable fails only if
// the folder changes under the run.)
//
// Signals: install_temporary_cleanup() makes SIGINT and SIGTERM remove every temporary of the
// process (written or waiting in a group) before the process dies of the signal. The table of
// live temporaries is async-signal-safe (fixed slots, lock-free atomics).
//
// Errors: a path where no file can be created throws InputError (the caller's bad path; the CLI
// exits 2). A failure while writing, closing or renaming (disk full, a file-size limit, an I/O
// error) throws WriteError (a run-time failure; the CLI exits 1).
//
// One writer per object; not thread-safe. Different objects on different paths are independent.
// One OutputGroup at a time per process, used from one thread. Callers in a process that may hit
// RLIMIT_FSIZE should ignore SIGXFSZ (the CLI does) so that an oversized write fails with an
// error instead of killing the process.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace swiftbalancer {

class WriteError : public std::runtime_error {
 public:
  explicit WriteError(const std::string& what) : std::runtime_error(what) {}
};

class AtomicFile {
 public:
  // Checks the destination (check_output_file) and creates the temporary.
  explicit AtomicFile(std::string path);
  ~AtomicFile();  // removes the temporary unless committed (or handed to an OutputGroup)
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, std::size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // Closes the finished temporary and renames it onto the destination, or, while an
  // OutputGroup is open, hands it to the group. Further writes are errors.
  void commit();
  const std::string& path() const { return path_; }
  const std::string& temporary() const { return tmp_; }

 private:
  [[noreturn]] void fail(const std::string& what);
  std::string path_, tmp_;
  int fd_ = -1;
  int slot_ = -1;  // in the signal cleanup table; -1: not tracked
  bool committed_ = false;
};

class OutputGroup {
 public:
  OutputGroup();   // opens the group (InternalError if one is already open)
  ~OutputGroup();  // removes every temporary not committed
  OutputGroup(const OutputGroup&) = delete;
  OutputGroup& operator=(const OutputGroup&) = delete;
  // Renames every finished temporary into place, in the order they were finished.
  void commit();
  // Used by AtomicFile::commit().
  static OutputGroup* current();
  void adopt(std::string tmp, std::string path, int slot);

 private:
  struct Pending {
    std::string tmp, path;
    int slot;
  };
  std::vector<Pending> pending_;
  bool committed_ = false;
};

// The whole file in one call.
void write_file_atomically(const std::string& path, std::string_view text);

// SIGINT and SIGTERM: remove the process's temporaries, then die of the signal as before.
// Idempotent; call once from main().
void install_temporary_cleanup();

// The temporary's name for `path` with the given suffix (".tmp.<pid>.<n>"): next to it, the
// file name cut so that it fits `name_max` bytes. Exposed for tests.
std::string temporary_name(const std::string& path, const std::string& suffix,
                           std::size_t name_max);

}  // namespace swiftbalancer
