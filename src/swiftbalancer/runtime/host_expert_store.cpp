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

HostExpertStore::HostExpertStore(int layers, int slots) : layers_(layers), slots_(slots) {
  if (layers < 1 || slots < 1) throw InputError("expert store needs at least one layer and slot");
  slots_of_.resize(static_cast<std::size_t>(layers) * static_cast<std::size_t>(slots));
}

void HostExpertStore::register_expert(int layer, int slot,
                                      std::vector<std::span<std::byte>> tensors) {
  if (ready_) throw InputError("register_expert after the first step");
  if (layer < 0 || layer >= layers_ || slot < 0 || slot >= slots_)
    throw InputError("register_expert: (layer " + std::to_string(layer) + ", slot " +
                     std::to_string(slot) + ") out of range");
  if (tensors.empty()) throw InputError("register_expert: an expert needs at least one tensor");
  at(layer, slot) = std::move(tensors);
}

Status HostExpertStore::ready() {
  if (ready_) return Status::Ok();
  if (Status s = layer_tensor_sizes(layers_, slots_, slots_of_, sizes_); !s.ok()) return s;
  ready_ = true;
  return Status::Ok();
}

std::span<const std::size_t> HostExpertStore::tensor_sizes(int layer) const {
  return sizes_.at(static_cast<std::size_t>(layer));
}

std::span<std::byte> HostExpertStore::tensor(int layer, int slot, int t) {
  return at(layer, slot)[static_cast<std::size_t>(t)];
}

std::unique_ptr<StagingBuffer> HostExpertStore::allocate_staging(std::size_t bytes) {
  return std::make_unique<HostStaging>(bytes);
}

void HostExpertStore::stage(int layer, int slot, std::span<std::byte> dst) {
  std::size_t off = 0;
  for (const auto& src : at(layer, slot)) {
    if (!src.empty()) std::memcpy(dst.data() + off, src.data(), src.size());
    off += src.size();
  }
}

void HostExpertStore::install(std::span<const std::byte> src, int layer, int slot) {
  std::size_t off = 0;
  for (const auto& dst : at(layer, slot)) {
    if (!dst.empty()) std::memcpy(dst.data(), src.data() + off, dst.size());
    off += dst.size();
  }
}

}  // namespace swiftbalancer
