// Forward values of every op against independent expectations: hand-computed small cases,
// std:: math in loops, and literal values known from PyTorch. Gradients are in test_gradcheck.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"

namespace rune {
namespace {

using V = std::vector<double>;

V vals(const Tensor& t) { return to_dtype(t.detach(), DType::float64).to_vector<double>(); }

Tensor d(std::initializer_list<double> v) { return tensor(v, DType::float64); }
Tensor d2(std::initializer_list<std::initializer_list<double>> v) { return tensor(v, DType::float64); }
Tensor ids(std::vector<std::int64_t> v, Shape s) { return from_vector(v, s); }

void expect_near(const V& got, const V& want, double tol = 1e-12) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "element " << i;
}

Tensor rnd(const Shape& s, std::uint64_t seed) {
  Generator g(seed);
  return randn(s, g, DType::float64);
}

// Applies f to every element of x in double (the independent expectation).
template <class F>
V map(const Tensor& x, F f) {
  V v = vals(x);
  for (double& e : v) e = f(e);
  return v;
}

TEST(OpsArithmetic, BroadcastingShapesAndValues) {
  const Tensor a = d2({{1, 2, 3}, {4, 5, 6}});
  EXPECT_EQ(vals(add(a, d({10, 20, 30}))), (V{11, 22, 33, 14, 25, 36}));
  const Tensor col = d2({{1}, {2}}), row = d2({{10, 20, 30}});
  const Tensor s = add(col, row);
  EXPECT_EQ(s.shape(), (Shape{2, 3}));
  EXPECT_EQ(vals(s), (V{11, 21, 31, 12, 22, 32}));
  EXPECT_EQ(vals(sub(a, 1.0)), (V{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(vals(mul(a, d({2}))), (V{2, 4, 6, 8, 10, 12}));
  EXPECT_EQ(vals(div(a, d2({{1}, {2}}))), (V{1, 2, 3, 2, 2.5, 3}));
  EXPECT_EQ(vals(10.0 - a), (V{9, 8, 7, 6, 5, 4}));
  EXPECT_EQ(vals(12.0 / d({3, 4})), (V{4, 3}));
  EXPECT_EQ(vals(2.0 * a + 1.0), (V{3, 5, 7, 9, 11, 13}));
  EXPECT_EQ(vals(-a), (V{-1, -2, -3, -4, -5, -6}));
  EXPECT_EQ(add(zeros({3, 1, 2}), zeros({4, 1})).shape(), (Shape{3, 4, 2}));
}

TEST(OpsArithmetic, NonContiguousOperands) {
  const Tensor a = d2({{1, 2, 3}, {4, 5, 6}}).transpose(0, 1);  // (3, 2): 1 4 / 2 5 / 3 6
  EXPECT_FALSE(a.is_contiguous());
  EXPECT_EQ(vals(a + d({100, 200})), (V{101, 204, 102, 205, 103, 206}));
  EXPECT_EQ(vals(a * a), (V{1, 16, 4, 25, 9, 36}));
  const Tensor every_other = slice(d({0, 1, 2, 3, 4, 5}), 0, 0, 6, 2);
  EXPECT_EQ(vals(every_other * 3.0), (V{0, 6, 12}));
}

TEST(OpsUnary, MatchStdMath) {
  const Tensor x = rnd({5, 13}, 1);
  const Tensor p = uniform({5, 13}, 0.1, 3.0, default_generator(), DType::float64);
  expect_near(vals(exp(x)), map(x, [](double v) { return std::exp(v); }), 1e-13);
  expect_near(vals(log(p)), map(p, [](double v) { return std::log(v); }), 1e-14);
  expect_near(vals(sqrt(p)), map(p, [](double v) { return std::sqrt(v); }), 1e-14);
  expect_near(vals(tanh(x)), map(x, [](double v) { return std::tanh(v); }), 1e-14);
  expect_near(vals(sigmoid(x)), map(x, [](double v) { return 1 / (1 + std::exp(-v)); }), 1e-14);
  expect_near(vals(relu(x)), map(x, [](double v) { return v > 0 ? v : 0.0; }), 0);
  expect_near(vals(erf(x)), map(x, [](double v) { return std::erf(v); }), 1e-14);
  expect_near(vals(pow(p, 2.5)), map(p, [](double v) { return std::pow(v, 2.5); }), 1e-13);
  expect_near(vals(pow(d({2, 3}), d({3, 0.5}))), V{8, std::sqrt(3.0)}, 1e-15);
  expect_near(vals(gelu(x)), map(x, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }), 1e-14);
  expect_near(vals(gelu(x, GeluApproximation::tanh)), map(x, [](double v) {
                return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
              }),
              1e-14);
}

TEST(OpsUnary, Float32PathsAgreeWithDouble) {
  const Tensor x = rnd({3, 37}, 2);  // 37: SIMD body plus a scalar tail
  const Tensor xf = to_dtype(x, DType::float32);
  for (auto [name, f] : std::vector<std::pair<const char*, Tensor (*)(const Tensor&)>>{
           {"exp", [](const Tensor& t) { return exp(t); }},
           {"tanh", [](const Tensor& t) { return tanh(t); }},
           {"sigmoid", [](const Tensor& t) { return sigmoid(t); }},
           {"erf", [](const Tensor& t) { return erf(t); }},
           {"gelu", [](const Tensor& t) { return gelu(t); }}}) {
    const V a = vals(f(xf)), b = vals(f(x));
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 2e-6 * std::max(1.0, std::abs(b[i]))) << name;
  }
}

TEST(OpsUnary, Float32ErfAndGeluStayWithinTheirErrorBounds) {
  // float32 erf is a rational approximation (simd.hpp): within 4e-7 of erf everywhere, and
  // GELU built on it within 1.5e-6 (absolute) of the exact value computed in double.
  std::vector<float> xs;
  for (double x = -8; x <= 8; x += 1e-3) xs.push_back(static_cast<float>(x));
  const Tensor t = from_vector(xs, {static_cast<std::int64_t>(xs.size())});
  const V e = vals(erf(t)), g = vals(gelu(t));
  double worst_erf = 0, worst_gelu = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double x = xs[i];
    worst_erf = std::max(worst_erf, std::abs(e[i] - std::erf(x)));
    worst_gelu = std::max(worst_gelu, std::abs(g[i] - 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)))));
  }
  EXPECT_LT(worst_erf, 4e-7);
  EXPECT_LT(worst_gelu, 1.5e-6);
  EXPECT_EQ(vals(erf(tensor({-100.0, 100.0}))), (V{-1.0, 1.0}));
}

TEST(OpsUnary, KnownPyTorchValues) {
  // torch.nn.functional.gelu(torch.tensor(1.0, dtype=torch.float64)) and approximate='tanh'
  EXPECT_NEAR(gelu(d({1.0})).item(), 0.8413447460685429, 1e-15);
  EXPECT_NEAR(gelu(d({1.0}), GeluApproximation::tanh).item(), 0.8411919906082768, 1e-15);
  EXPECT_NEAR(gelu(d({-1.0})).item(), -0.15865525393145707, 1e-15);
  EXPECT_NEAR(sigmoid(d({2.0})).item(), 0.8807970779778823, 1e-15);
}

TEST(OpsSelection, WhereMaskedFillAndComparisons) {
  const Tensor a = d2({{1, 2, 3}, {4, 5, 6}});
  const Tensor cond = gt(a, d({2, 2, 5}));  // (2, 3) bool
  EXPECT_EQ(cond.dtype(), DType::bool_);
  EXPECT_EQ(vals(cond), (V{0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(vals(where(cond, a, d({-1}))), (V{-1, -1, -1, 4, 5, 6}));
  EXPECT_EQ(vals(masked_fill(a, gt(d({1, 0, 1}), d({0.5})), -9)), (V{-9, 2, -9, -9, 5, -9}));
  EXPECT_EQ(vals(eq(a, d({1, 5, 3}))), (V{1, 0, 1, 0, 1, 0}));
  EXPECT_EQ(vals(ne(a, d({1, 5, 3}))), (V{0, 1, 0, 1, 0, 1}));
  EXPECT_EQ(vals(lt(a, d({3}))), (V{1, 1, 0, 0, 0, 0}));
  EXPECT_EQ(vals(le(a, d({3}))), (V{1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(vals(ge(a, d({5}))), (V{0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(vals(logical_not(cond)), (V{1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(vals(eq(ids({1, 2}, {2}), ids({1, 3}, {2}))), (V{1, 0}));
}

TEST(OpsReduce, SumMeanMaxOverDims) {
  const Tensor x = from_vector(V{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24},
                               {2, 3, 4});
  EXPECT_EQ(sum(x).item(), 300);
  EXPECT_EQ(sum(x).shape(), Shape{});
  EXPECT_EQ(vals(sum(x, {0})), (V{14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36}));
  EXPECT_EQ(vals(sum(x, {-1})), (V{10, 26, 42, 58, 74, 90}));
  const Tensor s02 = sum(x, {0, 2}, true);
  EXPECT_EQ(s02.shape(), (Shape{1, 3, 1}));
  EXPECT_EQ(vals(s02), (V{68, 100, 132}));
  EXPECT_EQ(vals(mean(x, {1})), (V{5, 6, 7, 8, 17, 18, 19, 20}));
  EXPECT_EQ(mean(x).item(), 12.5);
  EXPECT_EQ(vals(max(x, 1)), (V{9, 10, 11, 12, 21, 22, 23, 24}));
  EXPECT_EQ(max(x, std::vector<std::int64_t>{0, 2}, true).shape(), (Shape{1, 3, 1}));
  EXPECT_EQ(vals(max(x, std::vector<std::int64_t>{0, 2}, false)), (V{16, 20, 24}));
  EXPECT_EQ(max(x).item(), 24);
  // non-contiguous input: the transpose's rows are x's columns
  const Tensor t = transpose(x, 1, 2);  // (2, 4, 3)
  EXPECT_EQ(vals(sum(t, {2})), (V{15, 18, 21, 24, 51, 54, 57, 60}));
  EXPECT_EQ(argmax(d2({{1, 7, 3}, {9, 2, 9}}), 1).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 0}));
  EXPECT_EQ(argmax(d2({{1, 7, 3}, {9, 2, 9}}), 0, true).shape(), (Shape{1, 3}));
  EXPECT_TRUE(std::isnan(max(d({1, NAN, 3})).item()));
}

TEST(OpsReduce, LargeSumsUseParallelPathsAccurately) {
  const Tensor x = ones({3, 100000});
  EXPECT_EQ(vals(sum(x, {1})), (V{100000, 100000, 100000}));
  EXPECT_EQ(vals(sum(ones({100000, 3}), {0})), (V{100000, 100000, 100000}));
  EXPECT_DOUBLE_EQ(sum(full({1 << 22}, 0.1)).item(), static_cast<double>(0.1f) * (1 << 22));
}

TEST(OpsShape, ViewsAndCopies) {
  const Tensor x = arange(12, DType::float64).reshape({3, 4});
  EXPECT_EQ(reshape(x, {2, -1}).shape(), (Shape{2, 6}));
  EXPECT_TRUE(view(x, {4, 3}).shares_storage(x));
  EXPECT_EQ(flatten(zeros({2, 3, 4}), 1).shape(), (Shape{2, 12}));
  EXPECT_EQ(unsqueeze(x, 1).shape(), (Shape{3, 1, 4}));
  EXPECT_EQ(unsqueeze(x, -1).shape(), (Shape{3, 4, 1}));
  EXPECT_EQ(squeeze(zeros({3, 1, 4}), 1).shape(), (Shape{3, 4}));
  EXPECT_EQ(squeeze(x, 0).shape(), (Shape{3, 4}));
  const Tensor t = transpose(x, 0, 1);
  EXPECT_EQ(vals(t), (V{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  const Tensor p = permute(arange(24, DType::float64).reshape({2, 3, 4}), {2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(vals(p).at(1), 4);   // p[0][0][1] = x[0][1][0]
  EXPECT_EQ(vals(p).at(3), 12);  // p[0][1][0] = x[1][0][0]
  const Tensor e = expand(d({1, 2}), {3, 2});
  EXPECT_EQ(e.strides(), (Shape{0, 1}));
  EXPECT_EQ(vals(e), (V{1, 2, 1, 2, 1, 2}));
  EXPECT_EQ(vals(reshape(t, {12})), (V{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  EXPECT_TRUE(contiguous(t).is_contiguous());
  EXPECT_EQ(vals(to_dtype(d({1.7, -1.7}), DType::int64)), (V{1, -1}));
}

TEST(OpsShape, SliceConcatSplit) {
  const Tensor x = arange(10, DType::float64);
  EXPECT_EQ(vals(slice(x, 0, 2, 5)), (V{2, 3, 4}));
  EXPECT_EQ(vals(slice(x, 0, -3, 10)), (V{7, 8, 9}));
  EXPECT_EQ(vals(slice(x, 0, 1, -1, 3)), (V{1, 4, 7}));
  EXPECT_EQ(vals(slice(x, 0, 8, 100)), (V{8, 9}));  // clamped as in Python
  EXPECT_EQ(slice(x, 0, 5, 2).numel(), 0);
  const Tensor m = arange(6, DType::float64).reshape({2, 3});
  EXPECT_EQ(vals(slice(m, 1, 1, 3)), (V{1, 2, 4, 5}));
  const Tensor c0 = concat({m, d2({{9, 9, 9}})}, 0);
  EXPECT_EQ(c0.shape(), (Shape{3, 3}));
  EXPECT_EQ(vals(c0), (V{0, 1, 2, 3, 4, 5, 9, 9, 9}));
  const Tensor c1 = concat({m, d2({{7}, {8}}), transpose(m, 0, 1).slice(0, 0, 2).transpose(0, 1)}, 1);
  EXPECT_EQ(vals(c1), (V{0, 1, 2, 7, 0, 1, 3, 4, 5, 8, 3, 4}));
  const auto parts = split(x, 4);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(vals(parts[2]), (V{8, 9}));
  const auto sized = split(m, std::vector<std::int64_t>{1, 2}, 1);
  EXPECT_EQ(vals(sized[1]), (V{1, 2, 4, 5}));
}

TEST(OpsIndex, IndexSelectAndGather) {
  const Tensor w = arange(12, DType::float64).reshape({4, 3});
  EXPECT_EQ(vals(index_select(w, 0, ids({3, 0, 3}, {3}))), (V{9, 10, 11, 0, 1, 2, 9, 10, 11}));
  EXPECT_EQ(vals(index_select(w, 1, ids({2, 2}, {2}))), (V{2, 2, 5, 5, 8, 8, 11, 11}));
  EXPECT_EQ(vals(index_select(transpose(w, 0, 1), 0, ids({1}, {1}))), (V{1, 4, 7, 10}));
  EXPECT_EQ(vals(gather(w, 1, ids({0, 2, 1, 1, 2, 0, 0, 0}, {4, 2}))), (V{0, 2, 4, 4, 8, 6, 9, 9}));
  EXPECT_EQ(vals(gather(w, 0, ids({3, 0, 1}, {1, 3}))), (V{9, 1, 5}));
  // integer tensors move through index ops too
  EXPECT_EQ(index_select(ids({5, 6, 7}, {3}), 0, ids({2, 0}, {2})).to_vector<std::int64_t>(),
            (std::vector<std::int64_t>{7, 5}));
}

TEST(OpsLinalg, MatmulSmallCases) {
  const Tensor a = d2({{1, 2}, {3, 4}}), b = d2({{5, 6}, {7, 8}});
  EXPECT_EQ(vals(matmul(a, b)), (V{19, 22, 43, 50}));
  EXPECT_EQ(vals(matmul(a, d({1, 1}))), (V{3, 7}));
}

TEST(OpsNN, SoftmaxAndLogSoftmax) {
  const Tensor x = rnd({4, 7}, 3);
  const V xv = vals(x);
  const V y = vals(softmax(x, -1)), ly = vals(log_softmax(x, -1));
  for (int r = 0; r < 4; ++r) {
    double z = 0;
    for (int i = 0; i < 7; ++i) z += std::exp(xv[r * 7 + i]);
    for (int i = 0; i < 7; ++i) {
      EXPECT_NEAR(y[r * 7 + i], std::exp(xv[r * 7 + i]) / z, 1e-15);
      EXPECT_NEAR(ly[r * 7 + i], xv[r * 7 + i] - std::log(z), 1e-14);
    }
  }
  // along a middle dim, columns sum to one
  const Tensor s = softmax(rnd({2, 5, 3}, 4), 1);
  for (double v : vals(sum(s, {1}))) EXPECT_NEAR(v, 1.0, 1e-15);
}

TEST(OpsNN, LayerNormWithAndWithoutAffine) {
  const Tensor x = d2({{1, 2, 3, 4}, {2, 2, 2, 6}});
  const Tensor w = d({1, 2, 1, 0.5}), b = d({0, 0, 1, 0});
  auto expected = [](V row, V wv, V bv, double eps) {
    double mu = 0, var = 0;
    for (double v : row) mu += v / row.size();
    for (double v : row) var += (v - mu) * (v - mu) / row.size();
    V out;
    for (std::size_t i = 0; i < row.size(); ++i) out.push_back((row[i] - mu) / std::sqrt(var + eps) * wv[i] + bv[i]);
    return out;
  };
  V want = expected({1, 2, 3, 4}, {1, 2, 1, 0.5}, {0, 0, 1, 0}, 1e-5);
  const V second = expected({2, 2, 2, 6}, {1, 2, 1, 0.5}, {0, 0, 1, 0}, 1e-5);
  want.insert(want.end(), second.begin(), second.end());
  expect_near(vals(layer_norm(x, {4}, w, b)), want, 1e-14);
  const V plain = vals(layer_norm(x, {4}, Tensor(), Tensor(), 1e-3));
  expect_near(V(plain.begin(), plain.begin() + 4), expected({1, 2, 3, 4}, {1, 1, 1, 1}, {0, 0, 0, 0}, 1e-3), 1e-14);
  // over the last two dims at once: the whole (2, 4) block is one group
  const V both = vals(layer_norm(x.unsqueeze(0), {2, 4}, Tensor(), Tensor()));
  expect_near(both, expected({1, 2, 3, 4, 2, 2, 2, 6}, V(8, 1.0), V(8, 0.0), 1e-5), 1e-14);
}

TEST(OpsNN, Dropout) {
  const Tensor x = ones({100000});
  EXPECT_TRUE(dropout(x, 0.5, false).shares_storage(x));  // eval mode: identity
  EXPECT_EQ(vals(dropout(x, 0.0, true)), vals(x));
  Generator g1(5), g2(5);
  const V a = vals(dropout(x, 0.25, true, g1)), b = vals(dropout(x, 0.25, true, g2));
  EXPECT_EQ(a, b) << "same seed, same mask";
  std::int64_t zeros_seen = 0;
  for (double v : a) {
    if (v == 0) ++zeros_seen;
    else EXPECT_FLOAT_EQ(static_cast<float>(v), 1.0f / 0.75f);  // float32 input
  }
  EXPECT_NEAR(static_cast<double>(zeros_seen) / 100000.0, 0.25, 0.01);
  for (double v : vals(dropout(x, 1.0, true))) EXPECT_EQ(v, 0.0);
}

TEST(OpsNN, CrossEntropyReductionsIgnoreIndexAndSmoothing) {
  const Tensor logits = d2({{2.0, 1.0, 0.1}, {0.5, 2.5, 0.3}, {1.0, 1.0, 1.0}});
  const Tensor target = ids({0, 2, -100}, {3});
  const V lv = vals(logits);
  auto logp = [&](int r, int c) {
    double z = 0;
    for (int j = 0; j < 3; ++j) z += std::exp(lv[r * 3 + j]);
    return lv[r * 3 + c] - std::log(z);
  };
  const double n0 = -logp(0, 0), n1 = -logp(1, 2);
  EXPECT_NEAR(cross_entropy(logits, target).item(), (n0 + n1) / 2, 1e-14);  // mean over non-ignored
  EXPECT_NEAR(cross_entropy(logits, target, {-100, 0.0, Reduction::sum}).item(), n0 + n1, 1e-14);
  expect_near(vals(cross_entropy(logits, target, {-100, 0.0, Reduction::none})), V{n0, n1, 0.0}, 1e-14);
  const double eps = 0.2;
  auto smooth = [&](int r) { return -(logp(r, 0) + logp(r, 1) + logp(r, 2)) / 3; };
  const double s0 = (1 - eps) * n0 + eps * smooth(0), s1 = (1 - eps) * n1 + eps * smooth(1);
  EXPECT_NEAR(cross_entropy(logits, target, {-100, eps, Reduction::mean}).item(), (s0 + s1) / 2, 1e-14);
  EXPECT_NEAR(cross_entropy(d({2.0, 1.0, 0.1}), ids({0}, {})).item(), n0, 1e-14);  // unbatched
  EXPECT_TRUE(std::isnan(cross_entropy(logits, ids({-100, -100, -100}, {3})).item()));  // 0/0, as torch
  // torch.nn.functional.cross_entropy(torch.tensor([[1., 2., 3.]]), torch.tensor([0]))
  EXPECT_NEAR(cross_entropy(d2({{1, 2, 3}}), ids({0}, {1})).item(), 2.4076059644443806, 1e-14);
}

TEST(OpsNN, MseLoss) {
  const Tensor a = d({1, 2, 3}), b = d({1, 4, 0});
  EXPECT_DOUBLE_EQ(mse_loss(a, b).item(), 13.0 / 3);
  EXPECT_DOUBLE_EQ(mse_loss(a, b, Reduction::sum).item(), 13.0);
  EXPECT_EQ(vals(mse_loss(a, b, Reduction::none)), (V{0, 4, 9}));
}

}  // namespace
}  // namespace rune
