// The mailbox matching both in-process transports share: exact small cases of FIFO matching
// per (source, tag), and the absorbing of a cancelled receive's late message.
#include "swiftbalancer/transport/internal/mailbox.h"

#include <gtest/gtest.h>

namespace swiftbalancer {
namespace {

struct Op {
  int owner = -1, peer = -1, tag = 0;
  bool recv = false;
  bool matched = false;
};

Op send(int from, int to, int tag) {
  return {from, to, tag, false};
}
Op recv(int at, int from, int tag) {
  return {at, from, tag, true};
}

using Box = Mailbox<Op>;

TEST(Mailbox, SendThenReceiveMatchesAndMarksBoth) {
  Box box;  // rank 1's
  Op s = send(0, 1, 7), r = recv(1, 0, 7);
  Op* other = nullptr;
  EXPECT_EQ(box.offer(&s, &other), Box::Outcome::kQueued);
  EXPECT_EQ(other, nullptr);
  EXPECT_EQ(box.offered(), 1u);
  EXPECT_EQ(box.offer(&r, &other), Box::Outcome::kMatched);
  EXPECT_EQ(other, &s);
  EXPECT_TRUE(s.matched && r.matched);
  EXPECT_EQ(box.offered() + box.posted(), 0u);
}

TEST(Mailbox, ReceiveThenSendMatches) {
  Box box;
  Op r = recv(1, 0, 3), s = send(0, 1, 3);
  Op* other = nullptr;
  EXPECT_EQ(box.offer(&r, &other), Box::Outcome::kQueued);
  EXPECT_EQ(box.posted(), 1u);
  EXPECT_EQ(box.offer(&s, &other), Box::Outcome::kMatched);
  EXPECT_EQ(other, &r);
}

TEST(Mailbox, MatchesOnlyTheSameSourceAndTagInPostingOrder) {
  Box box;  // rank 2's
  Op s_tag5 = send(0, 2, 5), s_rank1 = send(1, 2, 4), first = send(0, 2, 4), second = send(0, 2, 4);
  Op* other = nullptr;
  for (Op* s : {&s_tag5, &s_rank1, &first, &second})
    ASSERT_EQ(box.offer(s, &other), Box::Outcome::kQueued);
  Op r1 = recv(2, 0, 4), r2 = recv(2, 0, 4), r3 = recv(2, 0, 4);
  EXPECT_EQ(box.offer(&r1, &other), Box::Outcome::kMatched);
  EXPECT_EQ(other, &first);  // not the other tag, not the other source
  EXPECT_EQ(box.offer(&r2, &other), Box::Outcome::kMatched);
  EXPECT_EQ(other, &second);
  EXPECT_EQ(box.offer(&r3, &other), Box::Outcome::kQueued);  // nothing left from rank 0, tag 4
  EXPECT_FALSE(s_tag5.matched || s_rank1.matched);
  EXPECT_EQ(box.offered(), 2u);
  EXPECT_EQ(box.posted(), 1u);
}

TEST(Mailbox, CancelledReceiveAbsorbsTheNextMessageOnly) {
  Box box;
  Op r = recv(1, 0, 9);
  Op* other = nullptr;
  ASSERT_EQ(box.offer(&r, &other), Box::Outcome::kQueued);
  EXPECT_TRUE(box.withdraw(&r));
  EXPECT_EQ(box.posted(), 0u);
  // The late message of the cancelled receive is dropped, not delivered to a later receive.
  Op late = send(0, 1, 9), other_tag = send(0, 1, 8);
  EXPECT_EQ(box.offer(&other_tag, &other), Box::Outcome::kQueued);  // other tags unaffected
  EXPECT_EQ(box.offer(&late, &other), Box::Outcome::kAbsorbed);
  EXPECT_FALSE(late.matched);
  Op next = send(0, 1, 9), r2 = recv(1, 0, 9);
  EXPECT_EQ(box.offer(&next, &other), Box::Outcome::kQueued);  // absorbed once only
  EXPECT_EQ(box.offer(&r2, &other), Box::Outcome::kMatched);
  EXPECT_EQ(other, &next);
}

TEST(Mailbox, WithdrawingASendAbsorbsNothingAndAMatchedOpStays) {
  Box box;
  Op s = send(0, 1, 2);
  Op* other = nullptr;
  ASSERT_EQ(box.offer(&s, &other), Box::Outcome::kQueued);
  EXPECT_TRUE(box.withdraw(&s));
  Op s2 = send(0, 1, 2), r = recv(1, 0, 2);
  EXPECT_EQ(box.offer(&s2, &other), Box::Outcome::kQueued);
  EXPECT_EQ(box.offer(&r, &other), Box::Outcome::kMatched);
  EXPECT_FALSE(box.withdraw(&r));  // matched: its copy is under way
  EXPECT_EQ(box.offered() + box.posted(), 0u);
}

}  // namespace
}  // namespace swiftbalancer
