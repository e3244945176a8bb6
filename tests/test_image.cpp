// The image ops of autograd/image.cpp, forward values: patchify against a naive im2col loop and,
// times a flattened weight, against a direct strided convolution; interpolate_bicubic against
// numbers printed by PyTorch. Gradients are checked by finite differences in test_gradcheck.cpp
// (and against PyTorch here for one bicubic case); HDF5 parity fixtures live in tests/parity/.
//
// Legend: B batch, C channels, H x W image, p patch size, N patches, O output channels.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"

namespace rune {
namespace {

using V = std::vector<double>;

V vals(const Tensor& t) { return to_dtype(t.detach(), DType::float64).to_vector<double>(); }

double max_abs_diff(const V& a, const V& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// Succeeds when fn throws std::invalid_argument whose message contains every fragment.
::testing::AssertionResult invalid(const std::function<void()>& fn, const std::vector<std::string>& fragments) {
  try {
    fn();
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    for (const auto& f : fragments)
      if (what.find(f) == std::string::npos)
        return ::testing::AssertionFailure() << "'" << f << "' is not in the message: " << what;
    return ::testing::AssertionSuccess() << what;
  }
  return ::testing::AssertionFailure() << "no std::invalid_argument was thrown";
}

// x[b, n, (c, kh, kw)] = image[b, c, r p + kh, q p + kw] for patch n = r (W/p) + q, spelled out.
V naive_patchify(const Tensor& image, std::int64_t p) {
  const V x = vals(image);
  const std::int64_t B = image.size(0), C = image.size(1), H = image.size(2), W = image.size(3);
  V out;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t r = 0; r < H / p; ++r)
      for (std::int64_t q = 0; q < W / p; ++q)
        for (std::int64_t c = 0; c < C; ++c)
          for (std::int64_t kh = 0; kh < p; ++kh)
            for (std::int64_t kw = 0; kw < p; ++kw) out.push_back(x[((b * C + c) * H + r * p + kh) * W + q * p + kw]);
  return out;
}

TEST(Image, PatchifyMatchesANaiveLoop) {
  Generator g(0);
  const Tensor x = randn({2, 3, 8, 12}, g, DType::float64);
  const Tensor y = patchify(x, 4);
  EXPECT_EQ(y.shape(), (Shape{2, 6, 48}));
  EXPECT_EQ(vals(y), naive_patchify(x, 4)) << "a permutation: exact";
  EXPECT_EQ(vals(patchify(to_dtype(x, DType::float32), 4)), naive_patchify(to_dtype(x, DType::float32), 4));
  // odd patch sizes and the extremes: p = 1 is (B, H W, C), p = H = W is one patch per image
  const Tensor odd = randn({1, 2, 9, 6}, g, DType::float64);
  EXPECT_EQ(vals(patchify(odd, 3)), naive_patchify(odd, 3));
  EXPECT_EQ(patchify(odd, 1).shape(), (Shape{1, 54, 2}));
  EXPECT_EQ(vals(patchify(odd, 1)), naive_patchify(odd, 1));
  const Tensor square = randn({2, 2, 5, 5}, g);
  EXPECT_EQ(vals(patchify(square, 5)), vals(reshape(square, {2, 1, 50})));
  // a channels-last image viewed as (B, C, H, W): strided input, same patches
  const Tensor nhwc = randn({2, 8, 12, 3}, g, DType::float64).permute({0, 3, 1, 2});
  ASSERT_FALSE(nhwc.is_contiguous());
  EXPECT_EQ(vals(patchify(nhwc, 2)), naive_patchify(nhwc.contiguous(), 2));
}

TEST(Image, PatchifyTimesAFlatWeightIsAStridedConvolution) {
  Generator g(1);
  const std::int64_t B = 2, C = 3, H = 8, W = 12, p = 4, O = 5;
  const Tensor x = randn({B, C, H, W}, g, DType::float64);
  const Tensor w = randn({O, C, p, p}, g, DType::float64);  // a Conv2d weight
  const Tensor bias = randn({O}, g, DType::float64);
  const Tensor y = matmul(patchify(x, p), transpose(reshape(w, {O, C * p * p}), 0, 1)) + bias;  // (B, N, O)
  ASSERT_EQ(y.shape(), (Shape{B, 6, O}));
  const V xv = vals(x), wv = vals(w), bv = vals(bias), yv = vals(y);
  double worst = 0;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t r = 0; r < H / p; ++r)
      for (std::int64_t q = 0; q < W / p; ++q)
        for (std::int64_t o = 0; o < O; ++o) {
          // conv2d(x, w, bias, stride = p)[b, o, r, q], which flatten(2).transpose(1, 2) puts at (b, r W/p + q, o)
          double acc = bv[o];
          for (std::int64_t c = 0; c < C; ++c)
            for (std::int64_t kh = 0; kh < p; ++kh)
              for (std::int64_t kw = 0; kw < p; ++kw)
                acc += wv[((o * C + c) * p + kh) * p + kw] * xv[((b * C + c) * H + r * p + kh) * W + q * p + kw];
          worst = std::max(worst, std::abs(acc - yv[((b * (H / p) + r) * (W / p) + q) * O + o]));
        }
  EXPECT_LT(worst, 1e-12);
}

TEST(Image, PatchifyBackwardPutsEveryGradientBackOnItsPixel) {
  Generator g(2);
  const Tensor x = randn({2, 3, 6, 9}, g, DType::float64).requires_grad_();
  const Tensor z = randn({2, 3, 6, 9}, g, DType::float64);
  patchify(x, 3).backward(patchify(z, 3));  // col2im(im2col(z)) = z: patches do not overlap
  EXPECT_EQ(vals(x.grad()), vals(z));
}

TEST(Image, PatchifyRejectsBadShapes) {
  Generator g(3);
  EXPECT_TRUE(invalid([&] { patchify(randn({2, 3, 8, 10}, g), 4); }, {"patchify", "[2,3,8,10]", "4"}));
  EXPECT_TRUE(invalid([&] { patchify(randn({2, 3, 9, 8}, g), 4); }, {"patchify", "[2,3,9,8]", "4"}));
  EXPECT_TRUE(invalid([&] { patchify(randn({3, 8, 8}, g), 4); }, {"patchify", "[3,8,8]"}));
  EXPECT_TRUE(invalid([&] { patchify(randn({1, 1, 4, 4}, g), 0); }, {"patchify", "[1,1,4,4]", "0"}));
  EXPECT_TRUE(invalid([&] { patchify(zeros({1, 1, 4, 4}, DType::int64), 2); }, {"patchify", "int64"}));
}

// ---------------------------------------------------------------- bicubic

// ((i m) mod k - k/2) / s over the flat index i: values exact in float64, the same in PyTorch.
Tensor pattern(const Shape& shape, std::int64_t m = 7, std::int64_t k = 11, double s = 4) {
  V v(static_cast<std::size_t>(shape_numel(shape)));
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<double>(static_cast<std::int64_t>(i) * m % k - k / 2) / s;
  return from_vector(v, shape);
}

// Expected values: Debian's PyTorch 1.13 (python3-torch), float64, printed at full precision by
//
// /usr/bin/python3 - <<'EOF'
// import torch, torch.nn.functional as F
// def pattern(shape, m=7, k=11, s=4):  # ((i m) mod k - k // 2) / s over the flat index i
//     n = torch.Size(shape).numel()
//     return ((torch.arange(n, dtype=torch.float64) * m % k - k // 2) / s).reshape(shape)
// for shape, size, ac in [((1, 1, 3, 4), (5, 7), False), ((1, 1, 3, 4), (5, 7), True),
//                         ((1, 1, 3, 4), (2, 2), False), ((1, 1, 3, 4), (2, 2), True),
//                         ((1, 1, 3, 4), (3, 4), False), ((1, 1, 3, 4), (3, 4), True),
//                         ((1, 2, 5, 6), (2, 3), False),
//                         ((1, 1, 3, 4), (1, 1), False), ((1, 1, 3, 4), (1, 1), True)]:
//     print(F.interpolate(pattern(shape), size=size, mode='bicubic', align_corners=ac).flatten().tolist())
// x = pattern((1, 1, 3, 4)).requires_grad_()
// (F.interpolate(x, size=(5, 7), mode='bicubic', align_corners=False) * pattern((1, 1, 5, 7), 5, 9,
// 2)).sum().backward() print(x.grad.flatten().tolist()) EOF
struct BicubicCase {
  Shape in;
  std::int64_t out_h, out_w;
  bool align_corners;
  V expected;
};

const std::vector<BicubicCase>& torch_cases() {
  static const std::vector<BicubicCase> cases = {
      {{1, 1, 3, 4},
       5,
       7,
       false,  // up, non-square
       {-1.5938219752186573,  -0.6300094752186586,  0.5631537900874636,
        -0.01200000000000001, -0.5871537900874638,  0.6060094752186583,
        1.5698219752186593,   -0.6261199890670543,  -0.4290363520408162,
        -0.13299043367346985, 0.020937499999999724, 0.22331915087463536,
        0.638569150874636,    0.9227648505830914,   0.34921647230320685,
        -0.19836461370262415, -0.7736197157434406,  0.125,
        1.0236197157434401,   0.44836461370262415,  -0.09921647230320696,
        -0.4551199890670549,  -0.2580363520408165,  0.03800956632653006,
        0.36828124999999967,  0.2866963374635574,   -0.43049243804664633,
        -0.9738613338192413,  -1.3198219752186588,  -0.356009475218659,
        0.8371537900874639,   0.5445625000000002,   -0.4856020408163262,
        -1.106989795918368,   -1.4692164723032086}},
      {{1, 1, 3, 4},
       5,
       7,
       true,
       {-1.25,
        -0.28125,
        0.5,
        0.0,
        -0.5,
        0.28125,
        1.25,
        -0.3828125,
        -0.383544921875,
        -0.265625,
        0.026611328125,
        0.3671875,
        0.614013671875,
        0.7421875,
        0.25,
        -0.4140625,
        -0.75,
        0.125,
        1.0,
        0.6640625,
        0.0,
        -0.234375,
        -0.235107421875,
        -0.1171875,
        0.328125,
        0.515625,
        -0.053955078125,
        -0.7421875,
        -1.0,
        -0.03125,
        0.75,
        0.5078125,
        -0.25,
        -0.84375,
        -1.25}},
      {{1, 1, 3, 4},
       2,
       2,
       false,  // down
       {-0.324798583984375, 0.420989990234375, -0.122650146484375, -0.488677978515625}},
      {{1, 1, 3, 4}, 2, 2, true, {-1.25, 1.25, -1.0, -1.25}},  // the four corners
      {{1, 1, 3, 4},
       3,
       4,
       false,  // the same size: the input itself
       {-1.25, 0.5, -0.5, 1.25, 0.25, -0.75, 1.0, 0.0, -1.0, 0.75, -0.25, -1.25}},
      {{1, 1, 3, 4}, 3, 4, true, {-1.25, 0.5, -0.5, 1.25, 0.25, -0.75, 1.0, 0.0, -1.0, 0.75, -0.25, -1.25}},
      {{1, 2, 5, 6},
       2,
       3,
       false,  // down by 2.5 and 2, two channels
       {0.475433349609375, -0.131195068359375, -0.82275390625, -0.46014404296875, 0.2249755859375, -0.26483154296875,
        0.6982421875, -0.07891845703125, -0.51434326171875, -0.607269287109375, 0.705596923828125, -0.01483154296875}},
      {{1, 1, 3, 4}, 1, 1, false, {0.125}},  // the centre (1, 1.5), between pixels 5 and 6
      {{1, 1, 3, 4}, 1, 1, true, {-1.25}},   // scale 0: the first pixel
  };
  return cases;
}

std::string describe(const BicubicCase& c) {
  return shape_str(c.in) + " -> (" + std::to_string(c.out_h) + ", " + std::to_string(c.out_w) + "), align_corners " +
         (c.align_corners ? "true" : "false");
}

TEST(Image, BicubicMatchesPyTorch) {
  for (const BicubicCase& c : torch_cases()) {
    const Tensor y = interpolate_bicubic(pattern(c.in), c.out_h, c.out_w, c.align_corners);
    EXPECT_EQ(y.shape(), (Shape{c.in[0], c.in[1], c.out_h, c.out_w})) << describe(c);
    EXPECT_LT(max_abs_diff(vals(y), c.expected), 1e-14) << describe(c);
  }
}

TEST(Image, BicubicOfTheSameSizeIsExactlyTheInput) {
  Generator g(4);
  const Tensor x = randn({2, 3, 5, 7}, g, DType::float64);
  EXPECT_EQ(vals(interpolate_bicubic(x, 5, 7, false)), vals(x));  // weights (0, 1, 0, 0) exactly
  EXPECT_EQ(vals(interpolate_bicubic(x, 5, 7, true)), vals(x));
}

TEST(Image, BicubicGradientMatchesPyTorch) {
  const Tensor x = pattern({1, 1, 3, 4}).requires_grad_();
  sum(interpolate_bicubic(x, 5, 7, false) * pattern({1, 1, 5, 7}, 5, 9, 2)).backward();
  const V expected = {-1.0395326166180745, -1.7758626093294467, -0.1727995626822154, 0.11219478862973517,
                      2.858451166180753,   1.1812336005830901,  -1.181233600583092,  -2.858451166180762,
                      -0.1121947886297394, 0.1727995626822164,  1.7758626093294458,  1.039532616618078};
  EXPECT_LT(max_abs_diff(vals(x.grad()), expected), 1e-14);
}

TEST(Image, BicubicReadsAStridedInput) {
  Generator g(5);
  const Tensor x = randn({2, 6, 5, 3}, g, DType::float64).permute({0, 3, 1, 2});  // (2, 3, 6, 5), strided
  ASSERT_FALSE(x.is_contiguous());
  for (bool ac : {false, true})
    EXPECT_EQ(vals(interpolate_bicubic(x, 4, 9, ac)), vals(interpolate_bicubic(x.contiguous(), 4, 9, ac)));
}

// Weights and sums run in double for both dtypes, so float32 differs from float64 only by the
// rounding of its output.
TEST(Image, BicubicFloat32AgreesWithFloat64) {
  Generator g(6);
  const Tensor x32 = randn({2, 3, 7, 9}, g);
  const Tensor x64 = to_dtype(x32, DType::float64);
  for (const auto& [oh, ow] : {std::pair<std::int64_t, std::int64_t>{11, 5}, {4, 3}, {7, 9}})
    for (bool ac : {false, true}) {
      const V y32 = vals(interpolate_bicubic(x32, oh, ow, ac)), y64 = vals(interpolate_bicubic(x64, oh, ow, ac));
      double scale = 0;
      for (double v : y64) scale = std::max(scale, std::abs(v));
      EXPECT_LT(max_abs_diff(y32, y64), 1e-6 * scale) << oh << "x" << ow << " align_corners " << ac;
    }
}

TEST(Image, BicubicRejectsBadShapes) {
  Generator g(7);
  EXPECT_TRUE(invalid([&] { interpolate_bicubic(randn({3, 4, 4}, g), 8, 8); }, {"interpolate_bicubic", "[3,4,4]"}));
  EXPECT_TRUE(invalid([&] { interpolate_bicubic(zeros({1, 1, 0, 4}), 8, 8); }, {"interpolate_bicubic", "[1,1,0,4]"}));
  EXPECT_TRUE(invalid(
      [&] {
        interpolate_bicubic(randn({1, 1, 4, 4}, g), 0, 8);
      },
      {"interpolate_bicubic", "[1,1,4,4]", "(0, 8)"}));
  EXPECT_TRUE(invalid(
      [&] {
        interpolate_bicubic(zeros({1, 1, 4, 4}, DType::int64), 2, 2);
      },
      {"interpolate_bicubic", "int64"}));
}

}  // namespace
}  // namespace rune
