// Mailbox: the point-to-point matching shared by the transports whose ranks live in one process
// (in-process threads, transport/inprocess_transport.cpp; the single-GPU world,
// device/single_gpu_transport.cpp). They differ in how a matched pair is copied and completed;
// who meets whom is this one rule:
//   - both sides of a message meet in the receiver's mailbox;
//   - a send matches the oldest posted receive of its receiver with the same tag whose source is
//     the sender; a receive the oldest offered send with the same tag from its source (FIFO per
//     source and tag, as MPI orders messages);
//   - a receive withdrawn unmatched (cancelled) absorbs the next message with its (source, tag):
//     that send is dropped on arrival, so a late message never lands in a later receive.
//
// Op is the transport's own record of one operation; the mailbox reads `owner` (the rank that
// posted it), `peer`, `tag` and `recv`, and sets `matched`. It keeps pointers only: the
// transport owns the records and keeps each alive while queued.
//
// Thread-safety: none of its own. The transport guards each mailbox (or all of them) with a
// mutex and calls every member with it held.
#pragma once

#include <algorithm>
#include <deque>
#include <map>
#include <utility>

namespace swiftbalancer {

template <typename Op>
class Mailbox {
 public:
  // What became of an operation handed to offer().
  enum class Outcome {
    kMatched,   // met its other half: returned by offer(), both marked matched
    kQueued,    // waits here for its other half
    kAbsorbed,  // a send whose receive was cancelled: dropped, it completes at once
  };

  // Hands `op` to this mailbox, which must be its receiver's (op->recv ? op->owner : op->peer).
  // On kMatched, *other is set to the other half.
  Outcome offer(Op* op, Op** other) {
    *other = nullptr;
    if (!op->recv) {
      if (auto a = absorb_.find({op->owner, op->tag}); a != absorb_.end()) {
        if (--a->second == 0) absorb_.erase(a);
        return Outcome::kAbsorbed;
      }
      *other = take(posted_, op->tag, [&](const Op& r) { return r.peer == op->owner; });
      if (*other == nullptr) offered_.push_back(op);
    } else {
      *other = take(offered_, op->tag, [&](const Op& s) { return s.owner == op->peer; });
      if (*other == nullptr) posted_.push_back(op);
    }
    if (*other == nullptr) return Outcome::kQueued;
    op->matched = (*other)->matched = true;
    return Outcome::kMatched;
  }

  // Takes a queued, unmatched `op` back (a cancel); a withdrawn receive absorbs the next message
  // from its source with its tag. False when `op` is matched already (its copy is under way):
  // nothing changes, and the caller waits for that copy instead.
  bool withdraw(Op* op) {
    if (op->matched) return false;
    auto& q = op->recv ? posted_ : offered_;
    auto it = std::find(q.begin(), q.end(), op);
    if (it != q.end()) q.erase(it);
    if (op->recv) ++absorb_[{op->peer, op->tag}];
    return true;
  }

  // Operations waiting (for tests and diagnostics).
  std::size_t posted() const { return posted_.size(); }
  std::size_t offered() const { return offered_.size(); }

 private:
  // The oldest queued operation with `tag` whose source or destination `from` accepts.
  template <typename Pred>
  static Op* take(std::deque<Op*>& q, int tag, Pred from) {
    for (auto it = q.begin(); it != q.end(); ++it)
      if ((*it)->tag == tag && from(**it)) {
        Op* op = *it;
        q.erase(it);
        return op;
      }
    return nullptr;
  }

  std::deque<Op*> posted_;                     // receives of this rank waiting for a send
  std::deque<Op*> offered_;                    // sends to this rank waiting for a receive
  std::map<std::pair<int, int>, int> absorb_;  // (src, tag) -> messages to drop
};

}  // namespace swiftbalancer
