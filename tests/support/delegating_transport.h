// A transport that hands every call to another one (a rank's real transport); a test derives
// from it and overrides only the calls whose behaviour it changes. Not thread-safe beyond what
// the inner transport is.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "swiftbalancer/transport/transport.h"

namespace swiftbalancer::test_support {

class DelegatingTransport : public Transport {
 public:
  explicit DelegatingTransport(Transport& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string name() const override { return "delegating to " + inner_.name(); }
  bool broken() const override { return inner_.broken(); }
  Status all_gather(std::span<const std::int64_t> mine, std::span<std::int64_t> out,
                    Millis timeout) override {
    return inner_.all_gather(mine, out, timeout);
  }
  Status all_reduce(std::span<std::int64_t> values, ReduceOp op, Millis timeout) override {
    return inner_.all_reduce(values, op, timeout);
  }
  std::unique_ptr<TransferBatch> post(std::span<const P2POp> ops) override {
    return inner_.post(ops);
  }

 protected:
  Transport& inner_;  // outlives this one
};

}  // namespace swiftbalancer::test_support
