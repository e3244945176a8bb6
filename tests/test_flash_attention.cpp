// flash_attention (the tiled kernel with an online softmax) against attention (the plain kernel
// that stores the weights): the same outputs and the same gradients of q, k and v, over tile
// sizes from 1 x 1 to larger than the sequence, causal masks at an offset (a cached decoder's
// step), key padding, grouped-query and multi-query heads, strided heads, and a query with no
// key left (zeros, never NaN). Its finite-difference check is in tests/test_gradcheck.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/tape.hpp"
#include "tests/helpers.hpp"

namespace rune {
namespace {

struct Case {
  std::int64_t B, H, Hkv, Tq, Tk, D, Dv;
  bool causal, padding;
  AttentionTiles tiles;
};

std::string name(const Case& c) {
  return "B" + std::to_string(c.B) + " H" + std::to_string(c.H) + "/" + std::to_string(c.Hkv) + " Tq" +
         std::to_string(c.Tq) + " Tk" + std::to_string(c.Tk) + " D" + std::to_string(c.D) + "/" + std::to_string(c.Dv) +
         (c.causal ? " causal" : "") + (c.padding ? " padded" : "") + " tiles " + std::to_string(c.tiles.queries) +
         "x" + std::to_string(c.tiles.keys);
}

// Outputs and gradients of both kernels on the same inputs and output weights.
void expect_same(const Case& c, DType dtype, double tol) {
  SCOPED_TRACE(name(c) + " " + dtype_name(dtype));
  Generator g(7);
  const Tensor q0 = randn({c.B, c.H, c.Tq, c.D}, g, dtype), k0 = randn({c.B, c.Hkv, c.Tk, c.D}, g, dtype),
               v0 = randn({c.B, c.Hkv, c.Tk, c.Dv}, g, dtype), w = randn({c.B, c.H, c.Tq, c.Dv}, g, dtype);
  AttentionMask m;
  m.causal = c.causal;
  if (c.padding) {  // batch b pads its last b + 1 keys; batch 1 of a 3-key call pads them all
    std::vector<std::int64_t> pad(static_cast<std::size_t>(c.B * c.Tk), 0);
    for (std::int64_t b = 0; b < c.B; ++b)
      for (std::int64_t j = std::max<std::int64_t>(0, c.Tk - b - 1); j < c.Tk; ++j) pad[b * c.Tk + j] = 1;
    m.key_padding_mask = gt(from_vector(pad, {c.B, c.Tk}), from_vector(std::vector<std::int64_t>{0}, {1}));
  }
  std::vector<Tensor> grads[2];
  Tensor outs[2];
  for (int path = 0; path < 2; ++path) {
    const Tensor q = q0.clone().requires_grad_(), k = k0.clone().requires_grad_(), v = v0.clone().requires_grad_();
    outs[path] = path == 0 ? attention(q, k, v, m) : flash_attention(q, k, v, m, std::nullopt, c.tiles);
    sum(outs[path] * w).backward();
    grads[path] = {q.grad(), k.grad(), v.grad()};
  }
  EXPECT_LT(max_abs_diff(outs[1], outs[0]), tol);
  const char* names[] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3; ++i) {
    EXPECT_LT(max_abs_diff(grads[1][i], grads[0][i]), tol) << names[i];
    EXPECT_EQ(max_abs(grads[1][i]) == max_abs(grads[1][i]), true) << names[i] << " has NaN";
  }
}

TEST(FlashAttention, EqualsThePlainKernelInValuesAndGradients) {
  const std::vector<Case> cases{
      {2, 4, 4, 9, 9, 8, 8, false, false, {4, 4}},      // tiles that do not divide T
      {2, 4, 4, 9, 9, 8, 8, true, false, {1, 1}},       // one query and one key at a time
      {2, 4, 2, 9, 9, 8, 8, true, true, {2, 3}},        // grouped-query, both masks
      {3, 4, 1, 5, 12, 16, 8, true, true, {2, 5}},      // multi-query, Tq < Tk: a cached step's offset
      {1, 2, 2, 1, 11, 8, 8, true, false, {64, 4}},     // one new query against a cache
      {2, 2, 2, 33, 33, 8, 8, true, false, {64, 128}},  // one tile bigger than the sequence
      {2, 2, 2, 3, 3, 4, 4, false, true, {2, 2}},       // batch 1 pads every key: a row of zeros
      {1, 8, 8, 200, 200, 32, 32, true, false, {}},     // the default tiles, several of them
  };
  for (const Case& c : cases) {
    expect_same(c, DType::float64, 1e-11);
    expect_same(c, DType::float32, 2e-5);
  }
}

TEST(FlashAttention, ReadsHeadsOfAProjectionInPlace) {
  // q as attention gets it from a projection: (B, T, H, D) memory seen as (B, H, T, D)
  Generator g(3);
  const Tensor proj = randn({2, 10, 4, 8}, g, DType::float64);
  const Tensor q = permute(proj, {0, 2, 1, 3}), k = randn({2, 4, 10, 8}, g, DType::float64),
               v = randn({2, 4, 10, 8}, g, DType::float64);
  AttentionMask m;
  m.causal = true;
  EXPECT_LT(max_abs_diff(flash_attention(q, k, v, m, std::nullopt, {3, 4}), attention(q, k, v, m)), 1e-12);
}

TEST(FlashAttention, RefusesMasksItCannotTileAndBadTiles) {
  const Tensor q = zeros({1, 1, 2, 4}), k = zeros({1, 1, 3, 4});
  AttentionMask blocked;
  blocked.blocked = zeros({2, 3}, DType::bool_);
  std::string e = error_of([&] { (void)flash_attention(q, k, k, blocked); });
  EXPECT_NE(e.find("a blocked or bias mask needs attention()"), std::string::npos) << e;
  AttentionMask pad;
  pad.key_padding_mask = zeros({1, 2}, DType::bool_);
  e = error_of([&] { (void)flash_attention(q, k, k, pad); });
  EXPECT_NE(e.find("key_padding_mask has shape [1,2] but must be (B, Tk) = [1,3]"), std::string::npos) << e;
  e = error_of([&] { (void)flash_attention(q, k, k, {}, std::nullopt, {0, 4}); });
  EXPECT_NE(e.find("tiles must be at least 1 x 1"), std::string::npos) << e;
}

}  // namespace
}  // namespace rune
