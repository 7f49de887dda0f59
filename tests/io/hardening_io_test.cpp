// Hostile paths and sizes for the readers and writers: FIFOs, devices and folders as inputs;
// outputs written atomically (no partial or orphaned file on any failure); CSV memory that
// follows the rows present; sums over steps that overflow to infinity.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "io/io_test_util.h"
#include "swiftbalancer/io/atomic_file.h"
#include "swiftbalancer/io/file_check.h"
#include "swiftbalancer/io/load_io.h"
#include "swiftbalancer/io/npy.h"
#include "swiftbalancer/io/placement_io.h"

namespace swiftbalancer {
namespace {

using testing_io::input_error;
using testing_io::ScratchDir;

// Names in a folder (to see that no temporary is left behind).
std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Without the regular-file check every one of these blocks forever in open() (no writer).
TEST(HardeningIo, FifoInputsAreRefusedWithoutBlocking) {
  ScratchDir d;
  for (const char* name : {"f.json", "f.csv", "f.npy", "f.txt"}) {
    const std::string p = d.path(name);
    ASSERT_EQ(::mkfifo(p.c_str(), 0600), 0);
    const std::string want = p + ": is a FIFO (named pipe), not a regular file";
    EXPECT_EQ(input_error([&] { read_load(p); }), want);
    EXPECT_EQ(input_error([&] { read_load_steps(p); }), want);
    EXPECT_EQ(input_error([&] { read_placement(p, Topology::make(2, 2), 4); }), want);
    EXPECT_EQ(input_error([&] { NpyReader r(p); }), want);
  }
}

TEST(HardeningIo, DevicesAndFoldersAreNotInputs) {
  ScratchDir d;
  EXPECT_EQ(input_error([] { read_load("/dev/null", LoadFormat::kCsv); }),
            "/dev/null: is a character device, not a regular file");
  EXPECT_EQ(input_error([&] { read_load(d.path("")); }),
            d.path("") + ": is a directory, not a file");
  EXPECT_EQ(input_error([&] { check_input_file(d.path("none.json"), "--load"); }),
            "--load " + d.path("none.json") + ": file not found");
}

TEST(HardeningIo, OutputChecksNameThePathAndOption) {
  ScratchDir d;
  EXPECT_EQ(input_error([] { check_output_file("/nonexistent/r.json", "--report"); }),
            "--report /nonexistent/r.json: cannot write here: folder /nonexistent does not exist");
  std::filesystem::create_directories(d.path("sub"));
  EXPECT_EQ(input_error([&] { check_output_file(d.path("sub"), "--out"); }),
            "--out " + d.path("sub") + ": cannot write here: is a directory, not a file");
  EXPECT_EQ(input_error([] { check_output_file("/dev/null"); }),
            "/dev/null: cannot write here: is a character device, not a regular file");
  EXPECT_EQ(input_error([&] { check_output_file(d.path("ok.json")); }), "");
  EXPECT_FALSE(std::filesystem::exists(d.path("ok.json")));  // a check creates nothing
}

TEST(HardeningIo, AtomicFileReplacesWholeOrNotAtAll) {
  ScratchDir d;
  const std::string p = d.write("a.txt", "old");
  {
    AtomicFile f(p);
    f.write("new ");
    EXPECT_EQ(slurp(p), "old");  // nothing visible before commit
    f.write("text");
    f.commit();
  }
  EXPECT_EQ(slurp(p), "new text");
  {
    AtomicFile f(p);
    f.write("abandoned");
  }  // destroyed without commit: the old file stays, the temporary goes
  EXPECT_EQ(slurp(p), "new text");
  EXPECT_EQ(listing(d.path("")), std::vector<std::string>{"a.txt"});
}

// A file-size limit (ulimit -f): the write fails with WriteError and leaves nothing behind.
// Issue 21: the outputs of one run land together or not at all.
TEST(HardeningIo, OutputGroupCommitsAllOrNone) {
  ScratchDir d;
  {
    OutputGroup group;
    write_file_atomically(d.path("a.json"), "{}\n");
    write_file_atomically(d.path("b.json"), "{}\n");
    EXPECT_FALSE(std::filesystem::exists(d.path("a.json")));  // finished, not yet in place
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(d.path("")),
                            std::filesystem::directory_iterator()),
              2);  // the two temporaries
    // A failure here (an exception) leaves the group uncommitted.
  }
  EXPECT_TRUE(std::filesystem::is_empty(d.path("")));
  {
    OutputGroup group;
    write_file_atomically(d.path("a.json"), "{}\n");
    write_file_atomically(d.path("b.json"), "{}\n");
    group.commit();
  }
  EXPECT_TRUE(std::filesystem::exists(d.path("a.json")));
  EXPECT_TRUE(std::filesystem::exists(d.path("b.json")));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(d.path("")),
                          std::filesystem::directory_iterator()),
            2);
  EXPECT_THROW(
      {
        OutputGroup g1;
        OutputGroup g2;
      },
      InternalError);
}

// A legal 255-byte name still gets a temporary that fits NAME_MAX, next to it.
TEST(HardeningIo, TemporaryNamesFitTheNameLimit) {
  const std::string name(255, 'x');
  const std::string t = temporary_name("/some/dir/" + name, ".tmp.123.4", 255);
  EXPECT_EQ(t.rfind("/some/dir/", 0), 0u);
  EXPECT_EQ(t.size() - std::string("/some/dir/").size(), 255u);
  EXPECT_EQ(t.substr(t.size() - 10), ".tmp.123.4");
  EXPECT_EQ(temporary_name("short.json", ".tmp.1.2", 255), "short.json.tmp.1.2");
  ScratchDir d;
  write_file_atomically(d.path(name), "ok\n");
  EXPECT_TRUE(std::filesystem::exists(d.path(name)));
}

TEST(HardeningIo, WriteFailureLeavesNoFile) {
  ScratchDir d;
  auto* old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  rlimit small = old;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string what;
  try {
    write_file_atomically(d.path("big.txt"), std::string(100000, 'x'));
  } catch (const WriteError& e) {
    what = e.what();
  }
  bool npy_failed = false;
  try {
    NpyWriter w(d.path("big.npy"), {1000, 10}, NpyWriter::Dtype::kInt64);
    std::vector<std::int64_t> row(10, 1);
    for (int i = 0; i < 1000; ++i) w.append(std::span<const std::int64_t>(row));
    w.close();
  } catch (const WriteError&) {
    npy_failed = true;
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(what, d.path("big.txt") + ": write failed (File too large)");
  EXPECT_TRUE(npy_failed);
  EXPECT_TRUE(listing(d.path("")).empty());
}

TEST(HardeningIo, WritersCheckTheFolderFirst) {
  ScratchDir d;
  const LoadMatrix m(1, 2, {1.0, 2.0});
  EXPECT_EQ(
      input_error([&] { write_load(d.path("no/x.json"), m); }),
      d.path("no/x.json") + ": cannot write here: folder " + d.path("no") + " does not exist");
  const Topology topo = Topology::make(1, 2);
  const Placement p(1, 2, 2, {0, 1});
  EXPECT_CONTAINS(input_error([&] { write_placement(d.path("no/p.json"), p, topo); }),
                  "does not exist");
  EXPECT_TRUE(listing(d.path("")).empty());
}

TEST(HardeningIo, NpyWriterNotClosedLeavesNoFile) {
  ScratchDir d;
  {
    NpyWriter w(d.path("t.npy"), {2, 2}, NpyWriter::Dtype::kFloat64);
    const double row[2] = {1, 2};
    w.append(std::span<const double>(row));
  }
  EXPECT_TRUE(listing(d.path("")).empty());
  NpyWriter w(d.path("s.npy"), {2, 2}, NpyWriter::Dtype::kFloat64);
  EXPECT_CONTAINS(input_error([&] { w.close(); }), "closed after 0 of 4 values");
  EXPECT_TRUE(listing(d.path("")).empty());
}

// The 47-byte case of issue 12: one row naming layer 1000000 must not allocate 800 MB.
TEST(HardeningIo, CsvMemoryFollowsTheRows) {
  ScratchDir d;
  const std::string p = d.write("big.csv", "layer,expert,tokens\n1000000,100,3\n");
  EXPECT_EQ(input_error([&] { read_load(p); }),
            p + ": 1 data row(s) describe 1000001 layers x 101 experts = 101000101 cells; a CSV "
                "may describe at most 64 cells per row (or 1048576 in all): are the layer and "
                "expert ids right?");
  const std::string steps = d.write("steps.csv", "step,layer,expert,tokens\n100000,10,10,1\n");
  EXPECT_CONTAINS(input_error([&] { read_load_steps(steps); }), "100001 steps x 11 layers");
  // Summed over steps the same file is small: 11 x 11 cells, one of them loaded.
  const LoadMatrix summed = read_load(steps);
  EXPECT_EQ(summed.layers(), 11);
  EXPECT_EQ(summed.at(10, 10), 1.0);
  // Sparse but within the free megacell: read as before, missing cells 0.
  const LoadMatrix sparse = read_load(d.write("s.csv", "layer,expert,tokens\n999,999,5\n"));
  EXPECT_EQ(sparse.layers(), 1000);
  EXPECT_EQ(sparse.at(999, 999), 5.0);
  EXPECT_EQ(sparse.at(0, 0), 0.0);
}

TEST(HardeningIo, SumOverStepsThatOverflowsIsAnError) {
  ScratchDir d;
  const std::string p = d.write("inf.json", "{\"logical_count\": [[[1e308, 1]], [[1e308, 1]]]}");
  EXPECT_EQ(input_error([&] { read_load(p); }),
            p + ": load of layer 0, expert 0 overflows to infinity when summed over the steps");
  // Each step on its own is finite, but above the 2^53 per-cell limit (issue 21).
  EXPECT_CONTAINS(input_error([&] { read_load_steps(p); }),
                  p + ": load of step 0, layer 0, expert 0 is 1e+308, above the limit of 2^53");
  const std::string c = d.write("inf.csv", "layer,expert,tokens\n0,0,1e308\n0,0,1e308\n");
  EXPECT_CONTAINS(input_error([&] { read_load(c); }), "overflows to infinity");
  EXPECT_CONTAINS(
      input_error([] { load_from_json(nlohmann::json::parse("[[[1e308]], [[1e308]]]"), "mem"); }),
      "mem: load of layer 0, expert 0 overflows");
}

}  // namespace
}  // namespace swiftbalancer
