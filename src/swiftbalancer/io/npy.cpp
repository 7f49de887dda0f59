// numpy .npy reading and writing. Layout (numpy's format spec): the magic "\x93NUMPY", a major and
// a minor version byte, the header length (u16 little-endian for 1.0, u32 for 2.0 and 3.0), then
// an ASCII (UTF-8 for 3.0) Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': (...)}
// padded with spaces and a newline so that the data starts at a multiple of 64 bytes. The data
// follows, C order, no padding.
#include "swiftbalancer/io/npy.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstring>
#include <limits>

#include "swiftbalancer/core/status.h"
#include "swiftbalancer/io/file_check.h"

namespace swiftbalancer {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the npy reader and writer assume a little-endian host");

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicLen = 6;
// A header longer than this is not a real numpy header (numpy itself caps it far lower).
constexpr std::uint32_t kMaxHeaderLen = 1u << 20;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw InputError(path + ": " + what);
}

// A tiny cursor over the header dict text.
struct Cursor {
  const std::string& s;
  std::size_t i = 0;
  void skip_ws() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  bool eat(char c) {
    skip_ws();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  bool peek(char c) {
    skip_ws();
    return i < s.size() && s[i] == c;
  }
};

// Parses a quoted Python string ('...' or "..."); no escapes occur in numpy headers.
bool parse_str(Cursor& c, std::string& out) {
  c.skip_ws();
  if (c.i >= c.s.size() || (c.s[c.i] != '\'' && c.s[c.i] != '"')) return false;
  const char q = c.s[c.i++];
  const std::size_t end = c.s.find(q, c.i);
  if (end == std::string::npos) return false;
  out = c.s.substr(c.i, end - c.i);
  c.i = end + 1;
  return true;
}

NpyHeader parse_header_dict(const std::string& path, const std::string& text, bool& fortran) {
  Cursor c{text};
  NpyHeader h;
  bool have_descr = false, have_order = false, have_shape = false;
  if (!c.eat('{')) fail(path, "malformed npy header (expected a dict): " + text);
  while (!c.eat('}')) {
    std::string key;
    if (!parse_str(c, key) || !c.eat(':')) fail(path, "malformed npy header: " + text);
    if (key == "descr") {
      if (!parse_str(c, h.dtype))
        fail(path, "unsupported npy dtype (structured dtypes are not supported): " + text);
      have_descr = true;
    } else if (key == "fortran_order") {
      c.skip_ws();
      if (text.compare(c.i, 4, "True") == 0) {
        fortran = true;
        c.i += 4;
      } else if (text.compare(c.i, 5, "False") == 0) {
        fortran = false;
        c.i += 5;
      } else {
        fail(path, "malformed npy header (fortran_order): " + text);
      }
      have_order = true;
    } else if (key == "shape") {
      if (!c.eat('(')) fail(path, "malformed npy header (shape): " + text);
      while (!c.eat(')')) {
        c.skip_ws();
        std::int64_t v = 0;
        std::size_t digits = 0;
        while (c.i < text.size() && std::isdigit(static_cast<unsigned char>(text[c.i]))) {
          if (v > (std::numeric_limits<std::int64_t>::max() - 9) / 10)
            fail(path, "npy shape is too large: " + text);
          v = v * 10 + (text[c.i++] - '0');
          ++digits;
        }
        if (digits == 0) fail(path, "malformed npy header (shape): " + text);
        h.shape.push_back(v);
        if (!c.eat(',') && !c.peek(')')) fail(path, "malformed npy header (shape): " + text);
      }
      have_shape = true;
    } else {
      fail(path, "malformed npy header (unknown key '" + key + "'): " + text);
    }
    if (!c.eat(',') && !c.peek('}')) fail(path, "malformed npy header: " + text);
  }
  if (!have_descr || !have_order || !have_shape)
    fail(path, "npy header lacks descr, fortran_order or shape: " + text);
  return h;
}

template <typename T>
void convert(const char* src, double* dst, std::size_t n) {
  for (std::size_t k = 0; k < n; ++k) {
    T v;
    std::memcpy(&v, src + k * sizeof(T), sizeof(T));
    dst[k] = static_cast<double>(v);
  }
}

std::string header_text(const std::string& descr, std::span<const std::int64_t> shape) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (";
  for (std::size_t k = 0; k < shape.size(); ++k) {
    dict += std::to_string(shape[k]);
    if (shape.size() == 1 || k + 1 < shape.size()) dict += ",";
    if (k + 1 < shape.size()) dict += " ";
  }
  dict += "), }";
  return dict;
}

// Magic, version, length and the padded dict; version 1.0 unless the dict needs more room.
std::string encode_header(const std::string& descr, std::span<const std::int64_t> shape) {
  std::string dict = header_text(descr, shape);
  const bool v2 = dict.size() + 1 + kMagicLen + 4 > 65535;
  const std::size_t prefix = kMagicLen + 2 + (v2 ? 4 : 2);
  const std::size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict += '\n';
  std::string out(kMagic, kMagicLen);
  out += static_cast<char>(v2 ? 2 : 1);
  out += static_cast<char>(0);
  const std::uint32_t len = static_cast<std::uint32_t>(dict.size());
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>((len >> 8) & 0xff);
  if (v2) {
    out += static_cast<char>((len >> 16) & 0xff);
    out += static_cast<char>((len >> 24) & 0xff);
  }
  return out + dict;
}

std::int64_t checked_elements(const std::string& path, std::span<const std::int64_t> shape) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    if (d < 0) fail(path, "negative dimension in npy shape");
    if (d != 0 && n > std::numeric_limits<std::int64_t>::max() / d)
      fail(path, "npy shape is too large");
    n *= d;
  }
  return n;
}

void write_whole(const std::string& path, const std::string& descr,
                 std::span<const std::int64_t> shape, const void* data, std::size_t bytes,
                 std::size_t count) {
  if (checked_elements(path, shape) != static_cast<std::int64_t>(count))
    fail(path, "npy shape does not match the " + std::to_string(count) + " values given");
  AtomicFile out(path);
  out.write(encode_header(descr, shape));
  out.write(data, bytes);
  out.commit();
}

}  // namespace

std::int64_t NpyHeader::elements() const {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return n;
}

NpyReader::NpyReader(const std::string& path) : path_(path) {
  check_input_file(path);  // a FIFO would block the open below
  in_.open(path, std::ios::binary);
  if (!in_) fail(path, "cannot open file (missing or unreadable)");
  char pre[kMagicLen + 2];
  if (!in_.read(pre, sizeof(pre)) || std::memcmp(pre, kMagic, kMagicLen) != 0)
    fail(path, "not a numpy .npy file (bad magic)");
  const int major = static_cast<unsigned char>(pre[kMagicLen]);
  if (major < 1 || major > 3)
    fail(path, "unsupported npy format version " + std::to_string(major) + "." +
                   std::to_string(static_cast<unsigned char>(pre[kMagicLen + 1])));
  unsigned char lenbuf[4] = {0, 0, 0, 0};
  const int lenbytes = major == 1 ? 2 : 4;
  if (!in_.read(reinterpret_cast<char*>(lenbuf), lenbytes)) fail(path, "truncated npy header");
  const std::uint32_t hlen = lenbuf[0] | (lenbuf[1] << 8) | (lenbuf[2] << 16) |
                             (static_cast<std::uint32_t>(lenbuf[3]) << 24);
  if (hlen > kMaxHeaderLen) fail(path, "npy header length " + std::to_string(hlen) + " is absurd");
  std::string text(hlen, '\0');
  if (!in_.read(text.data(), hlen)) fail(path, "truncated npy header");
  bool fortran = false;
  header_ = parse_header_dict(path, text, fortran);
  if (fortran)
    fail(path, "Fortran-order npy arrays are not supported (save with numpy.ascontiguousarray)");

  const std::string& d = header_.dtype;
  if (d.size() < 3) fail(path, "unsupported npy dtype '" + d + "'");
  const char order = d[0];
  kind_ = d[1];
  if (order == '>')
    fail(path, "big-endian npy data ('" + d +
                   "') is not supported; convert with "
                   "arr.astype(arr.dtype.newbyteorder('<'))");
  if (order != '<' && order != '|' && order != '=') fail(path, "unsupported npy dtype '" + d + "'");
  try {
    elem_size_ = std::stoi(d.substr(2));
  } catch (const std::exception&) {
    fail(path, "unsupported npy dtype '" + d + "'");
  }
  const bool ok = (kind_ == 'f' && (elem_size_ == 4 || elem_size_ == 8)) ||
                  ((kind_ == 'i' || kind_ == 'u') &&
                   (elem_size_ == 1 || elem_size_ == 2 || elem_size_ == 4 || elem_size_ == 8)) ||
                  (kind_ == 'b' && elem_size_ == 1);
  if (!ok || d.size() != 2 + std::to_string(elem_size_).size())
    fail(path, "unsupported npy dtype '" + d +
                   "' (supported: int8..int64, uint8..uint64, float32, float64, bool)");
  remaining_ = checked_elements(path, header_.shape);

  // Check the data size up front, so a truncated file fails before any row is used.
  const std::streamoff data_start = in_.tellg();
  in_.seekg(0, std::ios::end);
  const std::streamoff file_end = in_.tellg();
  in_.seekg(data_start);
  const std::int64_t have = file_end - data_start;
  if (remaining_ > std::numeric_limits<std::int64_t>::max() / elem_size_ ||
      have < remaining_ * elem_size_)
    fail(path, "truncated npy data: the header promises " + std::to_string(remaining_) +
                   " elements of " + std::to_string(elem_size_) + " bytes, the file holds " +
                   std::to_string(have) + " bytes of data");
}

void NpyReader::read(std::span<double> out) {
  if (static_cast<std::int64_t>(out.size()) > remaining_)
    fail(path_, "read past the end of the npy data (" + std::to_string(out.size()) +
                    " elements asked, " + std::to_string(remaining_) + " left)");
  // Convert in chunks so the buffer stays small whatever the caller asks for.
  constexpr std::size_t kChunk = 1 << 14;
  std::size_t done = 0;
  while (done < out.size()) {
    const std::size_t n = std::min(kChunk, out.size() - done);
    buf_.resize(n * static_cast<std::size_t>(elem_size_));
    if (!in_.read(buf_.data(), static_cast<std::streamsize>(buf_.size())))
      fail(path_, "truncated npy data");
    double* dst = out.data() + done;
    const char* src = buf_.data();
    switch (kind_) {
      case 'f':
        if (elem_size_ == 8)
          convert<double>(src, dst, n);
        else
          convert<float>(src, dst, n);
        break;
      case 'i':
        switch (elem_size_) {
          case 1:
            convert<std::int8_t>(src, dst, n);
            break;
          case 2:
            convert<std::int16_t>(src, dst, n);
            break;
          case 4:
            convert<std::int32_t>(src, dst, n);
            break;
          default:
            convert<std::int64_t>(src, dst, n);
            break;
        }
        break;
      case 'u':
        switch (elem_size_) {
          case 1:
            convert<std::uint8_t>(src, dst, n);
            break;
          case 2:
            convert<std::uint16_t>(src, dst, n);
            break;
          case 4:
            convert<std::uint32_t>(src, dst, n);
            break;
          default:
            convert<std::uint64_t>(src, dst, n);
            break;
        }
        break;
      default:  // 'b'
        for (std::size_t k = 0; k < n; ++k) dst[k] = src[k] != 0 ? 1.0 : 0.0;
        break;
    }
    done += n;
    remaining_ -= static_cast<std::int64_t>(n);
  }
}

void write_npy(const std::string& path, std::span<const std::int64_t> shape,
               std::span<const double> data) {
  write_whole(path, "<f8", shape, data.data(), data.size_bytes(), data.size());
}

void write_npy(const std::string& path, std::span<const std::int64_t> shape,
               std::span<const std::int64_t> data) {
  write_whole(path, "<i8", shape, data.data(), data.size_bytes(), data.size());
}

NpyWriter::NpyWriter(const std::string& path, const std::vector<std::int64_t>& shape, Dtype dtype)
    : path_(path), dtype_(dtype) {
  expected_ = checked_elements(path, shape);
  out_ = std::make_unique<AtomicFile>(path);
  out_->write(encode_header(dtype == Dtype::kFloat64 ? "<f8" : "<i8", shape));
}

// An unfinished writer leaves nothing: AtomicFile removes its temporary.
NpyWriter::~NpyWriter() = default;

void NpyWriter::append(std::span<const double> values) {
  if (closed_) fail(path_, "append after close");
  if (written_ + static_cast<std::int64_t>(values.size()) > expected_)
    fail(path_,
         "more values appended than the npy shape holds (" + std::to_string(expected_) + ")");
  if (dtype_ == Dtype::kFloat64) {
    out_->write(values.data(), values.size_bytes());
  } else {
    for (double v : values) {
      const std::int64_t i = static_cast<std::int64_t>(v);
      out_->write(&i, sizeof(i));
    }
  }
  written_ += static_cast<std::int64_t>(values.size());
}

void NpyWriter::append(std::span<const std::int64_t> values) {
  if (closed_) fail(path_, "append after close");
  if (written_ + static_cast<std::int64_t>(values.size()) > expected_)
    fail(path_,
         "more values appended than the npy shape holds (" + std::to_string(expected_) + ")");
  if (dtype_ == Dtype::kInt64) {
    out_->write(values.data(), values.size_bytes());
  } else {
    for (std::int64_t i : values) {
      const double v = static_cast<double>(i);
      out_->write(&v, sizeof(v));
    }
  }
  written_ += static_cast<std::int64_t>(values.size());
}

void NpyWriter::close() {
  if (closed_) return;
  closed_ = true;
  if (written_ != expected_) {
    out_.reset();  // removes the temporary: a short array is never put in place
    fail(path_, "npy file closed after " + std::to_string(written_) + " of " +
                    std::to_string(expected_) + " values");
  }
  out_->commit();
}

}  // namespace swiftbalancer
