#include <algorithm>
#include <functional>
#include <string>

#include "swiftbalancer/policy/deepseek.h"
#include "swiftbalancer/policy/policy.h"
#include "swiftbalancer/policy/swift.h"
#include "swiftbalancer/policy/vllm_ascend_swap.h"

namespace swiftbalancer {
namespace {

struct Entry {
  const char* name;
  std::function<std::unique_ptr<Policy>()> make;
};

// Sorted by name; the order is the one policy_names() reports.
const std::vector<Entry>& entries() {
  static const std::vector<Entry> kEntries = {
      {"deepseek", [] { return make_deepseek_policy(DeepSeekMode::kAuto); }},
      {"deepseek-global", [] { return make_deepseek_policy(DeepSeekMode::kGlobal); }},
      {"deepseek-hierarchical", [] { return make_deepseek_policy(DeepSeekMode::kHierarchical); }},
      {"swift", [] { return make_swift_policy(); }},
      {"vllm-ascend-swap", [] { return make_vllm_ascend_swap_policy(); }},
  };
  return kEntries;
}

}  // namespace

std::unique_ptr<Policy> make_policy(std::string_view name) {
  for (const Entry& e : entries())
    if (name == e.name) return e.make();
  std::string known;
  for (const Entry& e : entries()) known += (known.empty() ? "" : ", ") + std::string(e.name);
  throw InputError("unknown policy '" + std::string(name) + "' (known: " + known + ")");
}

std::vector<std::string> policy_names() {
  std::vector<std::string> out;
  for (const Entry& e : entries()) out.emplace_back(e.name);
  return out;
}

}  // namespace swiftbalancer
