// A test policy: deepseek-global behind a gate the test opens. rebalance() waits until the gate
// is open, at most 20 s, so that a broken test cannot hang the suite. Thread-safe: the gate is
// an atomic the test owns and keeps alive for the policy's lifetime.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string_view>
#include <thread>

#include "swiftbalancer/policy/policy.h"

namespace swiftbalancer::testing {

class GatedPolicy final : public Policy {
 public:
  explicit GatedPolicy(std::atomic<bool>& open)
      : open_(open), inner_(make_policy("deepseek-global")) {}
  std::string_view name() const override { return "gated"; }
  Placement rebalance(const PolicyInput& in) const override {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!open_.load() && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return inner_->rebalance(in);
  }

 private:
  std::atomic<bool>& open_;
  std::unique_ptr<Policy> inner_;
};

}  // namespace swiftbalancer::testing
