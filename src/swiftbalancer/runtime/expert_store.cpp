#include "swiftbalancer/runtime/expert_store.h"

#include <string>
#include <utility>

namespace swiftbalancer {

Status layer_tensor_sizes(int layers, int slots,
                          std::span<const std::vector<std::span<std::byte>>> slots_of,
                          std::vector<std::vector<std::size_t>>& sizes) {
  const auto where = [](int l, int s) {
    return "layer " + std::to_string(l) + " slot " + std::to_string(s);
  };
  std::vector<std::vector<std::size_t>> out(static_cast<std::size_t>(layers));
  for (int l = 0; l < layers; ++l) {
    for (int s = 0; s < slots; ++s) {
      const auto& t = slots_of[static_cast<std::size_t>(l) * static_cast<std::size_t>(slots) +
                               static_cast<std::size_t>(s)];
      if (t.empty())
        return Status::InvalidInput("expert buffers of " + where(l, s) + " were not registered");
      std::vector<std::size_t> sz;
      for (const auto& b : t) sz.push_back(b.size());
      if (s == 0) {
        out[static_cast<std::size_t>(l)] = std::move(sz);
      } else if (sz != out[static_cast<std::size_t>(l)]) {
        return Status::InvalidInput(where(l, s) + ": tensor count or sizes differ from slot 0");
      }
    }
  }
  sizes = std::move(out);
  return Status::Ok();
}

}  // namespace swiftbalancer
