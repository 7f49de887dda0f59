// Runs the built swiftbalancer command (SWIFTBALANCER_CLI) for end-to-end tests.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace swiftbalancer::testing {

struct CliRun {
  int code = -1;    // exit code; -1 when the process did not exit normally
  std::string out;  // stdout and stderr together
};

inline bool cli_built() {
  return std::filesystem::exists(SWIFTBALANCER_CLI);
}

// `s` in single quotes, for command lines (the tests' paths hold no single quote).
inline std::string shell_quote(const std::string& s) {
  return "'" + s + "'";
}

// The quoted path of the built CLI, for command lines.
inline std::string cli_path() {
  return shell_quote(SWIFTBALANCER_CLI);
}

// Runs `command` with sh, stderr into stdout.
inline CliRun run_shell(const std::string& command) {
  const std::string cmd = command + " 2>&1";
  CliRun r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// `args` is appended to the quoted CLI path as it is (the shell splits it).
inline CliRun run_cli(const std::string& args) {
  return run_shell(cli_path() + " " + args);
}

}  // namespace swiftbalancer::testing
