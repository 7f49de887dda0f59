#include "swiftbalancer/demo/token_dispatcher.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace swiftbalancer {
namespace {

template <typename T>
std::span<std::byte> bytes(std::vector<T>& v, std::size_t from, std::size_t count) {
  return {reinterpret_cast<std::byte*>(v.data() + from), count * sizeof(T)};
}

}  // namespace

TokenDispatcher::TokenDispatcher(Transport& transport, int hidden, int tag_base, Millis timeout)
    : t_(transport), hidden_(hidden), tag_base_(tag_base), timeout_(timeout), R_(transport.size()) {
  if (hidden < 1) throw InputError("dispatcher: hidden size must be positive");
  if (tag_base < 0 || tag_base + 3 > Transport::kMaxTag) throw InputError("dispatcher: bad tags");
  send_counts_.resize(static_cast<std::size_t>(R_));
  all_counts_.resize(static_cast<std::size_t>(R_) * R_);
  send_off_.resize(static_cast<std::size_t>(R_) + 1);
  recv_off_.resize(static_cast<std::size_t>(R_) + 1);
}

void TokenDispatcher::run(std::vector<P2POp>& ops, const char* what) {
  auto batch = t_.post(ops);
  const Status s = batch->wait(Clock::now() + timeout_);
  if (!s.ok()) throw std::runtime_error(std::string("token ") + what + " failed: " + s.to_string());
}

void TokenDispatcher::dispatch(std::span<const Assignment> a, std::span<const float> x) {
  const std::size_t H = static_cast<std::size_t>(hidden_);
  std::fill(send_counts_.begin(), send_counts_.end(), 0);
  for (const Assignment& as : a) ++send_counts_[static_cast<std::size_t>(as.dst_rank)];
  send_off_[0] = 0;
  for (int r = 0; r < R_; ++r)
    send_off_[r + 1] = send_off_[r] + static_cast<std::size_t>(send_counts_[r]);
  // Counting sort by destination, stable.
  order_.resize(a.size());
  std::vector<std::size_t>& pos = recv_off_;  // borrowed as a cursor, rebuilt below
  std::copy(send_off_.begin(), send_off_.end(), pos.begin());
  for (std::size_t i = 0; i < a.size(); ++i)
    order_[pos[static_cast<std::size_t>(a[i].dst_rank)]++] = static_cast<int>(i);
  send_slots_.resize(a.size());
  send_rows_.resize(a.size() * H);
  for (std::size_t j = 0; j < a.size(); ++j) {
    const Assignment& as = a[static_cast<std::size_t>(order_[j])];
    send_slots_[j] = as.dst_slot;
    std::memcpy(send_rows_.data() + j * H, x.data() + static_cast<std::size_t>(as.token) * H,
                H * sizeof(float));
  }
  const Status s = t_.all_gather(send_counts_, all_counts_, timeout_);
  if (!s.ok()) throw std::runtime_error("token count exchange failed: " + s.to_string());
  const int me = t_.rank();
  recv_off_[0] = 0;
  for (int r = 0; r < R_; ++r)
    recv_off_[r + 1] =
        recv_off_[r] + static_cast<std::size_t>(all_counts_[static_cast<std::size_t>(r) * R_ + me]);
  const std::size_t n = recv_off_[static_cast<std::size_t>(R_)];
  recv_slots_.resize(n);
  recv_rows_.resize(n * H);
  results_.resize(n * H);
  ops_.clear();
  for (int p = 0; p < R_; ++p) {
    const std::size_t rc = recv_off_[p + 1] - recv_off_[p], sc = send_off_[p + 1] - send_off_[p];
    if (rc > 0) {
      ops_.push_back(P2POp::recv(p, tag_base_, bytes(recv_slots_, recv_off_[p], rc)));
      ops_.push_back(P2POp::recv(p, tag_base_ + 1, bytes(recv_rows_, recv_off_[p] * H, rc * H)));
    }
    if (sc > 0) {
      ops_.push_back(P2POp::send(p, tag_base_, bytes(send_slots_, send_off_[p], sc)));
      ops_.push_back(P2POp::send(p, tag_base_ + 1, bytes(send_rows_, send_off_[p] * H, sc * H)));
    }
  }
  run(ops_, "dispatch");
}

void TokenDispatcher::slot_counts(std::span<std::int64_t> out) const {
  std::fill(out.begin(), out.end(), 0);
  for (std::int32_t s : recv_slots_) ++out[static_cast<std::size_t>(s)];
}

void TokenDispatcher::combine(std::span<float> out) {
  const std::size_t H = static_cast<std::size_t>(hidden_);
  back_rows_.resize(order_.size() * H);
  ops_.clear();
  for (int p = 0; p < R_; ++p) {
    const std::size_t rc = recv_off_[p + 1] - recv_off_[p], sc = send_off_[p + 1] - send_off_[p];
    if (sc > 0)
      ops_.push_back(P2POp::recv(p, tag_base_ + 2, bytes(back_rows_, send_off_[p] * H, sc * H)));
    if (rc > 0)
      ops_.push_back(P2POp::send(p, tag_base_ + 2, bytes(results_, recv_off_[p] * H, rc * H)));
  }
  run(ops_, "combine");
  for (std::size_t j = 0; j < order_.size(); ++j)
    std::memcpy(out.data() + static_cast<std::size_t>(order_[j]) * H, back_rows_.data() + j * H,
                H * sizeof(float));
}

}  // namespace swiftbalancer
