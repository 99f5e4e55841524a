// tensor_info and the one product of dims (checked_product) that the host
// and plugins share: element counts and the default matrix view never wrap.
#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <limits>
#include <vector>

#include "onnx_reinit/sdk/tensor_info.h"

using namespace onnx_reinit;

namespace {

constexpr std::int64_t two_to(int n) {
  return std::int64_t{1} << n;
}

}  // namespace

TEST_CASE("checked_product multiplies dims and refuses negatives and overflows") {
  CHECK(checked_product(std::vector<std::int64_t>{}) == 1);
  CHECK(checked_product(std::array<std::int64_t, 3>{2, 3, 4}) == 24);
  CHECK(checked_product(std::array<std::int64_t, 2>{3, 0}) == 0);
  CHECK(checked_product(std::array{two_to(31), two_to(31)}) == two_to(62));
  constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
  CHECK(checked_product(std::array<std::int64_t, 2>{max, 1}) == max);
  CHECK_FALSE(checked_product(std::array{two_to(32), two_to(31)}));  // 2^63
  CHECK_FALSE(checked_product(std::array<std::int64_t, 2>{4, -1}));
  // A zero does not excuse the rest: callers take partial products.
  CHECK_FALSE(checked_product(std::array{std::int64_t{0}, two_to(40), two_to(40)}));
  CHECK_FALSE(checked_product(std::array{two_to(40), two_to(40), std::int64_t{0}}));
}

TEST_CASE("tensor_info::element_count is -1 for dims whose product overflows") {
  // 2^32 x 2^32 wrapped to 0 before: an "empty" tensor, or UB under UBSan.
  tensor_info t;
  t.shape = {two_to(32), two_to(32)};
  CHECK(t.element_count() == -1);
  t.shape = {-3, 4};
  CHECK(t.element_count() == -1);
  t.shape = {3, 5, 7};
  CHECK(t.element_count() == 105);
  t.shape = {};
  CHECK(t.element_count() == 1);
}

TEST_CASE("tensor_info::set_default_blocks never wraps the column count") {
  tensor_info t;
  t.shape = {2, two_to(32), two_to(32)};
  t.set_default_blocks();
  CHECK(t.block_rows == 2);
  CHECK(t.block_cols == -1);
  t.shape = {6, 4, 3, 3};
  t.set_default_blocks();
  CHECK(t.block_count == 1);
  CHECK(t.block_rows == 6);
  CHECK(t.block_cols == 36);
  t.shape = {};
  t.set_default_blocks();
  CHECK(t.block_rows == 1);
  CHECK(t.block_cols == 1);
}
