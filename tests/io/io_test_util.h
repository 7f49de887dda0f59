// Helpers for the io tests: a per-test scratch folder and small file writers.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer::testing_io {

// A fresh folder per test, removed at the end.
class ScratchDir {
 public:
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() / ("sb_io_" + std::to_string(::getpid()) + "_" +
                                                     info->test_suite_name() + "_" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    const std::string p = path(name);
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }

 private:
  std::filesystem::path dir_;
};

// EXPECT_CONTAINS(text, part): text contains part (prints both when not).
inline ::testing::AssertionResult contains_format(const char* text_expr, const char*,
                                                  const std::string& text,
                                                  const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << text_expr << " is \"" << text << "\", which does not contain \"" << part << "\"";
}
#define EXPECT_CONTAINS(text, part) \
  EXPECT_PRED_FORMAT2(::swiftbalancer::testing_io::contains_format, text, part)

// The InputError message of `fn`, or "" when it did not throw one.
template <typename Fn>
std::string input_error(Fn&& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace swiftbalancer::testing_io
