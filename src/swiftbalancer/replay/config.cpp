// The replay's configuration: modes, the policy list and the checks of ReplayConfig.
#include <cmath>
#include <string>

#include "swiftbalancer/core/status.h"
#include "swiftbalancer/replay/replay.h"

namespace swiftbalancer::replay {

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kOff:
      return "off";
    case Mode::kStatic:
      return "static";
    case Mode::kSync:
      return "sync";
    case Mode::kAsync:
      return "async";
  }
  return "?";
}

std::vector<PolicySpec> parse_policy_list(const std::string& list) {
  std::vector<PolicySpec> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string item = list.substr(start, end - start);
    // Trim spaces.
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    start = end + 1;
    if (item.empty()) {
      if (end == list.size()) break;
      throw InputError("empty entry in policy list '" + list + "'");
    }
    PolicySpec spec;
    spec.label = item;
    const std::size_t colon = item.find(':');
    std::string name = item.substr(0, colon);
    std::string mode = colon == std::string::npos ? "" : item.substr(colon + 1);
    if (name == "off") {
      if (!mode.empty() && mode != "off")
        throw InputError("'off' takes no mode, got '" + item + "'");
      spec.mode = Mode::kOff;
    } else if (name == "static" && mode.empty()) {
      spec.policy = "deepseek-global";
      spec.mode = Mode::kStatic;
    } else {
      spec.policy = name;
      if (mode.empty() || mode == "async") {
        spec.mode = Mode::kAsync;
      } else if (mode == "shift") {
        spec.mode = Mode::kAsync;  // async with shift detection
        spec.shift = true;
      } else if (mode == "sync") {
        spec.mode = Mode::kSync;
      } else if (mode == "static") {
        spec.mode = Mode::kStatic;
      } else {
        throw InputError("unknown mode '" + mode + "' in '" + item +
                         "' (known: async, shift, sync, static)");
      }
      make_policy(spec.policy);  // throws InputError naming the known policies
    }
    for (const PolicySpec& prev : out)
      if (prev.policy == spec.policy && prev.mode == spec.mode && prev.shift == spec.shift)
        throw InputError("policy '" + item + "' is listed twice");
    out.push_back(std::move(spec));
    if (end == list.size()) break;
  }
  if (out.empty()) throw InputError("the policy list is empty");
  return out;
}

void ReplayConfig::validate() const {
  if (policies.empty()) throw InputError("replay needs at least one policy");
  if (interval <= 0) throw InputError("interval must be positive");
  // Written so that NaN fails: every comparison with NaN is false.
  if (!(decay >= 0.0 && decay < 1.0)) throw InputError("decay must be in [0, 1)");
  if (decay == 0.0 && window <= 0) throw InputError("window must be positive");
  if (decay == 0.0 && window % interval != 0)
    throw InputError("window (" + std::to_string(window) +
                     " steps) must be a whole number of intervals (" + std::to_string(interval) +
                     " steps): the runtime's window holds whole intervals");
  if (layers_per_step <= 0) throw InputError("layers-per-step must be positive");
  if (poll_steps <= 0) throw InputError("poll-steps must be positive");
  if (recover_window <= 0) throw InputError("recover-window must be positive");
  if (!(recover_tol >= 0.0) || !std::isfinite(recover_tol))
    throw InputError("recover-tol must be finite and not negative");
  if (std::isnan(policy_ms) || std::isinf(policy_ms))
    throw InputError("policy-ms must be finite (negative: measured)");
  if (heatmap_bins <= 0) throw InputError("heatmap bins must be positive");
  if (switch_blend < 0) throw InputError("switch blend must not be negative");
  if (shift.check_steps <= 0) throw InputError("shift-check must be positive");
  if (!(shift.skip_below >= 0.0)) throw InputError("shift-skip must not be negative");
  if (shift.layers_per_step < 0) throw InputError("shift-layers-per-step must not be negative");
  shift.validate();
  cost.validate();
}

}  // namespace swiftbalancer::replay
