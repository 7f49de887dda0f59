#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "swiftbalancer/core/load_matrix.h"

namespace swiftbalancer {
namespace {

TEST(LoadMatrix, ShapeAndAccess) {
  LoadMatrix m(2, 3, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(m.at(1, 2), 6);
  EXPECT_EQ(m.row(1)[0], 4);
  EXPECT_DOUBLE_EQ(m.layer_total(0), 6);
  m.at(0, 0) = 10;
  EXPECT_DOUBLE_EQ(m.layer_total(0), 15);
  EXPECT_THROW(LoadMatrix(2, 3, {1, 2}), InputError);
  EXPECT_THROW(LoadMatrix(0, 3), InputError);
}

TEST(LoadMatrix, ValidateNamesTheBadCell) {
  LoadMatrix m(2, 3);
  EXPECT_TRUE(m.validate().ok());
  m.at(1, 2) = std::nan("");
  EXPECT_EQ(m.validate().message(), "load of layer 1, expert 2 is NaN");
  m.at(1, 2) = std::numeric_limits<double>::infinity();
  EXPECT_EQ(m.validate().message(), "load of layer 1, expert 2 is infinite");
  m.at(1, 2) = 0;
  m.at(0, 1) = -3;
  EXPECT_NE(m.validate().message().find("layer 0, expert 1 is negative"), std::string::npos);
}

}  // namespace
}  // namespace swiftbalancer
