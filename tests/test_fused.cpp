// Fused kernels against the same math composed from primitive ops (forward and gradients), and
// against the naive references in autograd/reference.hpp, on shapes large enough to take the
// SIMD and multi-threaded paths; plus thread-count invariance of the fused kernels.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <functional>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/reference.hpp"

namespace rune {
namespace {

// ---- the compositions, from primitive ops only

Tensor softmax_composed(const Tensor& x, std::int64_t dim) {
  const Tensor m = max(x, dim, true).detach();  // a constant shift: softmax is invariant to it
  const Tensor e = exp(x - m);
  return e / sum(e, {dim}, true);
}

Tensor log_softmax_composed(const Tensor& x, std::int64_t dim) {
  const Tensor s = x - max(x, dim, true).detach();
  return s - log(sum(exp(s), {dim}, true));
}

Tensor cross_entropy_composed(const Tensor& logits, const std::vector<std::int64_t>& target,
                              const CrossEntropyOptions& o) {
  const std::int64_t n = logits.size(0);
  std::vector<std::int64_t> safe(target);
  std::vector<double> keep(n);
  for (std::int64_t i = 0; i < n; ++i) {
    keep[i] = target[i] == o.ignore_index ? 0.0 : 1.0;
    if (target[i] == o.ignore_index) safe[i] = 0;
  }
  const Tensor lp = log_softmax_composed(logits, 1);
  const Tensor nll = neg(gather(lp, 1, from_vector(safe, {n, 1}))).reshape({n});
  const Tensor smooth = neg(mean(lp, {1}));
  const Tensor mask = to_dtype(from_vector(keep, {n}), logits.dtype());
  const Tensor per_row = ((1.0 - o.label_smoothing) * nll + o.label_smoothing * smooth) * mask;
  if (o.reduction == Reduction::none) return per_row;
  if (o.reduction == Reduction::sum) return sum(per_row);
  return sum(per_row) / sum(mask).item();
}

Tensor layer_norm_composed(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  const Tensor xc = x - mean(x, {-1}, true);
  const Tensor var = mean(xc * xc, {-1}, true);
  return xc / sqrt(var + eps) * w + b;
}

Tensor gelu_composed(const Tensor& x, GeluApproximation a) {
  if (a == GeluApproximation::none) return 0.5 * x * (1.0 + erf(x * M_SQRT1_2));
  const Tensor u = std::sqrt(2.0 / M_PI) * (x + 0.044715 * pow(x, 3.0));
  return 0.5 * x * (1.0 + tanh(u));
}

// ---- comparison helpers

double max_rel_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const auto va = to_dtype(a.detach(), DType::float64).to_vector<double>();
  const auto vb = to_dtype(b.detach(), DType::float64).to_vector<double>();
  double scale = 0, worst = 0;
  for (double v : vb) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < va.size(); ++i) worst = std::max(worst, std::abs(va[i] - vb[i]));
  return worst / std::max(scale, 1e-30);
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs fused and composed on copies of the same inputs with the same random upstream gradient,
// and compares outputs and every input's gradient relative to the reference's magnitude.
void expect_same(const Fn& fused, const Fn& composed, const std::vector<Tensor>& inputs, double tol) {
  auto fresh = [&] {
    std::vector<Tensor> c;
    for (const Tensor& t : inputs) c.push_back(t.detach().clone().requires_grad_());
    return c;
  };
  std::vector<Tensor> a = fresh(), b = fresh();
  const Tensor ya = fused(a), yb = composed(b);
  ASSERT_EQ(ya.shape(), yb.shape());
  EXPECT_LT(max_rel_diff(ya, yb), tol) << "forward";
  Generator g(99);
  const Tensor up = randn(ya.shape(), g, ya.dtype());
  ya.backward(up);
  yb.backward(up);
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_TRUE(a[i].grad().defined());
    EXPECT_LT(max_rel_diff(a[i].grad(), b[i].grad()), tol) << "gradient of input " << i;
  }
}

Tensor rnd(const Shape& s, std::uint64_t seed, DType d, double scale = 1.0) {
  Generator g(seed);
  return randn(s, g, d) * scale;
}

struct Precision {
  DType dtype;
  double tol;
};
const Precision kDouble{DType::float64, 1e-12};
const Precision kFloat{DType::float32, 2e-5};
// gtest and ctest name a parameter by this, not by the bytes of the struct
void PrintTo(const Precision& p, std::ostream* os) { *os << dtype_name(p.dtype); }

// ---- fused versus composed

class FusedVsComposed : public ::testing::TestWithParam<Precision> {};

TEST_P(FusedVsComposed, Softmax) {
  const auto [d, tol] = GetParam();
  // (64, 1000): > the parallel grain, and rows not a multiple of the SIMD width
  expect_same([](auto& x) { return softmax(x[0], -1); }, [](auto& x) { return softmax_composed(x[0], -1); },
              {rnd({64, 1000}, 1, d, 3.0)}, tol);
  expect_same([](auto& x) { return softmax(x[0], 1); }, [](auto& x) { return softmax_composed(x[0], 1); },
              {rnd({4, 33, 5}, 2, d)}, tol);
}

TEST_P(FusedVsComposed, LogSoftmax) {
  const auto [d, tol] = GetParam();
  expect_same([](auto& x) { return log_softmax(x[0], -1); }, [](auto& x) { return log_softmax_composed(x[0], -1); },
              {rnd({64, 1000}, 3, d, 3.0)}, tol);
  expect_same([](auto& x) { return log_softmax(x[0], 0); }, [](auto& x) { return log_softmax_composed(x[0], 0); },
              {rnd({17, 6}, 4, d)}, tol);
}

TEST_P(FusedVsComposed, CrossEntropy) {
  const auto [d, tol] = GetParam();
  Generator g(5);
  std::vector<std::int64_t> t = randint(0, 1000, {96}, g).to_vector<std::int64_t>();
  t[3] = t[40] = -100;
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none})
    for (double eps : {0.0, 0.1}) {
      const CrossEntropyOptions o{-100, eps, r};
      expect_same([&](auto& x) { return cross_entropy(x[0], from_vector(t, {96}), o); },
                  [&](auto& x) { return cross_entropy_composed(x[0], t, o); }, {rnd({96, 1000}, 6, d, 2.0)}, tol * 10);
    }
}

TEST_P(FusedVsComposed, LayerNorm) {
  const auto [d, tol] = GetParam();
  expect_same([](auto& x) { return layer_norm(x[0], {768}, x[1], x[2]); },
              [](auto& x) { return layer_norm_composed(x[0], x[1], x[2], 1e-5); },
              {rnd({96, 768}, 7, d, 2.0) + 0.5, rnd({768}, 8, d), rnd({768}, 9, d)}, tol * 10);
}

TEST_P(FusedVsComposed, Gelu) {
  const auto [d, tol] = GetParam();
  for (auto a : {GeluApproximation::none, GeluApproximation::tanh})
    expect_same([a](auto& x) { return gelu(x[0], a); }, [a](auto& x) { return gelu_composed(x[0], a); },
                {rnd({300, 301}, 10, d, 3.0)}, tol * 10);
}

INSTANTIATE_TEST_SUITE_P(Precisions, FusedVsComposed, ::testing::Values(kDouble, kFloat),
                         [](const ::testing::TestParamInfo<Precision>& p) {
                           return std::string(p.param.dtype == DType::float64 ? "float64" : "float32");
                         });

// ---- fused versus the naive references

TEST_P(FusedVsComposed, Linear) {
  const auto [d, tol] = GetParam();
  // (4, 50, 96) rows: above the bias fill's parallel grain; and a small one without bias
  expect_same([](auto& x) { return linear(x[0], x[1], x[2]); },
              [](auto& x) { return matmul(x[0], transpose(x[1], 0, 1)) + x[2]; },
              {rnd({4, 50, 96}, 11, d), rnd({130, 96}, 12, d), rnd({130}, 13, d)}, tol);
  expect_same([](auto& x) { return linear(x[0], x[1]); }, [](auto& x) { return matmul(x[0], transpose(x[1], 0, 1)); },
              {rnd({3, 5}, 14, d), rnd({2, 5}, 15, d)}, tol);
}

TEST(FusedVsReference, ForwardMatchesNaiveLoopsInFloat32) {
  const Tensor x = rnd({130, 257}, 11, DType::float32, 4.0);
  NoGradGuard no_grad;
  EXPECT_LT(max_rel_diff(softmax(x, -1), reference::softmax(x)), 1e-6);
  EXPECT_LT(max_rel_diff(log_softmax(x, -1), reference::log_softmax(x)), 1e-6);
  const Tensor w = rnd({257}, 12, DType::float32), b = rnd({257}, 13, DType::float32);
  EXPECT_LT(max_rel_diff(layer_norm(x, {257}, w, b), reference::layer_norm(x, w, b, 1e-5)), 1e-5);
  for (auto a : {GeluApproximation::none, GeluApproximation::tanh})
    EXPECT_LT(max_rel_diff(gelu(x, a), reference::gelu(x, a)), 1e-6);
  Generator g(14);
  const Tensor t = randint(0, 257, {130}, g);
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    const CrossEntropyOptions o{-100, 0.1, r};
    EXPECT_LT(max_rel_diff(cross_entropy(x, t, o), reference::cross_entropy(x, t, o)), 1e-5);
  }
}

TEST(FusedKernels, ExtremeLogitsStayFinite) {
  // Softmax of huge logits and of rows that are -inf but for one entry must not overflow.
  Tensor x = tensor({{1000.0, 0.0, -1000.0}, {-INFINITY, -INFINITY, 5.0}});
  const auto y = softmax(x, -1).to_vector<float>();
  EXPECT_FLOAT_EQ(y[0], 1.0f);
  EXPECT_FLOAT_EQ(y[5], 1.0f);
  EXPECT_FLOAT_EQ(y[3], 0.0f);
  const auto l = log_softmax(x, -1).to_vector<float>();
  EXPECT_FLOAT_EQ(l[0], 0.0f);
  EXPECT_FLOAT_EQ(l[2], -2000.0f);  // -1000 - logsumexp = -1000 - 1000
  const Tensor ce = cross_entropy(tensor({{1000.0, -1000.0}}), from_vector(std::vector<std::int64_t>{1}, {1}));
  EXPECT_FLOAT_EQ(static_cast<float>(ce.item()), 2000.0f);
}

TEST(FusedKernels, ResultsDoNotDependOnTheThreadCount) {
  const Tensor x = rnd({512, 384}, 15, DType::float32, 2.0);
  const Tensor w = rnd({384}, 16, DType::float32), b = rnd({384}, 17, DType::float32);
  Generator g(18);
  const Tensor t = randint(0, 384, {512}, g);
  auto run = [&] {
    std::vector<Tensor> in{x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_(),
                           b.detach().clone().requires_grad_()};
    const Tensor h = gelu(layer_norm(in[0], {384}, in[1], in[2]));
    const Tensor loss = cross_entropy(softmax(h, -1) * 10.0, t) + sum(h) * 1e-3;
    loss.backward();
    return std::vector<Tensor>{loss.detach(), in[0].grad(), in[1].grad(), in[2].grad()};
  };
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = run();
  omp_set_num_threads(2);
  const auto two = run();
  omp_set_num_threads(saved);
  for (std::size_t i = 0; i < one.size(); ++i) EXPECT_LT(max_rel_diff(one[i], two[i]), 1e-6) << "result " << i;
}

}  // namespace
}  // namespace rune
