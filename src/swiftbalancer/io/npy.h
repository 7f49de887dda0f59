// numpy .npy files (format versions 1.0-3.0, little-endian, C order): a streaming reader that
// returns rows as doubles whatever the stored numeric dtype (so memory can stay proportional to
// what the caller keeps, not to the file), and writers for float64 and int64 arrays.
// Errors throw InputError naming the file and the problem (bad magic, unsupported dtype,
// Fortran order, truncated data).
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "swiftbalancer/io/atomic_file.h"

namespace swiftbalancer {

struct NpyHeader {
  std::string dtype;  // numpy descr, e.g. "<f8", "<i8", "<f4", "<i4", "|u1"
  std::vector<std::int64_t> shape;
  std::int64_t elements() const;
};

class NpyReader {
 public:
  explicit NpyReader(const std::string& path);  // opens and parses the header
  const NpyHeader& header() const { return header_; }
  // Reads the next out.size() elements in C order, converted to double. Throws on truncation.
  void read(std::span<double> out);
  std::int64_t remaining() const { return remaining_; }

 private:
  std::string path_;
  std::ifstream in_;
  NpyHeader header_;
  int elem_size_ = 0;
  char kind_ = 'f';  // 'f' float, 'i' signed, 'u' unsigned, 'b' bool
  std::int64_t remaining_ = 0;
  std::vector<char> buf_;
};

// Writes a whole array atomically (AtomicFile: WriteError on a failed write, no partial file).
// shape's product must equal data.size().
void write_npy(const std::string& path, std::span<const std::int64_t> shape,
               std::span<const double> data);
void write_npy(const std::string& path, std::span<const std::int64_t> shape,
               std::span<const std::int64_t> data);

// Streams an int64 or float64 array whose shape is known up front: the header is written on
// open, rows are appended, close() checks that exactly shape's product elements were written and
// only then puts the file in place (AtomicFile); a writer not closed leaves no file.
class NpyWriter {
 public:
  enum class Dtype { kFloat64, kInt64 };
  NpyWriter(const std::string& path, const std::vector<std::int64_t>& shape, Dtype dtype);
  ~NpyWriter();
  void append(std::span<const double> values);
  void append(std::span<const std::int64_t> values);
  void close();

 private:
  std::string path_;
  std::unique_ptr<AtomicFile> out_;
  Dtype dtype_;
  std::int64_t expected_ = 0, written_ = 0;
  bool closed_ = false;
};

}  // namespace swiftbalancer
