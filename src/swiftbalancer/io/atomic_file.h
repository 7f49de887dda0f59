// AtomicFile: writes a file so that readers see either the old file or the whole new one, never
// a partial one. Bytes go to a temporary next to the destination ("<path>.tmp.<pid>.<n>", same
// folder, so the rename stays on one file system); commit() flushes, closes and renames it into
// place. A writer destroyed without commit() (an exception, a failed write) removes the
// temporary, so a failed run leaves no file behind.
//
// Errors: a path where no file can be created throws InputError (the caller's bad path; the CLI
// exits 2). A failure while writing, closing or renaming (disk full, a file-size limit, an I/O
// error) throws WriteError (a run-time failure; the CLI exits 1).
//
// One writer per object; not thread-safe. Different objects on different paths are independent.
// Callers in a process that may hit RLIMIT_FSIZE should ignore SIGXFSZ (the CLI does) so that an
// oversized write fails with an error instead of killing the process.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace swiftbalancer {

class WriteError : public std::runtime_error {
 public:
  explicit WriteError(const std::string& what) : std::runtime_error(what) {}
};

class AtomicFile {
 public:
  // Checks the destination (check_output_file) and creates the temporary.
  explicit AtomicFile(std::string path);
  ~AtomicFile();  // removes the temporary unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, std::size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // Renames the finished temporary onto the destination. Further writes are errors.
  void commit();
  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void fail(const std::string& what);
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

// The whole file in one call.
void write_file_atomically(const std::string& path, std::string_view text);

}  // namespace swiftbalancer
