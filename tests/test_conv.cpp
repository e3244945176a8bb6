// conv2d, batch_norm and the pools (autograd/conv.cpp): the im2col + GEMM convolution against its
// definition summed one output at a time (reference::conv2d), batch norm's running statistics by
// hand, the output sizes torch gives, which input a max pool's gradient reaches, and the errors.
// Gradients are in tests/test_gradcheck.cpp; torch.nn parity in tests/parity/.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/reference.hpp"
#include "tests/helpers.hpp"

namespace rune {
namespace {

Conv2dOptions conv(std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding,
                   std::array<std::int64_t, 2> dilation = {1, 1}, std::int64_t groups = 1) {
  Conv2dOptions o;
  o.stride = stride, o.padding = padding, o.dilation = dilation, o.groups = groups;
  return o;
}

TEST(Conv2d, MatchesItsDefinitionInFloat32AndFloat64) {
  struct Case {
    Shape x, w;
    Conv2dOptions o;
    bool bias;
  };
  const std::vector<Case> cases{
      {{2, 3, 8, 8}, {4, 3, 3, 3}, conv({1, 1}, {1, 1}), true},              // a ResNet 3x3
      {{9, 4, 7, 6}, {6, 4, 3, 3}, conv({2, 2}, {1, 1}), true},              // stride 2, odd sizes, parallel blocks
      {{2, 6, 9, 9}, {6, 2, 3, 2}, conv({2, 1}, {1, 2}, {2, 1}, 3), false},  // groups, dilation
      {{3, 8, 5, 5}, {8, 1, 3, 3}, conv({1, 1}, {1, 1}, {1, 1}, 8), true},   // depthwise
      {{5, 4, 6, 7}, {3, 4, 1, 1}, conv({1, 1}, {0, 0}), true},              // 1x1: the input is its own cols
      {{2, 4, 6, 7}, {3, 4, 1, 1}, conv({2, 2}, {0, 0}), false},             // 1x1 at stride 2 (a downsample)
      {{1, 2, 4, 4}, {2, 2, 5, 5}, conv({3, 3}, {2, 2}), true},              // windows mostly padding
      // stride 1 with the output as wide as the input: each tap's row is one copy (im2col's fast path)
      {{2, 3, 7, 6}, {4, 3, 5, 3}, conv({1, 1}, {0, 1}), true},           // the height shrinks, the width stays
      {{2, 2, 6, 7}, {3, 2, 3, 3}, conv({1, 1}, {2, 2}, {2, 2}), false},  // dilated "same"
      {{1, 2, 3, 9}, {2, 2, 5, 5}, conv({1, 1}, {2, 2}), true},           // taps with a single valid row
      {{1, 1, 2, 2}, {1, 1, 5, 5}, conv({1, 1}, {2, 2}), true},           // taps with no valid pixel
  };
  Generator g(1);
  for (const DType dt : {DType::float32, DType::float64})
    for (const Case& c : cases) {
      const Tensor x = randn(c.x, g, dt), w = randn(c.w, g, dt), b = c.bias ? randn({c.w[0]}, g, dt) : Tensor();
      const Tensor fast = conv2d(x, w, b, c.o), slow = reference::conv2d(x, w, b, c.o);
      EXPECT_EQ(fast.shape(), slow.shape());
      EXPECT_LT(max_abs_diff(fast, slow), dt == DType::float32 ? 2e-5 * (1 + max_abs(slow)) : 1e-12)
          << shape_str(c.x) << " * " << shape_str(c.w) << " " << dtype_name(dt);
    }
}

TEST(Conv2d, TransposedInputGivesTheSameAsContiguous) {
  Generator g(2);
  const Tensor stored = randn({2, 5, 6, 3}, g, DType::float64);
  const Tensor x = stored.permute({0, 3, 1, 2}), w = randn({4, 3, 2, 2}, g, DType::float64);
  EXPECT_EQ(max_abs_diff(conv2d(x, w, {}, conv({1, 2}, {1, 0})), conv2d(x.contiguous(), w, {}, conv({1, 2}, {1, 0}))),
            0.0);
}

// The gradients of sum(y * gy) by their definition, in double: dx[b, c, h, w] and dW[o, c, i, j]
// each the sum of gy[b, o, p, q] times the weight or the pixel that met at output (p, q).
std::pair<Tensor, Tensor> conv2d_gradients_by_definition(const Tensor& x, const Tensor& w, const Tensor& gy,
                                                         const Conv2dOptions& o) {
  const Tensor xd = to_dtype(x.detach(), DType::float64), wd = to_dtype(w.detach(), DType::float64),
               gd = to_dtype(gy.detach(), DType::float64);
  Tensor gx = zeros(x.shape(), DType::float64), gw = zeros(w.shape(), DType::float64);
  const std::int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), O = w.size(0), kh = w.size(2),
                     kw = w.size(3), P = gy.size(2), Q = gy.size(3), cg = C / o.groups, og = O / o.groups;
  const double *px = xd.data<double>(), *pw = wd.data<double>(), *pg = gd.data<double>();
  double *dx = gx.data<double>(), *dw = gw.data<double>();
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t oc = 0; oc < O; ++oc)
      for (std::int64_t p = 0; p < P; ++p)
        for (std::int64_t q = 0; q < Q; ++q)
          for (std::int64_t c = 0; c < cg; ++c)
            for (std::int64_t i = 0; i < kh; ++i)
              for (std::int64_t j = 0; j < kw; ++j) {
                const std::int64_t h = p * o.stride[0] - o.padding[0] + i * o.dilation[0];
                const std::int64_t v = q * o.stride[1] - o.padding[1] + j * o.dilation[1];
                if (h < 0 || h >= H || v < 0 || v >= W) continue;
                const double gyv = pg[((b * O + oc) * P + p) * Q + q];
                const std::int64_t xi = ((b * C + oc / og * cg + c) * H + h) * W + v,
                                   wi = ((oc * cg + c) * kh + i) * kw + j;
                dx[xi] += pw[wi] * gyv;
                dw[wi] += px[xi] * gyv;
              }
  return {gx, gw};
}

// Float32 gradients at the widths of a ResNet, on every path: at stride 1 the shifted kernel
// (forward, the input's gradient as a convolution of gy, the weights' gradient; odd widths, the
// blocks of 6, 4 and 1 channels and of 4 and 1 taps), otherwise im2col and GEMMs in either
// orientation with the input's gradient scattered back.
TEST(Conv2d, GradientsMatchTheirDefinitionOnEveryPath) {
  struct Case {
    Shape x, w;
    Conv2dOptions o;
    const char* path;
  };
  const std::vector<Case> cases{
      {{3, 32, 14, 14}, {32, 32, 3, 3}, conv({1, 1}, {1, 1}), "shifted, dx a convolution"},
      {{2, 16, 12, 12}, {64, 16, 3, 3}, conv({1, 1}, {1, 1}), "shifted, 64 channels"},
      {{5, 64, 7, 7}, {64, 64, 3, 3}, conv({1, 1}, {1, 1}), "shifted, 7x7"},
      {{2, 32, 9, 9}, {6, 16, 3, 2}, conv({1, 1}, {2, 0}, {1, 2}, 2), "shifted: groups, dilation, uneven padding"},
      {{2, 16, 9, 10}, {8, 16, 1, 5}, conv({1, 1}, {0, 2}), "shifted: no padding rows, a row's zeros pad the next"},
      {{2, 16, 8, 8}, {16, 16, 5, 5}, conv({1, 1}, {1, 1}), "shifted: padding short of the kernel's reach"},
      {{2, 3, 6, 6}, {2, 3, 3, 3}, conv({1, 1}, {1, 1}), "shifted, a block of 2 channels"},
      {{2, 3, 10, 11}, {11, 3, 3, 3}, conv({1, 1}, {1, 1}), "shifted, 11 channels, 27 taps: dx scattered"},
      {{2, 3, 5, 5}, {4, 3, 3, 3}, conv({1, 1}, {3, 3}), "padding beyond the kernel: dx scattered"},
      {{2, 16, 14, 14}, {32, 16, 3, 3}, conv({2, 2}, {1, 1}), "stride 2: shifted over the phases, dx scattered"},
      {{2, 8, 7, 9}, {8, 8, 3, 3}, conv({2, 2}, {1, 1}), "stride 2 on odd sizes: phases of unequal sizes"},
      {{2, 4, 11, 13}, {6, 4, 3, 2}, conv({2, 3}, {1, 2}, {2, 1}), "strides 2 and 3, dilation, padding past the reach"},
      {{2, 16, 14, 14}, {32, 16, 1, 1}, conv({2, 2}, {0, 0}), "1x1 at stride 2: im2col, one GEMM"},
      {{2, 4, 5, 5}, {6, 4, 3, 3}, conv({1, 1}, {0, 0}), "im2col: the shifted kernel would waste 2 columns of 5"},
      {{1, 2, 26, 26}, {32, 2, 11, 11}, conv({1, 1}, {0, 0}), "im2col on 16x16 outputs: transposed GEMM"},
      {{2, 16, 6, 6}, {32, 16, 1, 1}, conv({1, 1}, {0, 0}), "1x1: one GEMM"},
      {{2, 16, 12, 12}, {32, 16, 1, 1}, conv({1, 1}, {0, 0}), "1x1 on 12x12: one transposed GEMM"},
  };
  Generator g(4);
  for (const Case& c : cases) {
    const Tensor x = randn(c.x, g).requires_grad_(), w = randn(c.w, g).requires_grad_();
    const Tensor y = conv2d(x, w, {}, c.o);
    const Tensor gy = randn(y.shape(), g);
    sum(y * gy).backward();
    const auto [gx, gw] = conv2d_gradients_by_definition(x, w, gy, c.o);
    EXPECT_LT(max_abs_diff(x.grad(), gx), 2e-5 * (1 + max_abs(gx))) << c.path;
    EXPECT_LT(max_abs_diff(w.grad(), gw), 2e-5 * (1 + max_abs(gw))) << c.path;
  }
}

TEST(Conv2d, RefusesShapesThatDoNotFitByName) {
  const Tensor x = zeros({1, 4, 5, 5}), w = zeros({6, 2, 3, 3});
  EXPECT_NE(error_of([&] { conv2d(x, w, {}, conv({1, 1}, {0, 0}, {1, 1}, 3)); }).find("groups 3"), std::string::npos);
  EXPECT_NE(error_of([&] {
              conv2d(x, zeros({6, 4, 3, 3}), zeros({5}));
            }).find("bias [5] must be [6]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { conv2d(x, zeros({6, 4, 7, 3})); }).find("larger than the padded input"), std::string::npos);
  EXPECT_NE(error_of([&] {
              conv2d(x, zeros({6, 4, 3, 3}), {}, conv({0, 1}, {0, 0}));
            }).find("stride (0, 1)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { conv2d(zeros({4, 5, 5}), w); }).find("(B, C, H, W)"), std::string::npos);
}

TEST(BatchNorm, TrainingNormalisesByTheBatchAndUpdatesTheRunningStatistics) {
  // one channel of values 1, 2, 3, 6 (mean 3, biased variance 3.5, unbiased 14/3), another of 0
  const Tensor x = from_vector(std::vector<double>{1, 0, 2, 0, 3, 0, 6, 0}, {4, 2});
  Tensor mean = from_vector(std::vector<double>{1.0, 2.0}, {2}), var = from_vector(std::vector<double>{2.0, 3.0}, {2});
  const Tensor w = from_vector(std::vector<double>{2.0, 1.0}, {2}),
               b = from_vector(std::vector<double>{0.5, -1.0}, {2});
  const std::vector<double> y = values(batch_norm(x, mean, var, w, b, true, 0.25, 1e-5));
  EXPECT_NEAR(y[0], (1 - 3) / std::sqrt(3.5 + 1e-5) * 2 + 0.5, 1e-12);
  EXPECT_NEAR(y[6], (6 - 3) / std::sqrt(3.5 + 1e-5) * 2 + 0.5, 1e-12);
  EXPECT_NEAR(y[1], -1.0, 1e-12);  // a constant channel: all the bias
  EXPECT_NEAR(values(mean)[0], 0.75 * 1.0 + 0.25 * 3.0, 1e-12);
  EXPECT_NEAR(values(var)[0], 0.75 * 2.0 + 0.25 * 14.0 / 3.0, 1e-12);
  EXPECT_NEAR(values(mean)[1], 0.75 * 2.0, 1e-12);
  EXPECT_NEAR(values(var)[1], 0.75 * 3.0, 1e-12);
}

TEST(BatchNorm, EvaluationUsesTheRunningStatisticsAndLeavesThem) {
  Generator g(3);
  const Tensor x = randn({3, 2, 4, 4}, g, DType::float64);
  const Tensor mean = from_vector(std::vector<double>{0.5, -1.0}, {2}),
               var = from_vector(std::vector<double>{4.0, 0.25}, {2});
  const std::vector<double> y = values(batch_norm(x, mean, var, {}, {}, false, 0.1, 0.0));
  const std::vector<double> in = values(x);
  for (std::size_t i = 0; i < in.size(); ++i) {
    const std::size_t c = (i / 16) % 2;
    EXPECT_NEAR(y[i], (in[i] - (c ? -1.0 : 0.5)) / (c ? 0.5 : 2.0), 1e-12);
  }
  EXPECT_EQ(values(mean), (std::vector<double>{0.5, -1.0}));
  EXPECT_EQ(values(var), (std::vector<double>{4.0, 0.25}));
}

TEST(BatchNorm, RefusesWhatItCannotNormalise) {
  EXPECT_NE(error_of([] {
              batch_norm(zeros({1, 3}), {}, {}, {}, {}, true);
            }).find("more than one value per channel"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              batch_norm(zeros({2, 3}), {}, {}, {}, {}, false);
            }).find("running statistics"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              batch_norm(zeros({2, 3}), {}, {}, zeros({4}), {}, true);
            }).find("weight [4] must be [3]"),
            std::string::npos);
}

Pool2dOptions pool(std::array<std::int64_t, 2> k, std::array<std::int64_t, 2> s, std::array<std::int64_t, 2> p,
                   bool ceil = false) {
  Pool2dOptions o;
  o.kernel_size = k, o.stride = s, o.padding = p, o.ceil_mode = ceil;
  return o;
}

TEST(Pool2d, OutputSizesAreTorchs) {
  // sizes torch.nn.functional.max_pool2d gives for a (1, 1, H, W) input
  const Tensor x = zeros({1, 1, 5, 6});
  EXPECT_EQ(max_pool2d(x, pool({3, 3}, {2, 2}, {1, 1})).shape(), (Shape{1, 1, 3, 3}));
  EXPECT_EQ(max_pool2d(x, pool({3, 3}, {2, 2}, {0, 0})).shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(max_pool2d(x, pool({3, 3}, {2, 2}, {0, 0}, true)).shape(), (Shape{1, 1, 2, 3}));
  // ceil_mode's last window would start in the right padding: dropped (5 + 2: 4 windows -> 3)
  EXPECT_EQ(max_pool2d(x, pool({2, 2}, {2, 2}, {1, 1}, true)).shape(), (Shape{1, 1, 3, 4}));
  EXPECT_EQ(avg_pool2d(x, pool({2, 2}, {0, 0}, {0, 0})).shape(), (Shape{1, 1, 2, 3}));  // stride = kernel
  EXPECT_EQ(adaptive_avg_pool2d(x, 1, 1).shape(), (Shape{1, 1, 1, 1}));
}

TEST(Pool2d, MaxTakesTheFirstMaximumAndNaNWins) {
  const Tensor x = from_vector(std::vector<double>{1, 3, 3, 0}, {1, 1, 2, 2}).requires_grad_();
  Tensor y = max_pool2d(x, pool({2, 2}, {0, 0}, {0, 0}));
  EXPECT_EQ(values(y), std::vector<double>{3});
  y.backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{0, 1, 0, 0}));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(std::isnan(values(
      max_pool2d(from_vector(std::vector<double>{1, nan, 5, 0}, {1, 1, 2, 2}), pool({2, 2}, {0, 0}, {0, 0})))[0]));
}

TEST(Pool2d, AveragesDivideAsTorchDoes) {
  const Tensor x = ones({1, 1, 3, 3}, DType::float64);
  Pool2dOptions o = pool({2, 2}, {2, 2}, {1, 1});
  // with the padding counted, the corner window holds one pixel of four
  EXPECT_EQ(values(avg_pool2d(x, o)), (std::vector<double>{0.25, 0.5, 0.5, 1.0}));
  o.count_include_pad = false;
  EXPECT_EQ(values(avg_pool2d(x, o)), (std::vector<double>{1, 1, 1, 1}));
  // adaptive: 5 -> 2 takes rows [0, 3) and [2, 5)
  const Tensor r = from_vector(std::vector<double>{1, 2, 3, 4, 5}, {1, 1, 5, 1});
  EXPECT_EQ(values(adaptive_avg_pool2d(r, 2, 1)), (std::vector<double>{2, 4}));
}

TEST(Pool2d, RefusesPaddingOverHalfTheKernel) {
  EXPECT_NE(error_of([] {
              max_pool2d(zeros({1, 1, 4, 4}), pool({2, 2}, {2, 2}, {2, 0}));
            }).find("at most half"),
            std::string::npos);
  Pool2dOptions o = pool({2, 2}, {2, 2}, {0, 0});
  o.dilation = {2, 2};
  EXPECT_NE(error_of([&] { avg_pool2d(zeros({1, 1, 4, 4}), o); }).find("no dilation"), std::string::npos);
}

}  // namespace
}  // namespace rune
