#include "swiftbalancer/runtime/internal/staging_pool.h"

#include <new>
#include <string>

namespace swiftbalancer {

StagingPool::StagingPool(ExpertStore& store, int regions) : store_(store) {
  if (regions < 1) throw InputError("staging pool needs at least one region");
  slots_.resize(static_cast<std::size_t>(regions));
}

Status StagingPool::reserve(std::size_t region_bytes, Clock::time_point deadline) {
  std::lock_guard lock(mu_);
  // Every free region's last fence first: the cycle this reserves for starts with all regions
  // ready on every rank (its first post needs no agreement on what is free).
  for (Region& r : slots_) {
    if (r.in_use || r.fence == 0) continue;
    if (Status s = store_.wait_fence(r.fence, deadline); !s.ok()) return s;
    r.fence = 0;
  }
  if (region_bytes <= region_bytes_) {
    // Big enough; only regions lost to parking need new memory.
    bool all_there = true;
    for (const Region& r : slots_) all_there = all_there && r.buffer != nullptr;
    if (all_there || region_bytes_ == 0) return Status::Ok();
    region_bytes = region_bytes_;
  }
  for (const Region& r : slots_)
    if (r.in_use) return Status::Internal("staging pool resized while a region is in use");
  try {
    for (Region& r : slots_) {
      if (r.buffer && r.buffer->bytes().size() >= region_bytes) continue;
      r.buffer.reset();  // free before allocating: never hold both sizes at once
      r.buffer = store_.allocate_staging(region_bytes);
    }
  } catch (const std::bad_alloc&) {
    for (Region& r : slots_) r.buffer.reset();
    region_bytes_ = 0;
    return Status::InvalidInput("could not allocate " + std::to_string(slots_.size()) + " x " +
                                std::to_string(region_bytes) + " bytes of staging");
  } catch (const std::exception& e) {
    for (Region& r : slots_) r.buffer.reset();
    region_bytes_ = 0;
    return Status::InvalidInput(std::string("could not allocate staging: ") + e.what());
  }
  region_bytes_ = region_bytes;
  return Status::Ok();
}

bool StagingPool::ready(Region& r) {
  if (r.in_use || r.buffer == nullptr) return false;
  if (r.fence != 0) {
    if (!store_.fence_done(r.fence)) return false;
    r.fence = 0;  // fences only ever complete
  }
  return true;
}

std::optional<StagingPool::Lease> StagingPool::acquire() {
  std::lock_guard lock(mu_);
  Region* pick = nullptr;
  for (Region& r : slots_)
    if (ready(r) && (pick == nullptr || r.released_order < pick->released_order)) pick = &r;
  if (pick == nullptr) return std::nullopt;
  pick->in_use = true;
  const int index = static_cast<int>(pick - slots_.data());
  return Lease{index, pick->buffer->bytes().first(region_bytes_)};
}

int StagingPool::ready_regions() {
  std::lock_guard lock(mu_);
  int n = 0;
  // A rank that has never staged anything (nothing to receive so far: reserve(0) allocates no
  // memory) has every region ready: its own posts never acquire one, and its count must not
  // hold back the others' budget, the minimum over ranks.
  for (Region& r : slots_) n += ready(r) || (region_bytes_ == 0 && !r.in_use) ? 1 : 0;
  return n;
}

Status StagingPool::wait_free(Clock::time_point deadline) {
  std::lock_guard lock(mu_);
  for (Region& r : slots_) {
    if (r.in_use || r.fence == 0) continue;
    if (Status s = store_.wait_fence(r.fence, deadline); !s.ok()) return s;
    r.fence = 0;
  }
  return Status::Ok();
}

void StagingPool::release(int region, std::uint64_t fence) {
  std::lock_guard lock(mu_);
  Region& r = slots_.at(static_cast<std::size_t>(region));
  r.in_use = false;
  r.fence = fence;
  r.released_order = ++releases_;
}

void StagingPool::park(int region) {
  std::lock_guard lock(mu_);
  Region& r = slots_.at(static_cast<std::size_t>(region));
  parked_.push_back(std::move(r.buffer));
  r = Region{};
}

std::size_t StagingPool::region_bytes() const {
  std::lock_guard lock(mu_);
  return region_bytes_;
}

std::int64_t StagingPool::allocated_bytes() const {
  std::lock_guard lock(mu_);
  std::int64_t n = 0;
  for (const Region& r : slots_)
    if (r.buffer) n += static_cast<std::int64_t>(r.buffer->bytes().size());
  for (const auto& b : parked_) n += static_cast<std::int64_t>(b->bytes().size());
  return n;
}

std::int64_t StagingPool::parked_bytes() const {
  std::lock_guard lock(mu_);
  std::int64_t n = 0;
  for (const auto& b : parked_) n += static_cast<std::int64_t>(b->bytes().size());
  return n;
}

}  // namespace swiftbalancer
