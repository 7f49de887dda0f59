#include "swiftbalancer/torch/torch_expert_store.h"

#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <cstring>
#include <thread>
#include <utility>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer::torch_engine {
namespace {

class TorchStaging final : public StagingBuffer {
 public:
  explicit TorchStaging(at::Tensor t) : t_(std::move(t)) {}
  std::span<std::byte> bytes() override {
    return {static_cast<std::byte*>(t_.data_ptr()), static_cast<std::size_t>(t_.numel())};
  }
  MemoryKind memory_kind() const override {
    return t_.device().is_cpu() ? MemoryKind::kHost : MemoryKind::kDevice;
  }

 private:
  at::Tensor t_;
};

c10::Device common_device(const std::vector<std::vector<at::Tensor>>& experts) {
  for (const auto& layer : experts)
    for (const at::Tensor& t : layer)
      if (t.defined()) return t.device();
  throw InputError("no expert tensors given");
}

c10::Stream current_stream(c10::Device d) {
  return c10::impl::VirtualGuardImpl(d.type()).getStream(d);
}

}  // namespace

TorchExpertStore::TorchExpertStore(std::vector<std::vector<at::Tensor>> experts, int slots)
    : tensors_(std::move(experts)),
      table_(static_cast<int>(tensors_.size()), slots),
      device_(common_device(tensors_)) {
  for (std::size_t l = 0; l < tensors_.size(); ++l) {
    const auto& ts = tensors_[l];
    if (ts.empty()) throw InputError("layer " + std::to_string(l) + " has no expert tensors");
    for (std::size_t t = 0; t < ts.size(); ++t) {
      const at::Tensor& x = ts[t];
      const std::string where = "layer " + std::to_string(l) + " tensor " + std::to_string(t);
      if (!x.defined() || x.dim() < 1 || x.size(0) != slots)
        throw InputError(where + ": the leading dimension must be the " + std::to_string(slots) +
                         " local slots");
      if (x.device() != device_)
        throw InputError(where + " is on " + x.device().str() + ", the others on " + device_.str());
      if (!x.is_contiguous()) throw InputError(where + " is not contiguous");
      if (x.numel() == 0) throw InputError(where + " is empty");
    }
  }
  for (int l = 0; l < table_.layers(); ++l)
    for (int s = 0; s < slots; ++s) {
      std::vector<std::span<std::byte>> rows;
      for (const at::Tensor& x : tensors_[static_cast<std::size_t>(l)]) {
        const std::size_t row =
            static_cast<std::size_t>(x.nbytes()) / static_cast<std::size_t>(slots);
        rows.emplace_back(static_cast<std::byte*>(x.data_ptr()) + row * static_cast<std::size_t>(s),
                          row);
      }
      table_.set(l, s, std::move(rows));
    }
  if (!device_.is_cpu()) {
    c10::impl::VirtualGuardImpl impl(device_.type());
    side_ = impl.getStreamFromGlobalPool(device_, /*isHighPriority=*/false);
  }
}

TorchExpertStore::~TorchExpertStore() {
  if (!side_) return;
  // Bounded: a stuck copy must not hang teardown (the engine's memory outlives us anyway).
  const auto deadline = Clock::now() + Millis(5000);
  while (!side_->query() && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::microseconds(100));
}

at::Tensor TorchExpertStore::view(const std::byte* p, std::size_t bytes) const {
  return at::from_blob(const_cast<std::byte*>(p), {static_cast<std::int64_t>(bytes)},
                       at::TensorOptions().dtype(at::kByte).device(device_));
}

std::unique_ptr<StagingBuffer> TorchExpertStore::allocate_staging(std::size_t bytes) {
  return std::make_unique<TorchStaging>(at::empty(
      {static_cast<std::int64_t>(bytes)}, at::TensorOptions().dtype(at::kByte).device(device_)));
}

void TorchExpertStore::copy(std::byte* dst, const std::byte* src, std::size_t bytes) {
  if (!side_) {
    std::memcpy(dst, src, bytes);
    return;
  }
  c10::StreamGuard guard(*side_);
  view(dst, bytes).copy_(view(src, bytes), /*non_blocking=*/true);
}

void TorchExpertStore::stage(int layer, int slot, std::span<std::byte> dst) {
  std::size_t off = 0;
  for (const std::span<std::byte>& t : table_.at(layer, slot)) {
    copy(dst.data() + off, t.data(), t.size());
    off += t.size();
  }
  last_ = LastCopy::kStage;
}

void TorchExpertStore::install(std::span<const std::byte> src, int layer, int slot) {
  if (side_ && last_ != LastCopy::kInstall) {
    // Writes wait for everything the engine queued so far: the forward's last read of the slot.
    c10::Event engine_done(device_.type());
    engine_done.record(current_stream(device_));
    engine_done.block(*side_);
  }
  std::size_t off = 0;
  for (const std::span<std::byte>& t : table_.at(layer, slot)) {
    copy(t.data(), src.data() + off, t.size());
    off += t.size();
  }
  last_ = LastCopy::kInstall;
  installs_since_fence_ = true;
}

std::uint64_t TorchExpertStore::fence() {
  const std::uint64_t id = ++fences_;
  last_ = LastCopy::kNone;
  if (!side_) return id;
  c10::Event ev(device_.type());
  ev.record(*side_);
  if (installs_since_fence_) ev.block(current_stream(device_));  // weights first, then reads
  installs_since_fence_ = false;
  std::lock_guard<std::mutex> lock(mu_);
  events_.emplace_back(id, std::move(ev));
  return id;
}

bool TorchExpertStore::fence_done(std::uint64_t fence) {
  if (!side_) return true;
  std::lock_guard<std::mutex> lock(mu_);
  // Fences complete in order (one stream): drop the done ones from the front.
  while (!events_.empty() && events_.front().second.query()) events_.pop_front();
  return events_.empty() || events_.front().first > fence;
}

Status TorchExpertStore::wait_fence(std::uint64_t fence, Clock::time_point deadline) {
  while (!fence_done(fence)) {
    if (Clock::now() >= deadline)
      return Status::Timeout("expert copies on " + device_.str() + " not done by the deadline");
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return Status::Ok();
}

}  // namespace swiftbalancer::torch_engine
