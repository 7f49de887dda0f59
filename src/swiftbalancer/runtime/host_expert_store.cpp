#include "swiftbalancer/runtime/host_expert_store.h"

#include <cstring>
#include <string>
#include <utility>

namespace swiftbalancer {
namespace {

class HostStaging final : public StagingBuffer {
 public:
  explicit HostStaging(std::size_t bytes) : data_(bytes) {}
  std::span<std::byte> bytes() override { return data_; }
  MemoryKind memory_kind() const override { return MemoryKind::kHost; }

 private:
  std::vector<std::byte> data_;
};

}  // namespace

HostExpertStore::HostExpertStore(int layers, int slots) : table_(layers, slots) {}

void HostExpertStore::register_expert(int layer, int slot,
                                      std::vector<std::span<std::byte>> tensors) {
  table_.set(layer, slot, std::move(tensors));
}

Status HostExpertStore::ready() {
  return table_.freeze();
}

std::span<const std::size_t> HostExpertStore::tensor_sizes(int layer) const {
  return table_.tensor_sizes(layer);
}

std::span<std::byte> HostExpertStore::tensor(int layer, int slot, int t) {
  return table_.at(layer, slot)[static_cast<std::size_t>(t)];
}

std::unique_ptr<StagingBuffer> HostExpertStore::allocate_staging(std::size_t bytes) {
  return std::make_unique<HostStaging>(bytes);
}

void HostExpertStore::stage(int layer, int slot, std::span<std::byte> dst) {
  std::size_t off = 0;
  for (const auto& src : table_.at(layer, slot)) {
    if (!src.empty()) std::memcpy(dst.data() + off, src.data(), src.size());
    off += src.size();
  }
}

void HostExpertStore::install(std::span<const std::byte> src, int layer, int slot) {
  std::size_t off = 0;
  for (const auto& dst : table_.at(layer, slot)) {
    if (!dst.empty()) std::memcpy(dst.data(), src.data() + off, dst.size());
    off += dst.size();
  }
}

}  // namespace swiftbalancer
