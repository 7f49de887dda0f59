// Load readers and writers: exact small cases, round trips, and every bad-input message.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "io/io_test_util.h"
#include "swiftbalancer/io/example_load.h"
#include "swiftbalancer/io/load_io.h"
#include "swiftbalancer/io/npy.h"

namespace swiftbalancer {
namespace {

using testing_io::input_error;
using testing_io::ScratchDir;

LoadMatrix small() {
  return LoadMatrix(2, 3, {1, 2, 3, 4.5, 0, 6});
}

TEST(LoadFormat, ParsesNames) {
  EXPECT_EQ(parse_load_format("auto"), LoadFormat::kAuto);
  EXPECT_EQ(parse_load_format("sglang"), LoadFormat::kSglangJson);
  EXPECT_EQ(parse_load_format("json"), LoadFormat::kSglangJson);
  EXPECT_EQ(parse_load_format("csv"), LoadFormat::kCsv);
  EXPECT_EQ(parse_load_format("npy"), LoadFormat::kNpy);
  EXPECT_CONTAINS(input_error([] { parse_load_format("xml"); }), "unknown load format 'xml'");
}

TEST(LoadJson, Reads2D) {
  ScratchDir d;
  const auto p = d.write("l.json", R"({"logical_count": [[1, 2, 3], [4.5, 0, 6]]})");
  EXPECT_EQ(read_load(p), small());
}

TEST(LoadJson, Sums3DOverSteps) {
  ScratchDir d;
  const auto p =
      d.write("l.json", R"({"logical_count": [[[1, 1, 1], [4, 0, 1]], [[0, 1, 2], [0.5, 0, 5]]]})");
  EXPECT_EQ(read_load(p), small());
  const auto steps = read_load_steps(p);
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0], LoadMatrix(2, 3, {1, 1, 1, 4, 0, 1}));
  EXPECT_EQ(steps[1], LoadMatrix(2, 3, {0, 1, 2, 0.5, 0, 5}));
}

TEST(LoadJson, InMemoryFormsRoundTrip) {
  const nlohmann::json j = load_to_json(small());
  EXPECT_TRUE(j.contains("logical_count"));
  EXPECT_EQ(load_from_json(j), small());
  EXPECT_EQ(load_from_json(j["logical_count"]), small());  // the bare array is accepted too
}

TEST(LoadJson, BadInputMessages) {
  ScratchDir d;
  auto err = [&](const std::string& text) {
    const auto p = d.write("bad.json", text);
    return input_error([&] { read_load(p); });
  };
  EXPECT_CONTAINS(input_error([&] { read_load(d.path("nope.json")); }),
                  "nope.json: file not found");
  EXPECT_CONTAINS(err(R"({"logical_count": [[1, 2], )"), "malformed JSON");
  EXPECT_CONTAINS(err(R"({"logical_count": [[1, NaN]]})"), "NaN and Infinity are not valid");
  EXPECT_CONTAINS(err(R"({"logical_count": [[1, Infinity]]})"), "malformed JSON");
  EXPECT_CONTAINS(err(R"({"counts": [[1, 2]]})"), "missing key \"logical_count\"");
  EXPECT_CONTAINS(err(R"({"logical_count": 3})"), "logical_count is a number");
  EXPECT_CONTAINS(err(R"({"logical_count": []})"), "logical_count is empty");
  EXPECT_CONTAINS(err(R"({"logical_count": [[1, 2, 3], [4, 5]]})"),
                  "ragged rows: layer 1 has 2 values, expected 3");
  EXPECT_CONTAINS(err(R"({"logical_count": [[[1, 2], [3, 4]], [[1, 2], [3]]]})"),
                  "ragged rows: step 1 layer 1 has 1 values, expected 2");
  EXPECT_CONTAINS(err(R"({"logical_count": [[[1, 2], [3, 4]], [[1, 2]]]})"),
                  "step 1 has 1 layers, expected 2");
  EXPECT_CONTAINS(err(R"({"logical_count": [[1, "x"], [3, 4]]})"),
                  "load of layer 0, expert 1 is not a number (string)");
  EXPECT_CONTAINS(err(R"({"logical_count": [[1, 2], [3, null]]})"),
                  "load of layer 1, expert 1 is not a number (null)");
  EXPECT_CONTAINS(err(R"({"logical_count": [[1, 2], [-3, 4]]})"),
                  "load of layer 1, expert 0 is negative (-3)");
  EXPECT_CONTAINS(err(R"({"logical_count": [[[1, 2]], [[1e999, 2]]]})"),
                  "malformed JSON: [json.exception.out_of_range.406] number overflow");
  EXPECT_CONTAINS(err(R"({"logical_count": [[[1, 2]], [[1, true]]]})"),
                  "load of step 1, layer 0, expert 1 is not a number (boolean)");
  // Every message starts with the file name.
  EXPECT_CONTAINS(err(R"({"logical_count": [[1, 2], [-3, 4]]})"), "bad.json: ");
}

TEST(LoadJson, InMemoryNaNIsRejected) {
  nlohmann::json j = {{"logical_count", {{1.0, std::numeric_limits<double>::quiet_NaN()}}}};
  EXPECT_CONTAINS(input_error([&] { load_from_json(j, "mem"); }),
                  "mem: load of layer 0, expert 1 is NaN");
}

TEST(LoadCsv, ReadsWithoutAndWithSteps) {
  ScratchDir d;
  // Missing cells are 0; duplicates add; order does not matter; whitespace and CRLF are fine.
  auto p =
      d.write("a.csv", "layer,expert,tokens\r\n1,2,6\r\n0,0,1\n0,1,2\n0,2,1\n0,2,2\n1,0,4.5\n\n");
  EXPECT_EQ(read_load(p), small());
  p = d.write("b.csv", "step,layer,expert,tokens\n0,0,0,1\n0,0,1,2\n2,0,2,3\n2,1,0,4.5\n1,1,2,6\n");
  EXPECT_EQ(read_load(p), small());
  const auto steps = read_load_steps(p);
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0], LoadMatrix(2, 3, {1, 2, 0, 0, 0, 0}));
  EXPECT_EQ(steps[1], LoadMatrix(2, 3, {0, 0, 0, 0, 0, 6}));
  EXPECT_EQ(steps[2], LoadMatrix(2, 3, {0, 0, 3, 4.5, 0, 0}));
  // Columns in another order, names in any case.
  p = d.write("c.csv", "Expert, Tokens, Layer\n0,1,0\n1,2,0\n2,3,0\n0,4.5,1\n2,6,1\n");
  EXPECT_EQ(read_load(p), small());
}

TEST(LoadCsv, InfersShapeFromMaxIds) {
  ScratchDir d;
  // Mixtral-like: layers 0, 7, 15 only -> 16 layers, the others all zero.
  const auto p = d.write("m.csv", "layer,expert,tokens\n0,0,5\n7,1,3\n15,7,2\n");
  const LoadMatrix m = read_load(p);
  EXPECT_EQ(m.layers(), 16);
  EXPECT_EQ(m.experts(), 8);
  EXPECT_EQ(m.at(7, 1), 3);
  EXPECT_EQ(m.at(15, 7), 2);
  EXPECT_FALSE(m.layer_has_load(3));
}

TEST(LoadCsv, BadInputMessages) {
  ScratchDir d;
  auto err = [&](const std::string& text) {
    const auto p = d.write("bad.csv", text);
    return input_error([&] { read_load(p); });
  };
  EXPECT_CONTAINS(input_error([&] { read_load(d.path("none.csv")); }), "file not found");
  EXPECT_CONTAINS(err(""), "empty CSV file");
  EXPECT_CONTAINS(err("layer,expert,tokens\n"), "no data rows");
  EXPECT_CONTAINS(err("l,e,t\n0,0,1\n"), "line 1: bad CSV header");
  EXPECT_CONTAINS(err("layer,expert\n0,0\n"), "bad CSV header");
  EXPECT_CONTAINS(err("layer,expert,tokens\n0,0,1\n0,1\n"),
                  "line 3 has 2 fields, expected 3 (ragged row)");
  EXPECT_CONTAINS(err("layer,expert,tokens\n0,0,abc\n"), "line 2: tokens 'abc' is not a number");
  EXPECT_CONTAINS(err("layer,expert,tokens\n0,x,1\n"), "line 2: expert 'x' is not an integer");
  EXPECT_CONTAINS(err("layer,expert,tokens\n-1,0,1\n"), "line 2: layer -1 is negative");
  EXPECT_CONTAINS(err("layer,expert,tokens\n0,0,1\n3,2,nan\n"),
                  "line 3: load of layer 3, expert 2 is NaN");
  EXPECT_CONTAINS(err("layer,expert,tokens\n0,0,inf\n"), "layer 0, expert 0 is infinite");
  EXPECT_CONTAINS(err("layer,expert,tokens\n0,0,1e999\n"), "is infinite");
  EXPECT_CONTAINS(err("step,layer,expert,tokens\n4,1,2,-7\n"),
                  "load of step 4, layer 1, expert 2 is negative (-7)");
  EXPECT_CONTAINS(err("layer,expert,tokens\n0,99999999,1\n"), "too large");
}

TEST(LoadRoundTrip, EveryFormat) {
  ScratchDir d;
  // Awkward doubles must survive the text formats exactly.
  LoadMatrix m(3, 5);
  for (int l = 0; l < 3; ++l)
    for (int e = 0; e < 5; ++e) m.at(l, e) = (l * 5 + e) * 1.1 + 1.0 / 3.0;
  m.at(2, 4) = 0.0;  // a trailing zero cell keeps the shape
  for (const char* name : {"r.json", "r.csv", "r.npy"}) {
    write_load(d.path(name), m);
    EXPECT_EQ(read_load(d.path(name)), m) << name;
  }
  // Explicit formats on an unrelated extension, read back by content sniffing.
  write_load(d.path("r.dat"), m, LoadFormat::kNpy);
  EXPECT_EQ(read_load(d.path("r.dat")), m);
  write_load(d.path("r.txt"), m, LoadFormat::kSglangJson);
  EXPECT_EQ(read_load(d.path("r.txt")), m);
  write_load(d.path("r.log"), m, LoadFormat::kCsv);
  EXPECT_EQ(read_load(d.path("r.log"), LoadFormat::kCsv), m);
  EXPECT_CONTAINS(input_error([&] { write_load(d.path("r.xyz"), m); }),
                  "cannot tell the load format");
}

TEST(LoadRoundTrip, StepsEveryFormat) {
  ScratchDir d;
  std::vector<LoadMatrix> steps = {LoadMatrix(2, 2, {1, 2, 3, 4}),
                                   LoadMatrix(2, 2, {0, 5, 0.25, 0}),
                                   LoadMatrix(2, 2, {7, 0, 0, 1})};
  for (const char* name : {"s.json", "s.csv", "s.npy"}) {
    write_load_steps(d.path(name), steps);
    EXPECT_EQ(read_load_steps(d.path(name)), steps) << name;
    EXPECT_EQ(read_load(d.path(name)), LoadMatrix(2, 2, {8, 7, 3.25, 5})) << name;
  }
  steps.push_back(LoadMatrix(1, 2));
  EXPECT_CONTAINS(input_error([&] { write_load_steps(d.path("x.json"), steps); }),
                  "step 3 has shape 1 x 2");
}

TEST(LoadNpy, ReadsEveryIntegerAndFloatDtype) {
  ScratchDir d;
  // Hand-built files for dtypes the writer does not produce.
  auto make = [&](const std::string& name, const std::string& descr, const std::string& shape,
                  const std::string& payload) {
    std::string dict =
        "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
    while ((10 + dict.size() + 1) % 64 != 0) dict += ' ';
    dict += '\n';
    std::string h = std::string("\x93NUMPY\x01\x00", 8);
    h += static_cast<char>(dict.size() & 0xff);
    h += static_cast<char>(dict.size() >> 8);
    return d.write(name, h + dict + payload);
  };
  auto bytes = [](const auto& values) {
    return std::string(reinterpret_cast<const char*>(values.data()),
                       values.size() * sizeof(values[0]));
  };
  const LoadMatrix want = LoadMatrix(2, 3, {1, 2, 3, 4, 0, 6});
  EXPECT_EQ(
      read_load(make("i1.npy", "|i1", "(2, 3)", bytes(std::vector<std::int8_t>{1, 2, 3, 4, 0, 6}))),
      want);
  EXPECT_EQ(read_load(make("u1.npy", "|u1", "(2, 3)",
                           bytes(std::vector<std::uint8_t>{1, 2, 3, 4, 0, 6}))),
            want);
  EXPECT_EQ(read_load(make("i2.npy", "<i2", "(2, 3)",
                           bytes(std::vector<std::int16_t>{1, 2, 3, 4, 0, 6}))),
            want);
  EXPECT_EQ(read_load(make("u2.npy", "<u2", "(2, 3)",
                           bytes(std::vector<std::uint16_t>{1, 2, 3, 4, 0, 6}))),
            want);
  EXPECT_EQ(read_load(make("i4.npy", "<i4", "(2, 3)",
                           bytes(std::vector<std::int32_t>{1, 2, 3, 4, 0, 6}))),
            want);
  EXPECT_EQ(read_load(make("u4.npy", "<u4", "(2, 3)",
                           bytes(std::vector<std::uint32_t>{1, 2, 3, 4, 0, 6}))),
            want);
  EXPECT_EQ(read_load(make("i8.npy", "<i8", "(2, 3)",
                           bytes(std::vector<std::int64_t>{1, 2, 3, 4, 0, 6}))),
            want);
  EXPECT_EQ(read_load(make("u8.npy", "<u8", "(2, 3)",
                           bytes(std::vector<std::uint64_t>{1, 2, 3, 4, 0, 6}))),
            want);
  EXPECT_EQ(read_load(make("f4.npy", "<f4", "(2, 3)", bytes(std::vector<float>{1, 2, 3, 4, 0, 6}))),
            want);
  // 3-D int32 summed over steps.
  EXPECT_EQ(read_load(make("t.npy", "<i4", "(2, 2, 3)",
                           bytes(std::vector<std::int32_t>{1, 1, 1, 4, 0, 1, 0, 1, 2, 0, 0, 5}))),
            want);
  // Negative values of a signed dtype name their place.
  EXPECT_CONTAINS(input_error([&] {
                    read_load(make("n.npy", "<i8", "(2, 3)",
                                   bytes(std::vector<std::int64_t>{1, 2, 3, 4, -5, 6})));
                  }),
                  "load of layer 1, expert 1 is negative (-5)");
}

TEST(LoadNpy, BadInputMessages) {
  ScratchDir d;
  const std::vector<double> v = {1, 2, 3, 4, 5, 6};
  const std::int64_t shape2[2] = {2, 3};
  write_npy(d.path("ok.npy"), shape2, std::span<const double>(v));
  std::string ok;
  {
    std::ifstream in(d.path("ok.npy"), std::ios::binary);
    ok.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto err = [&](const std::string& bytes) {
    const auto p = d.write("bad.npy", bytes);
    return input_error([&] { read_load(p); });
  };
  EXPECT_CONTAINS(err("hello world"), "not a numpy .npy file (bad magic)");
  EXPECT_CONTAINS(err(ok.substr(0, ok.size() - 8)), "truncated npy data");
  auto patch = [&](const std::string& from, const std::string& to) {
    std::string s = ok;
    const auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    s.replace(at, from.size(), to);
    return s;
  };
  EXPECT_CONTAINS(err(patch("'fortran_order': False", "'fortran_order': True ")),
                  "Fortran-order npy arrays are not supported");
  EXPECT_CONTAINS(err(patch("'<f8'", "'>f8'")), "big-endian npy data ('>f8') is not supported");
  EXPECT_CONTAINS(err(patch("'<f8'", "'<c8'")), "unsupported npy dtype '<c8'");
  EXPECT_CONTAINS(err(patch("'<f8'", "'<f2'")), "unsupported npy dtype '<f2'");
  EXPECT_CONTAINS(err(patch("(2, 3)", "(6,)  ")), "must be 2-D");
  EXPECT_CONTAINS(err(patch("(2, 3)", "(0, 3)")), "0 layers x 3 experts");
  std::string v9 = ok;
  v9[6] = 9;
  EXPECT_CONTAINS(err(v9), "unsupported npy format version 9.0");
  // NaN and infinity inside float data.
  std::vector<double> bad = v;
  bad[4] = std::numeric_limits<double>::quiet_NaN();
  write_npy(d.path("nan.npy"), shape2, std::span<const double>(bad));
  EXPECT_CONTAINS(input_error([&] { read_load(d.path("nan.npy")); }),
                  "nan.npy: load of layer 1, expert 1 is NaN");
  bad[4] = -std::numeric_limits<double>::infinity();
  write_npy(d.path("inf.npy"), shape2, std::span<const double>(bad));
  EXPECT_CONTAINS(input_error([&] { read_load(d.path("inf.npy")); }), "is infinite");
}

TEST(Npy, StreamingWriterAndReader) {
  ScratchDir d;
  const std::string p = d.path("t.npy");
  {
    NpyWriter w(p, {3, 2, 2}, NpyWriter::Dtype::kInt64);
    for (std::int64_t t = 0; t < 3; ++t) {
      const std::vector<std::int64_t> step = {t, t + 1, t + 2, std::int64_t{1} << 40};
      w.append(std::span<const std::int64_t>(step));
    }
    w.close();
  }
  NpyReader r(p);
  EXPECT_EQ(r.header().dtype, "<i8");
  EXPECT_EQ(r.header().shape, (std::vector<std::int64_t>{3, 2, 2}));
  EXPECT_EQ(r.remaining(), 12);
  std::vector<double> row(2);
  for (int t = 0; t < 3; ++t) {
    r.read(row);
    EXPECT_EQ(row, (std::vector<double>{double(t), double(t + 1)}));
    r.read(row);
    EXPECT_EQ(row, (std::vector<double>{double(t + 2), double(std::int64_t{1} << 40)}));
  }
  EXPECT_EQ(r.remaining(), 0);
  EXPECT_THROW(r.read(row), InputError);
  // close() checks the count.
  NpyWriter w(d.path("short.npy"), {2, 2}, NpyWriter::Dtype::kFloat64);
  const std::vector<double> two = {1, 2};
  w.append(std::span<const double>(two));
  EXPECT_CONTAINS(input_error([&] { w.close(); }), "closed after 2 of 4 values");
  NpyWriter w2(d.path("long.npy"), {1}, NpyWriter::Dtype::kFloat64);
  EXPECT_CONTAINS(input_error([&] { w2.append(std::span<const double>(two)); }),
                  "more values appended");
}

TEST(Npy, HeaderIsAlignedAndVersion2Readable) {
  ScratchDir d;
  const std::vector<double> v = {1, 2, 3};
  const std::int64_t shape[1] = {3};
  write_npy(d.path("a.npy"), shape, std::span<const double>(v));
  std::string s;
  {
    std::ifstream in(d.path("a.npy"), std::ios::binary);
    s.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::size_t data_at = s.size() - 24;  // 3 doubles
  EXPECT_EQ(data_at % 64, 0u);                // data starts at a multiple of 64
  EXPECT_EQ(s[data_at - 1], '\n');
  EXPECT_NE(s.find("'shape': (3,)"), std::string::npos);
  // The same dict in a version 2.0 and a 3.0 header (u32 length).
  const std::string dict = s.substr(10, data_at - 10);
  for (char major : {'\x02', '\x03'}) {
    std::string dict2 = dict;
    while ((12 + dict2.size()) % 64 != 0) dict2.insert(dict2.end() - 1, ' ');
    std::string h("\x93NUMPY", 6);
    h.push_back(major);
    h.push_back('\0');
    const std::uint32_t n = static_cast<std::uint32_t>(dict2.size());
    h.append(reinterpret_cast<const char*>(&n), 4);
    const auto p = d.write("v2.npy", h + dict2 + s.substr(data_at));
    NpyReader r(p);
    std::vector<double> out(3);
    r.read(out);
    EXPECT_EQ(out, v);
  }
}

TEST(ExampleLoad, DeterministicAndDeepSeekLikeSkew) {
  const LoadMatrix a = example_load(), b = example_load();
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.layers(), 58);
  EXPECT_EQ(a.experts(), 256);
  EXPECT_TRUE(a.validate().ok());
  EXPECT_NE(example_load(58, 256, 7), a);
  std::vector<double> ratios;
  for (int l = 0; l < a.layers(); ++l) {
    double mx = 0;
    for (double v : a.row(l)) mx = std::max(mx, v);
    ratios.push_back(mx / (a.layer_total(l) / a.experts()));
    EXPECT_NEAR(a.layer_total(l), 8.0 * 16384, 256.0);
  }
  std::sort(ratios.begin(), ratios.end());
  const double median = ratios[ratios.size() / 2];
  EXPECT_GE(median, 5.0);
  EXPECT_LE(median, 8.0);
}

}  // namespace
}  // namespace swiftbalancer

namespace swiftbalancer {
namespace {

// Every prefix of a valid file and every single-byte corruption either loads or throws
// InputError: no other exception, no crash (run under ASan in the sanitizer build).
TEST(LoadRobustness, TruncatedAndCorruptedFilesNeverCrash) {
  testing_io::ScratchDir d;
  const LoadMatrix m(2, 3, {1, 2, 3, 4.5, 0, 6});
  for (const char* name : {"r.json", "r.csv", "r.npy"}) {
    write_load(d.path(name), m);
    std::string full;
    {
      std::ifstream in(d.path(name), std::ios::binary);
      full.assign(std::istreambuf_iterator<char>(in), {});
    }
    const std::string ext = std::string(name).substr(1);
    int loaded = 0, rejected = 0;
    auto attempt = [&](const std::string& bytes) {
      const std::string p = d.write("x" + ext, bytes);
      try {
        const LoadMatrix got = read_load(p);
        EXPECT_TRUE(got.validate().ok());
        ++loaded;
      } catch (const InputError&) {
        ++rejected;
      }
    };
    for (std::size_t n = 0; n < full.size(); ++n) attempt(full.substr(0, n));
    for (std::size_t i = 0; i < full.size(); ++i)
      for (char c : {'\0', '-', '9', 'x', ',', ']', '\n', '\xff'}) {
        std::string s = full;
        s[i] = c;
        attempt(s);
      }
    EXPECT_GT(rejected, 0) << name;
    EXPECT_GT(loaded, 0) << name;
  }
}

}  // namespace
}  // namespace swiftbalancer
