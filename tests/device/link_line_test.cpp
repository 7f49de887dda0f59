// The build (issue 19, item 12): no binary of the device path links both the shared and the
// static CUDA runtime (two runtimes in one process, each with its own view of the thread's
// error state and of what it has loaded). Reads the link lines of this build tree (Ninja's
// build.ninja or the Makefiles' link.txt); needs no GPU.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

// The link lines that name the CUDA runtime, from the build tree this test was built in.
std::vector<std::string> cudart_link_lines(const fs::path& build) {
  std::vector<std::string> lines;
  auto scan = [&](const fs::path& file, const char* key) {
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);)
      if ((key == nullptr || line.find(key) != std::string::npos) &&
          line.find("cudart") != std::string::npos)
        lines.push_back(line);
  };
  if (fs::exists(build / "build.ninja")) scan(build / "build.ninja", "LINK_LIBRARIES");
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(build / "tests", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->path().filename() == "link.txt") scan(it->path(), nullptr);
  return lines;
}

TEST(Build, NoBinaryLinksBothCudaRuntimes) {
  // This executable is <build>/tests/device_tests.
  const fs::path exe = fs::read_symlink("/proc/self/exe");
  const fs::path build = exe.parent_path().parent_path();
  const std::vector<std::string> lines = cudart_link_lines(build);
  if (lines.empty()) GTEST_SKIP() << "no link lines found under " << build;
  for (const std::string& line : lines) {
    const bool shared = line.find("libcudart.so") != std::string::npos ||
                        line.find("-lcudart ") != std::string::npos;
    const bool stat = line.find("cudart_static") != std::string::npos;
    EXPECT_FALSE(shared && stat) << "both CUDA runtimes on one link line: " << line.substr(0, 300)
                                 << "...";
  }
}

}  // namespace
