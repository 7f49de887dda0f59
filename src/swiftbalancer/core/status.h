// Status: the result of an operation that can fail for expected reasons (bad input, a timeout, a
// peer that does not answer). Cheap to copy; an ok Status holds no message.
//
// The error model:
//   - InputError: thrown by readers, parsers and constructors when the caller hands malformed
//     input. Its message names the problem; the CLI turns it into exit code 2.
//   - Status: expected run-time failures at a boundary that must not throw (transports,
//     collectives, transfers): a failed post() is a failed batch, not an exception. It is
//     [[nodiscard]]: a caller that drops one on purpose writes (void) and says why.
//   - InternalError: a broken invariant inside the library (a bug, never the caller's data). The
//     CLI reports it as such (exit 3).
//   - Failures of the machine, not of the input or the library, each thrown where it happens and
//     run-time failures to the CLI (exit 1): WriteError (io/atomic_file.h), an output file that
//     could not be written or moved into place (disk full, permissions; nothing half-written is
//     left); DeviceError (device/cuda_util.h), a CUDA or NCCL call that failed outside the
//     transport boundary (set-up, allocation, bootstrap), where no Status can carry it.
//     ResourceError (core/resource.h), memory or a thread the machine could not give, exits 3.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace swiftbalancer {

enum class StatusCode {
  kOk = 0,
  kInvalidInput,    // shapes, ranges, NaN, files: the caller's data is wrong
  kTimeout,         // a bounded wait ran out
  kTransportError,  // a send, receive or collective failed
  kCancelled,       // work dropped on purpose (shutdown, a cycle abandoned everywhere)
  kInternal,        // a bug or an exception caught at a thread boundary
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidInput(std::string msg) {
    return {StatusCode::kInvalidInput, std::move(msg)};
  }
  static Status Timeout(std::string msg) { return {StatusCode::kTimeout, std::move(msg)}; }
  static Status TransportError(std::string msg) {
    return {StatusCode::kTransportError, std::move(msg)};
  }
  static Status Cancelled(std::string msg) { return {StatusCode::kCancelled, std::move(msg)}; }
  static Status Internal(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "timeout: rank 3 did not answer within 500 ms"
  std::string to_string() const;

 private:
  Status(StatusCode code, std::string msg) : code_(code), message_(std::move(msg)) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& what) : std::runtime_error(what) {}
};

class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& what) : std::logic_error(what) {}
};

// Severity of a log line handed to a log sink (the CLI filters on it, never on the text).
enum class LogSeverity { kInfo, kWarning, kError };
const char* log_severity_name(LogSeverity severity);  // "info", "warning", "error"

// Throws InputError with the status message when `s` is not ok.
void throw_if_error(const Status& s);

}  // namespace swiftbalancer
