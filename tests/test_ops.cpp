// Forward values of every op in ops.hpp against independent expectations: hand-computed small
// cases, std:: math in loops over indices, xtensor expressions over to_xarray copies, and a few
// literal values known from PyTorch. Inputs are float64 where exactness helps (elementwise
// arithmetic is then compared bit for bit); float32 paths get float-sized tolerances.
// Gradients are tested in test_gradcheck.cpp, matmul in depth in test_matmul.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/xt.hpp"

namespace rune {
namespace {

using V = std::vector<double>;
using I = std::vector<std::int64_t>;
constexpr double kInf = std::numeric_limits<double>::infinity();

V vals(const Tensor& t) { return to_dtype(t.detach(), DType::float64).to_vector<double>(); }
Tensor d(std::initializer_list<double> v) { return tensor(v, DType::float64); }
Tensor d2(std::initializer_list<std::initializer_list<double>> v) { return tensor(v, DType::float64); }
Tensor ids(const I& v, const Shape& s) { return from_vector(v, s); }
Tensor mask(const std::vector<bool>& v, const Shape& s) {
  std::unique_ptr<bool[]> b(new bool[v.size()]);
  for (std::size_t i = 0; i < v.size(); ++i) b[i] = v[i];
  return from_buffer(b.get(), s);
}

// Seeded inputs: standard normal, and positive values for log / sqrt / pow.
Tensor rnd(const Shape& s, std::uint64_t seed, DType dt = DType::float64) {
  Generator g(seed);
  return randn(s, g, dt);
}
Tensor pos(const Shape& s, std::uint64_t seed) {
  Generator g(seed);
  return uniform(s, 0.1, 3.0, g, DType::float64);
}

// |got - want| <= tol * max(1, |want|) elementwise; infinities and NaNs must match exactly.
void expect_close(const V& got, const V& want, double tol, const std::string& what = "") {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << what << " element " << i << ": " << got[i];
    } else if (std::isinf(want[i])) {
      EXPECT_EQ(got[i], want[i]) << what << " element " << i;
    } else {
      EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, std::abs(want[i]))) << what << " element " << i;
    }
  }
}

// The op's output equals an xtensor expression evaluated on the same inputs: shape and bits.
void expect_equals_xt(const Tensor& got, const xt::xarray<double>& want, const std::string& what = "") {
  const Shape ws(want.shape().begin(), want.shape().end());
  ASSERT_EQ(got.shape(), ws) << what;
  const V g = vals(got);
  const V w(want.begin(), want.end());
  for (std::size_t i = 0; i < g.size(); ++i) EXPECT_DOUBLE_EQ(g[i], w[i]) << what << " element " << i;
}

template <class F>
V map(const Tensor& x, F f) {
  V v = vals(x);
  for (double& e : v) e = f(e);
  return v;
}

// ------------------------------------------------------------------------- arithmetic

TEST(OpsArithmetic, HandComputedBroadcasts) {
  const Tensor a = d2({{1, 2, 3}, {4, 5, 6}});
  // (2, 3) + (3)
  EXPECT_EQ(vals(add(a, d({10, 20, 30}))), (V{11, 22, 33, 14, 25, 36}));
  // (2, 1) + (1, 3)
  const Tensor s = add(d2({{1}, {2}}), d2({{10, 20, 30}}));
  EXPECT_EQ(s.shape(), (Shape{2, 3}));
  EXPECT_EQ(vals(s), (V{11, 21, 31, 12, 22, 32}));
  // (2, 3) with a 0-d tensor, on either side
  EXPECT_EQ(vals(sub(a, full({}, 1.0, DType::float64))), (V{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(vals(sub(full({}, 1.0, DType::float64), a)), (V{0, -1, -2, -3, -4, -5}));
  EXPECT_EQ(vals(mul(a, d({2}))), (V{2, 4, 6, 8, 10, 12}));
  EXPECT_EQ(vals(div(a, d2({{1}, {2}}))), (V{1, 2, 3, 2, 2.5, 3}));
  EXPECT_EQ(add(zeros({3, 1, 2}), zeros({4, 1})).shape(), (Shape{3, 4, 2}));
  EXPECT_EQ(add(zeros({}), zeros({})).shape(), Shape{});
}

TEST(OpsArithmetic, BroadcastingMatchesXtensor) {
  const std::vector<std::pair<Shape, Shape>> cases = {{{2, 3}, {3}},    {{2, 1}, {1, 3}},    {{2, 3}, {}},
                                                      {{}, {2, 3}},     {{4, 1, 3}, {2, 1}}, {{3}, {2, 3}},
                                                      {{2, 3}, {2, 3}}, {{1}, {5}},          {{2, 1, 4}, {1, 3, 1}}};
  std::uint64_t seed = 100;
  for (const auto& [sa, sb] : cases) {
    const Tensor a = rnd(sa, ++seed), b = rnd(sb, ++seed);
    const xt::xarray<double> xa = to_xarray<double>(a), xb = to_xarray<double>(b);
    const std::string what = shape_str(sa) + " and " + shape_str(sb);
    expect_equals_xt(add(a, b), xa + xb, "add " + what);
    expect_equals_xt(sub(a, b), xa - xb, "sub " + what);
    expect_equals_xt(mul(a, b), xa * xb, "mul " + what);
    expect_equals_xt(div(a, b), xa / xb, "div " + what);
    expect_equals_xt(a + b, xa + xb, "operator+ " + what);
    expect_equals_xt(a - b, xa - xb, "operator- " + what);
    expect_equals_xt(a * b, xa * xb, "operator* " + what);
    expect_equals_xt(a / b, xa / xb, "operator/ " + what);
  }
}

TEST(OpsArithmetic, NonContiguousInputs) {
  const Tensor base = rnd({3, 2}, 1), other = rnd({3, 2}, 2), row = rnd({3}, 3);
  const Tensor a = base.transpose(0, 1), b = other.transpose(0, 1);  // (2, 3), both strided
  ASSERT_FALSE(a.is_contiguous());
  const xt::xarray<double> xa = to_xarray<double>(a), xb = to_xarray<double>(b), xr = to_xarray<double>(row);
  expect_equals_xt(add(a, b), xa + xb, "t + t");
  expect_equals_xt(mul(a, row), xa * xr, "t * row");
  expect_equals_xt(div(row, a), xr / xa, "row / t");
  expect_equals_xt(sub(a, rnd({2, 3}, 4)), xa - to_xarray<double>(rnd({2, 3}, 4)), "t - contiguous");
  // hand-checked: the transpose of [[1, 2], [3, 4], [5, 6]] plus a row
  EXPECT_EQ(vals(d2({{1, 2}, {3, 4}, {5, 6}}).transpose(0, 1) + d({100, 200, 300})), (V{101, 203, 305, 102, 204, 306}));
  // strided slices and expanded operands
  const Tensor every_other = slice(d({0, 1, 2, 3, 4, 5}), 0, 0, 6, 2);
  EXPECT_EQ(vals(every_other * 3.0), (V{0, 6, 12}));
  EXPECT_EQ(vals(every_other + slice(d({0, 1, 2, 3, 4, 5}), 0, 1, 6, 2)), (V{1, 5, 9}));
  EXPECT_EQ(vals(expand(d({1, 2}), {3, 2}) * d2({{1}, {2}, {3}})), (V{1, 2, 2, 4, 3, 6}));
  // a 3-D permutation against the original's entries
  const Tensor x3 = rnd({2, 3, 4}, 5);
  const Tensor p = x3.permute({2, 0, 1});
  const V pv = vals(p * 2.0), xv = vals(x3);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 2; ++j)
      for (int k = 0; k < 3; ++k) EXPECT_EQ(pv[(i * 2 + j) * 3 + k], 2.0 * xv[(j * 3 + k) * 4 + i]);
}

TEST(OpsArithmetic, ScalarOverloadsAndOperators) {
  const Tensor a = rnd({2, 3}, 7);
  const V av = vals(a);
  const double s = 1.75;
  auto check = [&](const Tensor& got, const std::function<double(double)>& f, const char* what) {
    EXPECT_EQ(got.shape(), a.shape()) << what;
    EXPECT_EQ(got.dtype(), DType::float64) << what;
    const V g = vals(got);
    for (std::size_t i = 0; i < av.size(); ++i) EXPECT_DOUBLE_EQ(g[i], f(av[i])) << what << " element " << i;
  };
  check(
      add(a, s), [&](double v) { return v + s; }, "add(a, s)");
  check(
      sub(a, s), [&](double v) { return v - s; }, "sub(a, s)");
  check(
      mul(a, s), [&](double v) { return v * s; }, "mul(a, s)");
  check(
      div(a, s), [&](double v) { return v / s; }, "div(a, s)");
  check(
      a + s, [&](double v) { return v + s; }, "a + s");
  check(
      s + a, [&](double v) { return s + v; }, "s + a");
  check(
      a - s, [&](double v) { return v - s; }, "a - s");
  check(
      s - a, [&](double v) { return s - v; }, "s - a");
  check(
      a * s, [&](double v) { return v * s; }, "a * s");
  check(
      s * a, [&](double v) { return s * v; }, "s * a");
  check(
      a / s, [&](double v) { return v / s; }, "a / s");
  check(
      s / a, [&](double v) { return s / v; }, "s / a");
  check(
      -a, [](double v) { return -v; }, "-a");
  check(
      neg(a), [](double v) { return -v; }, "neg(a)");
  check(
      2.0 * a + 1.0, [](double v) { return 2.0 * v + 1.0; }, "2 a + 1");
  // the scalar takes the tensor's dtype
  EXPECT_EQ((tensor({1, 2}) * 0.1).dtype(), DType::float32);
  EXPECT_EQ((tensor({1, 2}) * 0.1).to_vector<float>(), (std::vector<float>{0.1f, 0.2f}));
  EXPECT_EQ(vals(1.0 / d({2, 4, -0.5})), (V{0.5, 0.25, -2}));
  const V by_zero = vals(div(d({1, -1, 0}), 0.0));
  EXPECT_EQ(by_zero[0], kInf);
  EXPECT_EQ(by_zero[1], -kInf);
  EXPECT_TRUE(std::isnan(by_zero[2]));
}

TEST(OpsArithmetic, Float32ComputesInFloat) {
  const Tensor a = rnd({4, 9}, 8, DType::float32), b = rnd({9}, 9, DType::float32);
  const std::vector<float> av = a.to_vector<float>(), bv = b.to_vector<float>();
  const std::vector<float> sum_ = add(a, b).to_vector<float>(), prod = mul(a, b).to_vector<float>();
  const std::vector<float> quot = div(a, b).to_vector<float>(), diff = sub(a, b).to_vector<float>();
  EXPECT_EQ(add(a, b).dtype(), DType::float32);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 9; ++j) {
      const float x = av[i * 9 + j], y = bv[j];
      EXPECT_EQ(sum_[i * 9 + j], x + y);
      EXPECT_EQ(diff[i * 9 + j], x - y);
      EXPECT_EQ(prod[i * 9 + j], x * y);
      EXPECT_EQ(quot[i * 9 + j], x / y);
    }
}

// ------------------------------------------------------------------------- unary math

TEST(OpsUnary, MatchStdMathInFloat64) {
  const Tensor x = rnd({5, 13}, 11);  // 65 elements: a SIMD body and a scalar tail
  const Tensor p = pos({5, 13}, 12);
  const double tol = 1e-14;
  expect_close(vals(neg(x)), map(x, [](double v) { return -v; }), 0, "neg");
  expect_close(vals(exp(x)), map(x, [](double v) { return std::exp(v); }), tol, "exp");
  expect_close(vals(log(p)), map(p, [](double v) { return std::log(v); }), tol, "log");
  expect_close(vals(sqrt(p)), map(p, [](double v) { return std::sqrt(v); }), tol, "sqrt");
  expect_close(vals(tanh(x)), map(x, [](double v) { return std::tanh(v); }), tol, "tanh");
  expect_close(vals(sigmoid(x)), map(x, [](double v) { return 1.0 / (1.0 + std::exp(-v)); }), tol, "sigmoid");
  expect_close(vals(relu(x)), map(x, [](double v) { return v > 0 ? v : 0.0; }), 0, "relu");
  expect_close(vals(erf(x)), map(x, [](double v) { return std::erf(v); }), tol, "erf");
  expect_close(vals(gelu(x)), map(x, [](double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }), tol,
               "gelu exact");
  expect_close(vals(gelu(x, GeluApproximation::none)), vals(gelu(x)), 0, "gelu default is exact");
  expect_close(
      vals(gelu(x, GeluApproximation::tanh)),
      map(x, [](double v) { return 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))); }),
      tol, "gelu tanh");
  for (const Tensor& t : {neg(x), exp(x), log(p), sqrt(p), tanh(x), sigmoid(x), relu(x), erf(x), gelu(x)}) {
    EXPECT_EQ(t.shape(), (Shape{5, 13}));
    EXPECT_EQ(t.dtype(), DType::float64);
  }
}

TEST(OpsUnary, NonContiguousInputsAreReadInLogicalOrder) {
  const Tensor x = rnd({7, 5}, 13).transpose(0, 1);  // (5, 7)
  ASSERT_FALSE(x.is_contiguous());
  expect_close(vals(exp(x)), map(x, [](double v) { return std::exp(v); }), 1e-14, "exp");
  expect_close(vals(tanh(x)), map(x, [](double v) { return std::tanh(v); }), 1e-14, "tanh");
  expect_close(vals(relu(x)), map(x, [](double v) { return std::max(v, 0.0); }), 0, "relu");
  expect_close(vals(gelu(x)), map(x, [](double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }), 1e-14,
               "gelu");
  expect_close(vals(neg(x)), map(x, [](double v) { return -v; }), 0, "neg");
  const Tensor s = slice(rnd({20}, 14), 0, 1, 20, 3);
  expect_close(vals(sigmoid(s)), map(s, [](double v) { return 1.0 / (1.0 + std::exp(-v)); }), 1e-14, "sigmoid");
  EXPECT_EQ(exp(x).shape(), (Shape{5, 7}));
}

TEST(OpsUnary, PowWithScalarAndTensorExponents) {
  const Tensor p = pos({3, 7}, 15);
  const Tensor x = rnd({3, 7}, 16);
  expect_close(vals(pow(p, 2.5)), map(p, [](double v) { return std::pow(v, 2.5); }), 1e-14, "p^2.5");
  expect_close(vals(pow(p, -1.0)), map(p, [](double v) { return 1.0 / v; }), 1e-15, "p^-1");
  expect_close(vals(pow(p, 0.5)), map(p, [](double v) { return std::sqrt(v); }), 1e-15, "p^0.5");
  expect_close(vals(pow(x, 2.0)), map(x, [](double v) { return v * v; }), 1e-15, "x^2");
  expect_close(vals(pow(x, 3.0)), map(x, [](double v) { return v * v * v; }), 1e-14, "x^3 (negative bases)");
  EXPECT_EQ(vals(pow(d({-2, -0.5, 3, 0}), 3.0)), (V{-8, -0.125, 27, 0}));
  EXPECT_EQ(vals(pow(d({-2, 0, 5}), 0.0)), (V{1, 1, 1}));
  EXPECT_TRUE(std::isnan(pow(d({-2}), 0.5).item()));  // a negative base with a fractional power
  // tensor exponent, broadcast: (3, 7) ^ (7)
  const Tensor e = rnd({7}, 17);
  const V pv = vals(p), ev = vals(e), got = vals(pow(p, e));
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 7; ++j)
      EXPECT_NEAR(got[i * 7 + j], std::pow(pv[i * 7 + j], ev[j]),
                  1e-14 * std::max(1.0, std::pow(pv[i * 7 + j], ev[j])));
  expect_close(vals(pow(d({2, 3}), d({3, 0.5}))), V{8, std::sqrt(3.0)}, 1e-15, "hand");
  EXPECT_EQ(pow(d2({{2}, {3}}), d({1, 2, 3})).shape(), (Shape{2, 3}));
  EXPECT_EQ(vals(pow(d2({{2}, {3}}), d({1, 2, 3}))), (V{2, 4, 8, 3, 9, 27}));
}

TEST(OpsUnary, EdgeValues) {
  const V e = vals(exp(d({-kInf, 0, 1})));
  EXPECT_EQ(e[0], 0.0);
  EXPECT_EQ(e[1], 1.0);
  EXPECT_NEAR(e[2], 2.718281828459045, 1e-15);
  const V l = vals(log(d({0, 1})));
  EXPECT_EQ(l[0], -kInf);
  EXPECT_EQ(l[1], 0.0);
  EXPECT_EQ(vals(sqrt(d({0, 4, 2.25}))), (V{0, 2, 1.5}));
  EXPECT_EQ(vals(sigmoid(d({-800, 0, 800}))), (V{0, 0.5, 1}));  // saturates, no NaN
  EXPECT_EQ(vals(tanh(d({-50, 0, 50}))), (V{-1, 0, 1}));
  EXPECT_EQ(vals(erf(d({-10, 0, 10}))), (V{-1, 0, 1}));
  EXPECT_EQ(vals(relu(d({-3, 0, 2.5}))), (V{0, 0, 2.5}));
  EXPECT_EQ(vals(gelu(d({0}))), (V{0}));
  EXPECT_NEAR(gelu(d({10})).item(), 10.0, 1e-14);
  EXPECT_NEAR(gelu(d({-10})).item(), 0.0, 1e-14);
  const V fl = vals(sigmoid(tensor({-200, 200})));  // float32 saturation
  EXPECT_EQ(fl[0], 0.0);
  EXPECT_EQ(fl[1], 1.0);
}

TEST(OpsUnary, Float32AgreesWithFloat64) {
  const Tensor x = rnd({3, 37}, 18);
  const Tensor p = pos({3, 37}, 19);
  const Tensor xf = to_dtype(x, DType::float32), pf = to_dtype(p, DType::float32);
  using Fn = std::function<Tensor(const Tensor&)>;
  const std::vector<std::pair<const char*, Fn>> on_x = {
      {"exp", [](const Tensor& t) { return exp(t); }},
      {"tanh", [](const Tensor& t) { return tanh(t); }},
      {"sigmoid", [](const Tensor& t) { return sigmoid(t); }},
      {"erf", [](const Tensor& t) { return erf(t); }},
      {"relu", [](const Tensor& t) { return relu(t); }},
      {"gelu", [](const Tensor& t) { return gelu(t); }},
      {"gelu tanh", [](const Tensor& t) { return gelu(t, GeluApproximation::tanh); }}};
  for (const auto& [name, f] : on_x) {
    const Tensor yf = f(xf);
    EXPECT_EQ(yf.dtype(), DType::float32) << name;
    // inputs are the same floats; results differ only by float rounding
    expect_close(vals(yf), vals(f(to_dtype(xf, DType::float64))), 2e-6, name);
  }
  expect_close(vals(log(pf)), vals(log(to_dtype(pf, DType::float64))), 2e-6, "log");
  expect_close(vals(sqrt(pf)), vals(sqrt(to_dtype(pf, DType::float64))), 2e-6, "sqrt");
  expect_close(vals(pow(pf, 1.5)), vals(pow(to_dtype(pf, DType::float64), 1.5)), 2e-6, "pow");
}

TEST(OpsUnary, KnownPyTorchValues) {
  // torch.nn.functional.gelu(torch.tensor(1.0, dtype=torch.float64)) and approximate='tanh'
  EXPECT_NEAR(gelu(d({1.0})).item(), 0.8413447460685429, 1e-15);
  EXPECT_NEAR(gelu(d({1.0}), GeluApproximation::tanh).item(), 0.8411919906082768, 1e-15);
  EXPECT_NEAR(gelu(d({-1.0})).item(), -0.15865525393145707, 1e-15);
  EXPECT_NEAR(gelu(tensor({1.0})).item(), 0.8413447460685429, 1e-6);  // float32
  EXPECT_NEAR(gelu(tensor({1.0}), GeluApproximation::tanh).item(), 0.8411919906082768, 1e-6);
  EXPECT_NEAR(erf(d({1.0})).item(), 0.8427007929497149, 1e-15);
  EXPECT_NEAR(tanh(d({1.0})).item(), 0.7615941559557649, 1e-15);
  EXPECT_NEAR(sigmoid(d({2.0})).item(), 0.8807970779778823, 1e-15);
  EXPECT_NEAR(exp(d({1.0})).item(), 2.718281828459045, 1e-15);
}

// ------------------------------------------------------------------------- selection, comparisons

TEST(OpsSelection, WhereBroadcastsAllThree) {
  const Tensor a = rnd({2, 3}, 20), b = rnd({2, 3}, 21);
  const Tensor c = mask({true, false, true, false, false, true}, {2, 3});
  const V av = vals(a), bv = vals(b);
  const V w = vals(where(c, a, b));
  const bool cv[] = {true, false, true, false, false, true};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(w[i], cv[i] ? av[i] : bv[i]) << i;
  // cond (3), a (2, 1), b (1, 3) -> (2, 3)
  const Tensor y = where(mask({true, false, true}, {3}), d2({{1}, {2}}), d2({{10, 20, 30}}));
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(vals(y), (V{1, 20, 1, 2, 20, 2}));
  // a 0-d b
  EXPECT_EQ(vals(where(c, a, full({}, -1.0, DType::float64))), (V{av[0], -1, av[2], -1, -1, av[5]}));
  // a non-contiguous cond: the transpose of a (3, 2) mask
  const Tensor ct = mask({true, false, false, false, true, true}, {3, 2}).transpose(0, 1);  // [[1,0,1],[0,0,1]]
  EXPECT_EQ(vals(where(ct, a, b)), vals(where(c, a, b)));
  EXPECT_EQ(where(c, tensor({1, 2, 3}), tensor({0})).dtype(), DType::float32);
}

TEST(OpsSelection, MaskedFill) {
  const Tensor x = rnd({2, 3}, 22);
  const V xv = vals(x);
  // a (3) mask broadcast over rows
  const V y = vals(masked_fill(x, mask({false, true, true}, {3}), -9.5));
  EXPECT_EQ(y, (V{xv[0], -9.5, -9.5, xv[3], -9.5, -9.5}));
  // a (2, 1) mask broadcast over columns
  EXPECT_EQ(vals(masked_fill(x, mask({true, false}, {2, 1}), 0.0)), (V{0, 0, 0, xv[3], xv[4], xv[5]}));
  // a full mask and -inf, the attention-mask use
  const V z = vals(masked_fill(x, mask({true, false, false, false, false, true}, {2, 3}), -kInf));
  EXPECT_EQ(z[0], -kInf);
  EXPECT_EQ(z[5], -kInf);
  EXPECT_EQ(z[1], xv[1]);
  // a non-contiguous input: the (3, 2) transpose of x
  const V t = vals(masked_fill(x.transpose(0, 1), mask({true, false}, {2}), 7.0));
  EXPECT_EQ(t, (V{7, xv[3], 7, xv[4], 7, xv[5]}));
  EXPECT_EQ(vals(x), xv) << "masked_fill must not modify its input";
  EXPECT_EQ(masked_fill(tensor({1, 2}), mask({true, false}, {2}), 3.0).dtype(), DType::float32);
}

TEST(OpsSelection, ComparisonsAndLogicalNot) {
  const double nan = std::nan("");
  const Tensor a = d2({{1, 2, 3}, {4, 5, nan}});
  const Tensor b = d({3, 2, 7});
  const V av = vals(a), bv = vals(b);
  const std::vector<
      std::tuple<const char*, Tensor (*)(const Tensor&, const Tensor&), std::function<bool(double, double)>>>
      ops = {{"eq", &eq, std::equal_to<double>()}, {"ne", &ne, std::not_equal_to<double>()},
             {"lt", &lt, std::less<double>()},     {"le", &le, std::less_equal<double>()},
             {"gt", &gt, std::greater<double>()},  {"ge", &ge, std::greater_equal<double>()}};
  for (const auto& [name, op, ref] : ops) {
    const Tensor r = op(a, b);
    EXPECT_EQ(r.dtype(), DType::bool_) << name;
    EXPECT_EQ(r.shape(), (Shape{2, 3})) << name;
    EXPECT_FALSE(r.requires_grad()) << name;
    const V rv = vals(r);
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j)
        EXPECT_EQ(rv[i * 3 + j], ref(av[i * 3 + j], bv[j]) ? 1.0 : 0.0) << name << " at " << i << "," << j;
  }
  // NaN compares unequal to everything, itself included (IEEE, as torch)
  EXPECT_EQ(vals(eq(d({nan}), d({nan}))), (V{0}));
  EXPECT_EQ(vals(ne(d({nan}), d({nan}))), (V{1}));
  // (2, 1) against (1, 3)
  EXPECT_EQ(vals(lt(d2({{1}, {5}}), d2({{0, 3, 6}}))), (V{0, 1, 1, 0, 0, 1}));
  // int64 and bool operands
  EXPECT_EQ(vals(eq(ids({1, 2, 3}, {3}), ids({1, 5, 3}, {3}))), (V{1, 0, 1}));
  EXPECT_EQ(vals(gt(ids({1, 2, 3}, {3}), ids({2}, {1}))), (V{0, 0, 1}));
  const Tensor m = mask({true, false, true}, {3});
  EXPECT_EQ(vals(eq(m, mask({true, true, false}, {3}))), (V{1, 0, 0}));
  EXPECT_EQ(vals(logical_not(m)), (V{0, 1, 0}));
  EXPECT_EQ(logical_not(m).dtype(), DType::bool_);
  EXPECT_EQ(vals(logical_not(logical_not(m))), vals(m));
  // comparisons of a tensor requiring grad carry no gradient
  Tensor w = d({1, 2}).requires_grad_();
  EXPECT_FALSE(gt(w, d({1.5})).requires_grad());
}

// ------------------------------------------------------------------------- reductions

// x (2, 3, 4) float64 read through a (i, j, k) accessor.
struct Cube {
  V v;
  double operator()(int i, int j, int k) const { return v[(i * 3 + j) * 4 + k]; }
};

TEST(OpsReduce, SumMeanMaxOverAllAndOverOneDim) {
  const Tensor x = rnd({2, 3, 4}, 30);
  const Cube c{vals(x)};
  double total = 0, best = -kInf;
  for (double v : c.v) {
    total += v;
    best = std::max(best, v);
  }
  EXPECT_EQ(sum(x).shape(), Shape{});
  EXPECT_NEAR(sum(x).item(), total, 1e-13);
  EXPECT_NEAR(mean(x).item(), total / 24, 1e-14);
  EXPECT_EQ(max(x).item(), best);
  EXPECT_EQ(max(x).shape(), Shape{});
  EXPECT_NEAR(x.sum().item(), total, 1e-13);
  EXPECT_NEAR(x.mean().item(), total / 24, 1e-14);

  // over dim 1 -> (2, 4)
  V s1, m1, x1;
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k) {
      double s = 0, m = -kInf;
      for (int j = 0; j < 3; ++j) {
        s += c(i, j, k);
        m = std::max(m, c(i, j, k));
      }
      s1.push_back(s);
      m1.push_back(s / 3);
      x1.push_back(m);
    }
  EXPECT_EQ(sum(x, {1}).shape(), (Shape{2, 4}));
  EXPECT_EQ(sum(x, {1}, true).shape(), (Shape{2, 1, 4}));
  expect_close(vals(sum(x, {1})), s1, 1e-14, "sum dim 1");
  expect_close(vals(sum(x, {1}, true)), s1, 1e-14, "sum dim 1 keepdim");
  expect_close(vals(sum(x, {-2})), s1, 1e-14, "sum dim -2");
  expect_close(vals(mean(x, {1})), m1, 1e-14, "mean dim 1");
  EXPECT_EQ(mean(x, {1}, true).shape(), (Shape{2, 1, 4}));
  EXPECT_EQ(vals(max(x, 1)), x1);
  EXPECT_EQ(max(x, 1).shape(), (Shape{2, 4}));
  EXPECT_EQ(max(x, 1, true).shape(), (Shape{2, 1, 4}));
  EXPECT_EQ(vals(max(x, -2, true)), x1);

  // over the first and the last dim
  V s0, sl;
  for (int j = 0; j < 3; ++j)
    for (int k = 0; k < 4; ++k) s0.push_back(c(0, j, k) + c(1, j, k));
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) sl.push_back(c(i, j, 0) + c(i, j, 1) + c(i, j, 2) + c(i, j, 3));
  expect_close(vals(sum(x, {0})), s0, 1e-14, "sum dim 0");
  expect_close(vals(sum(x, {-1})), sl, 1e-14, "sum dim -1");
  EXPECT_EQ(sum(x, {2}).shape(), (Shape{2, 3}));
  expect_close(vals(x.sum({2}, true)), sl, 1e-14, "method sum");
  EXPECT_EQ(x.mean({0}, true).shape(), (Shape{1, 3, 4}));
}

TEST(OpsReduce, SeveralDimsKeepdimAndNonContiguous) {
  const Tensor x = rnd({2, 3, 4}, 31);
  const Cube c{vals(x)};
  // non-adjacent dims {0, 2} -> (3)
  V s02, m02;
  for (int j = 0; j < 3; ++j) {
    double s = 0, m = -kInf;
    for (int i = 0; i < 2; ++i)
      for (int k = 0; k < 4; ++k) {
        s += c(i, j, k);
        m = std::max(m, c(i, j, k));
      }
    s02.push_back(s);
    m02.push_back(m);
  }
  expect_close(vals(sum(x, {0, 2})), s02, 1e-14, "sum {0,2}");
  expect_close(vals(sum(x, {2, 0})), s02, 1e-14, "sum {2,0}");
  expect_close(vals(sum(x, {-1, 0})), s02, 1e-14, "sum {-1,0}");
  EXPECT_EQ(sum(x, {0, 2}).shape(), (Shape{3}));
  EXPECT_EQ(sum(x, {0, 2}, true).shape(), (Shape{1, 3, 1}));
  expect_close(vals(mean(x, {0, 2})), map(sum(x, {0, 2}), [](double v) { return v / 8; }), 1e-15, "mean {0,2}");
  EXPECT_EQ(vals(max(x, std::vector<std::int64_t>{0, 2})), m02);
  EXPECT_EQ(max(x, std::vector<std::int64_t>{0, 2}, true).shape(), (Shape{1, 3, 1}));
  // adjacent dims {1, 2} -> (2)
  V s12;
  for (int i = 0; i < 2; ++i) {
    double s = 0;
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) s += c(i, j, k);
    s12.push_back(s);
  }
  expect_close(vals(sum(x, {1, 2})), s12, 1e-14, "sum {1,2}");
  expect_close(vals(mean(x, {1, 2}, true)), map(sum(x, {1, 2}), [](double v) { return v / 12; }), 1e-15, "mean {1,2}");
  // every dim listed = all
  EXPECT_NEAR(sum(x, {0, 1, 2}).item(), sum(x).item(), 1e-14);
  EXPECT_EQ(sum(x, {0, 1, 2}, true).shape(), (Shape{1, 1, 1}));

  // a permuted (non-contiguous) input: p[a][b][c] = x[b][c][a], shape (4, 2, 3)
  const Tensor p = x.permute({2, 0, 1});
  ASSERT_FALSE(p.is_contiguous());
  V ps1, pm02, pmax2;
  for (int a = 0; a < 4; ++a)
    for (int cc = 0; cc < 3; ++cc) ps1.push_back(c(0, cc, a) + c(1, cc, a));
  for (int b = 0; b < 2; ++b) {
    double s = 0;
    for (int a = 0; a < 4; ++a)
      for (int cc = 0; cc < 3; ++cc) s += c(b, cc, a);
    pm02.push_back(s / 12);
  }
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 2; ++b) pmax2.push_back(std::max({c(b, 0, a), c(b, 1, a), c(b, 2, a)}));
  expect_close(vals(sum(p, {1})), ps1, 1e-14, "sum of permuted");
  expect_close(vals(mean(p, {0, 2})), pm02, 1e-14, "mean of permuted");
  EXPECT_EQ(vals(max(p, 2)), pmax2);
  EXPECT_NEAR(sum(p).item(), sum(x).item(), 1e-13);
  // a sliced input
  const Tensor sl = x.slice(2, 1, 4, 2);  // k = 1, 3
  V ssl;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) ssl.push_back(c(i, j, 1) + c(i, j, 3));
  expect_close(vals(sum(sl, {2})), ssl, 1e-14, "sum of slice");
}

TEST(OpsReduce, ArgmaxAndSpecialValues) {
  const Tensor m = d2({{1, 7, 3}, {9, 2, 9}, {-1, -1, -5}});
  EXPECT_EQ(argmax(m, 1).to_vector<std::int64_t>(), (I{1, 0, 0}));  // ties: the first maximum
  EXPECT_EQ(argmax(m, -1).to_vector<std::int64_t>(), (I{1, 0, 0}));
  EXPECT_EQ(argmax(m, 0).to_vector<std::int64_t>(), (I{1, 0, 1}));
  EXPECT_EQ(argmax(m, 1).dtype(), DType::int64);
  EXPECT_EQ(argmax(m, 1).shape(), (Shape{3}));
  EXPECT_EQ(argmax(m, 0, true).shape(), (Shape{1, 3}));
  EXPECT_EQ(argmax(m.transpose(0, 1), 1).to_vector<std::int64_t>(), (I{1, 0, 1}));  // = argmax over dim 0
  // argmax against a loop on random data
  const Tensor x = rnd({5, 11}, 32);
  const V xv = vals(x);
  const I am = argmax(x, 1).to_vector<std::int64_t>();
  for (int r = 0; r < 5; ++r)
    EXPECT_EQ(am[r], std::max_element(xv.begin() + r * 11, xv.begin() + (r + 1) * 11) - (xv.begin() + r * 11));
  // max with -inf, and NaN propagates as in torch
  EXPECT_EQ(max(d({-kInf, -3})).item(), -3.0);
  EXPECT_EQ(max(d({-kInf, -kInf})).item(), -kInf);
  EXPECT_TRUE(std::isnan(max(d({1, std::nan(""), 3})).item()));
  // sums of empty and single-element inputs
  EXPECT_EQ(sum(zeros({0}, DType::float64)).item(), 0.0);
  EXPECT_EQ(vals(sum(zeros({2, 0}, DType::float64), {1})), (V{0, 0}));
  EXPECT_EQ(sum(full({}, 2.5, DType::float64)).item(), 2.5);
  EXPECT_EQ(vals(sum(d2({{1, 2, 3}}), {0})), (V{1, 2, 3}));  // a size-1 dim
}

TEST(OpsReduce, Float32SumsOverLeadingDimsDoNotDrift) {
  // Reducing the last dim accumulates float32 rows in double (reduce.cpp). Reducing a leading
  // dim (the bias-gradient shape) must be as accurate: torch sums 1e6 float32 values of 0.1f
  // to within a few ulp of 1e5 * 0.1f.
  const Tensor x = full({1000000, 2}, 0.1);
  const double want = 1e6 * static_cast<double>(0.1f);
  const V over_last = vals(sum(x.transpose(0, 1).contiguous(), {1}));
  ASSERT_EQ(over_last.size(), 2u);
  EXPECT_NEAR(over_last[0], want, 1e-5 * want) << "last-dim reduction";
  const V over_first = vals(sum(x, {0}));
  ASSERT_EQ(over_first.size(), 2u);
  EXPECT_NEAR(over_first[0], want, 1e-5 * want) << "leading-dim float32 sum drifted";
  EXPECT_NEAR(over_first[1], want, 1e-5 * want);
  EXPECT_NEAR(vals(mean(x, {0}))[0], static_cast<double>(0.1f), 1e-5 * 0.1) << "leading-dim float32 mean drifted";
  // a middle dim takes the same path
  EXPECT_NEAR(vals(sum(full({1, 1000000, 2}, 0.1), {1}))[0], want, 1e-5 * want) << "middle-dim float32 sum drifted";
}

TEST(OpsReduce, LargeRowsTakeTheParallelPathsAccurately) {
  EXPECT_EQ(vals(sum(ones({3, 100000}), {1})), (V{100000, 100000, 100000}));
  EXPECT_EQ(vals(sum(ones({100000, 3}), {0})), (V{100000, 100000, 100000}));
  EXPECT_DOUBLE_EQ(sum(full({1 << 22}, 0.1)).item(), static_cast<double>(0.1f) * (1 << 22));
  const Tensor big = rnd({2, 70000}, 33);
  const V bv = vals(big);
  double m0 = -kInf;
  for (int i = 0; i < 70000; ++i) m0 = std::max(m0, bv[i]);
  EXPECT_EQ(vals(max(big, 1))[0], m0);
}

TEST(OpsReduce, ColumnSumsMatchALoopOverEveryColumnBlock) {
  // A leading or middle dim summed over columns: threads split the columns, each sums strips of
  // 16 columns in registers and the columns left over one by one; widths around the strip's.
  for (const std::int64_t width : {1, 15, 16, 17, 45, 288}) {
    const Tensor x = rnd({301, 3, width}, 40 + width).to(DType::float32);
    const std::vector<float> xv = x.to_vector<float>();
    for (const std::int64_t dim : {0, 1}) {
      const std::vector<float> got = sum(x, {dim}).to_vector<float>();
      const std::int64_t outer = dim == 0 ? 1 : 301, n = dim == 0 ? 301 : 3, inner = dim == 0 ? 3 * width : width;
      ASSERT_EQ(got.size(), static_cast<std::size_t>(outer * inner));
      for (std::int64_t o = 0; o < outer; ++o)
        for (std::int64_t j = 0; j < inner; ++j) {
          double want = 0;
          for (std::int64_t i = 0; i < n; ++i) want += xv[static_cast<std::size_t>((o * n + i) * inner + j)];
          ASSERT_NEAR(got[static_cast<std::size_t>(o * inner + j)], want, 1e-5 * (1 + std::abs(want)))
              << "width " << width << " dim " << dim << " column " << j;
        }
    }
  }
}

// ------------------------------------------------------------------------- shape ops

TEST(OpsShape, ReshapeViewFlatten) {
  const Tensor x = arange(24, DType::float64);
  const Tensor r = reshape(x, {2, -1, 4});
  EXPECT_EQ(r.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(vals(r), vals(x));
  EXPECT_TRUE(r.shares_storage(x));
  EXPECT_EQ(reshape(x, {-1}).shape(), (Shape{24}));
  EXPECT_EQ(reshape(x, {4, -1}).shape(), (Shape{4, 6}));
  EXPECT_EQ(reshape(full({}, 1.0), {1, 1}).shape(), (Shape{1, 1}));
  EXPECT_EQ(reshape(full({1}, 1.0), {}).shape(), Shape{});
  EXPECT_EQ(x.reshape({6, 4}).shape(), (Shape{6, 4}));
  // reshape of a transposed tensor copies, in logical order
  const Tensor t = reshape(x, {4, 6}).transpose(0, 1);  // t[i][j] = 6 j + i
  const Tensor rt = reshape(t, {-1});
  V want;
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 4; ++j) want.push_back(6.0 * j + i);
  EXPECT_EQ(vals(rt), want);
  EXPECT_FALSE(rt.shares_storage(x));
  // view never copies
  const Tensor v = view(x, {3, 8});
  EXPECT_TRUE(v.shares_storage(x));
  EXPECT_EQ(vals(v), vals(x));
  EXPECT_EQ(view(x.slice(0, 12, 24), {3, 4}).to_vector<double>()[0], 12.0);  // a view of an offset block
  // flatten
  const Tensor c = reshape(x, {2, 3, 4});
  EXPECT_EQ(flatten(c).shape(), (Shape{24}));
  EXPECT_EQ(flatten(c, 1).shape(), (Shape{2, 12}));
  EXPECT_EQ(flatten(c, 0, 1).shape(), (Shape{6, 4}));
  EXPECT_EQ(flatten(c, -2, -1).shape(), (Shape{2, 12}));
  EXPECT_EQ(flatten(c, 1, 1).shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(vals(flatten(c, 1)), vals(x));
  EXPECT_EQ(flatten(full({}, 3.0)).shape(), (Shape{1}));
}

TEST(OpsShape, UnsqueezeSqueezeTransposePermute) {
  const Tensor x = arange(12, DType::float64).reshape({3, 4});
  EXPECT_EQ(unsqueeze(x, 0).shape(), (Shape{1, 3, 4}));
  EXPECT_EQ(unsqueeze(x, 1).shape(), (Shape{3, 1, 4}));
  EXPECT_EQ(unsqueeze(x, 2).shape(), (Shape{3, 4, 1}));
  EXPECT_EQ(unsqueeze(x, -1).shape(), (Shape{3, 4, 1}));
  EXPECT_EQ(unsqueeze(x, -3).shape(), (Shape{1, 3, 4}));
  EXPECT_EQ(vals(unsqueeze(x, 1)), vals(x));
  EXPECT_EQ(squeeze(unsqueeze(x, 1), 1).shape(), (Shape{3, 4}));
  EXPECT_EQ(squeeze(zeros({3, 1, 4}), -2).shape(), (Shape{3, 4}));
  EXPECT_EQ(squeeze(x, 0).shape(), (Shape{3, 4}));  // not size 1: unchanged, as torch
  EXPECT_EQ(unsqueeze(full({}, 2.0), 0).shape(), (Shape{1}));
  // transpose: t[j][i] = x[i][j]
  const Tensor t = transpose(x, 0, 1);
  EXPECT_EQ(t.shape(), (Shape{4, 3}));
  const V tv = vals(t);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_EQ(tv[j * 3 + i], 4.0 * i + j);
  EXPECT_EQ(vals(transpose(x, -1, -2)), tv);
  EXPECT_EQ(vals(transpose(x, 1, 1)), vals(x));
  // 3-D transpose(0, 2): y[k][j][i] = x3[i][j][k]
  const Tensor x3 = arange(24, DType::float64).reshape({2, 3, 4});
  const V y3 = vals(transpose(x3, 0, 2));
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) EXPECT_EQ(y3[(k * 3 + j) * 2 + i], 12.0 * i + 4.0 * j + k);
  // permute (2, 0, 1): p[k][i][j] = x3[i][j][k]
  const Tensor p = permute(x3, {2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  const V pv = vals(p);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) EXPECT_EQ(pv[(k * 2 + i) * 3 + j], 12.0 * i + 4.0 * j + k);
  EXPECT_EQ(vals(permute(x3, {-1, 0, -2})), pv);
  EXPECT_EQ(vals(permute(p, {1, 2, 0})), vals(x3));  // the inverse permutation
  EXPECT_EQ(vals(x3.permute({0, 1, 2})), vals(x3));
}

TEST(OpsShape, Expand) {
  const Tensor r = d({1, 2, 3});
  const Tensor e = expand(r, {2, 3});
  EXPECT_EQ(e.shape(), (Shape{2, 3}));
  EXPECT_EQ(e.strides(), (Shape{0, 1}));
  EXPECT_TRUE(e.shares_storage(r));
  EXPECT_EQ(vals(e), (V{1, 2, 3, 1, 2, 3}));
  EXPECT_EQ(vals(expand(d2({{1}, {2}}), {2, 4})), (V{1, 1, 1, 1, 2, 2, 2, 2}));
  EXPECT_EQ(expand(d2({{1}, {2}}), {3, -1, 2}).shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(vals(expand(d2({{1}, {2}}), {3, -1, 2})), (V{1, 1, 2, 2, 1, 1, 2, 2, 1, 1, 2, 2}));
  EXPECT_EQ(vals(expand(full({}, 5.0, DType::float64), {2, 2})), V(4, 5.0));
  EXPECT_EQ(vals(expand(r, {3})), vals(r));
}

TEST(OpsShape, SliceNegativeBoundsAndSteps) {
  const Tensor x = arange(10, DType::float64);
  EXPECT_EQ(vals(slice(x, 0, 2, 5)), (V{2, 3, 4}));
  EXPECT_EQ(vals(slice(x, 0, -3, 10)), (V{7, 8, 9}));
  EXPECT_EQ(vals(slice(x, 0, 0, -7)), (V{0, 1, 2}));
  EXPECT_EQ(vals(slice(x, 0, -5, -1, 2)), (V{5, 7}));
  EXPECT_EQ(vals(slice(x, 0, 1, -1, 3)), (V{1, 4, 7}));
  EXPECT_EQ(vals(slice(x, 0, 0, 10, 2)), (V{0, 2, 4, 6, 8}));
  EXPECT_EQ(vals(slice(x, 0, 1, 10, 2)), (V{1, 3, 5, 7, 9}));
  EXPECT_EQ(vals(slice(x, 0, 8, 100)), (V{8, 9}));  // clamped, as Python slicing
  EXPECT_EQ(vals(slice(x, 0, -100, 2)), (V{0, 1}));
  EXPECT_EQ(slice(x, 0, 5, 2).numel(), 0);
  EXPECT_EQ(slice(x, 0, 5, 2).shape(), (Shape{0}));
  const Tensor m = arange(12, DType::float64).reshape({3, 4});
  EXPECT_EQ(vals(slice(m, 1, 1, 3)), (V{1, 2, 5, 6, 9, 10}));
  EXPECT_EQ(vals(slice(m, -1, 0, 4, 2)), (V{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(vals(slice(m, 0, -2, 3)), (V{4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(vals(m.slice(0, 0, 3, 2).slice(1, -1, 4)), (V{3, 11}));
  EXPECT_EQ(slice(m, 1, 1, 3).shape(), (Shape{3, 2}));
}

TEST(OpsShape, ConcatAlongDim0AndDim1) {
  const Tensor a = d2({{0, 1, 2}, {3, 4, 5}}), b = d2({{9, 9, 9}}), c = d2({{6, 7, 8}, {1, 1, 1}, {2, 2, 2}});
  const Tensor c0 = concat({a, b, c}, 0);
  EXPECT_EQ(c0.shape(), (Shape{6, 3}));
  EXPECT_EQ(vals(c0), (V{0, 1, 2, 3, 4, 5, 9, 9, 9, 6, 7, 8, 1, 1, 1, 2, 2, 2}));
  const Tensor c1 = concat({a, d2({{7}, {8}}), d2({{10, 11}, {12, 13}})}, 1);
  EXPECT_EQ(c1.shape(), (Shape{2, 6}));
  EXPECT_EQ(vals(c1), (V{0, 1, 2, 7, 10, 11, 3, 4, 5, 8, 12, 13}));
  EXPECT_EQ(vals(concat({a, d2({{7}, {8}})}, -1)), (V{0, 1, 2, 7, 3, 4, 5, 8}));
  // a non-contiguous piece: the transpose of [[6, 8], [7, 9], [1, 2]] is [[6, 7, 1], [8, 9, 2]]
  const Tensor t = d2({{6, 8}, {7, 9}, {1, 2}}).transpose(0, 1);
  EXPECT_EQ(vals(concat({a, t}, 0)), (V{0, 1, 2, 3, 4, 5, 6, 7, 1, 8, 9, 2}));
  EXPECT_EQ(vals(concat({t, a}, 1)), (V{6, 7, 1, 0, 1, 2, 8, 9, 2, 3, 4, 5}));
  // one piece copies, other dtypes move too
  const Tensor one = concat({a}, 0);
  EXPECT_FALSE(one.shares_storage(a));
  EXPECT_EQ(vals(one), vals(a));
  EXPECT_EQ(concat({ids({1, 2}, {2}), ids({3}, {1})}, 0).to_vector<std::int64_t>(), (I{1, 2, 3}));
  EXPECT_EQ(concat({zeros({2, 0}), ones({2, 1})}, 1).shape(), (Shape{2, 1}));
}

TEST(OpsShape, SplitBySizeAndBySizes) {
  const Tensor x = arange(10, DType::float64);
  const auto parts = split(x, 4);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(vals(parts[0]), (V{0, 1, 2, 3}));
  EXPECT_EQ(vals(parts[1]), (V{4, 5, 6, 7}));
  EXPECT_EQ(vals(parts[2]), (V{8, 9}));  // the last piece is shorter
  for (const Tensor& p : parts) EXPECT_TRUE(p.shares_storage(x));
  EXPECT_EQ(split(x, 5).size(), 2u);
  EXPECT_EQ(split(x, 20).size(), 1u);
  const Tensor m = arange(12, DType::float64).reshape({3, 4});
  const auto cols = split(m, std::vector<std::int64_t>{1, 3}, 1);
  ASSERT_EQ(cols.size(), 2u);
  EXPECT_EQ(cols[0].shape(), (Shape{3, 1}));
  EXPECT_EQ(vals(cols[0]), (V{0, 4, 8}));
  EXPECT_EQ(vals(cols[1]), (V{1, 2, 3, 5, 6, 7, 9, 10, 11}));
  const auto rows = split(m, std::vector<std::int64_t>{2, 0, 1}, 0);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1].numel(), 0);
  EXPECT_EQ(vals(rows[2]), (V{8, 9, 10, 11}));
  EXPECT_EQ(vals(concat(split(m, 3, -1), -1)), vals(m));  // split then concat is the identity
}

TEST(OpsIndex, IndexSelectDim0AndDim1WithRepeats) {
  const Tensor w = arange(12, DType::float64).reshape({4, 3});  // w[i][j] = 3 i + j
  const Tensor r = index_select(w, 0, ids({3, 0, 3}, {3}));
  EXPECT_EQ(r.shape(), (Shape{3, 3}));
  EXPECT_EQ(vals(r), (V{9, 10, 11, 0, 1, 2, 9, 10, 11}));
  const Tensor c = index_select(w, 1, ids({2, 2, 0}, {3}));
  EXPECT_EQ(c.shape(), (Shape{4, 3}));
  EXPECT_EQ(vals(c), (V{2, 2, 0, 5, 5, 3, 8, 8, 6, 11, 11, 9}));
  EXPECT_EQ(vals(index_select(w, -1, ids({1}, {1}))), (V{1, 4, 7, 10}));
  EXPECT_EQ(index_select(w, 0, ids({}, {0})).shape(), (Shape{0, 3}));
  // a non-contiguous source and a non-contiguous index
  EXPECT_EQ(vals(index_select(transpose(w, 0, 1), 0, ids({1}, {1}))), (V{1, 4, 7, 10}));
  EXPECT_EQ(vals(index_select(w, 0, slice(ids({1, 9, 2, 9}, {4}), 0, 0, 4, 2))), (V{3, 4, 5, 6, 7, 8}));
  // against a loop on a 3-D input along the middle dim
  const Tensor x = rnd({2, 5, 3}, 40);
  const V xv = vals(x);
  const I idx{4, 0, 4, 2};
  const V got = vals(index_select(x, 1, ids(idx, {4})));
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k)
      for (int j = 0; j < 3; ++j) EXPECT_EQ(got[(i * 4 + k) * 3 + j], xv[(i * 5 + idx[k]) * 3 + j]);
  // integer payloads (an embedding of ids)
  EXPECT_EQ(index_select(ids({5, 6, 7}, {3}), 0, ids({2, 0}, {2})).to_vector<std::int64_t>(), (I{7, 5}));
}

TEST(OpsIndex, GatherDim0AndDim1) {
  const Tensor w = arange(12, DType::float64).reshape({4, 3});  // w[i][j] = 3 i + j
  // dim 1: out[i][j] = w[i][index[i][j]]
  const I i1{0, 2, 1, 1, 2, 0, 0, 0};
  const Tensor g1 = gather(w, 1, ids(i1, {4, 2}));
  EXPECT_EQ(g1.shape(), (Shape{4, 2}));
  EXPECT_EQ(vals(g1), (V{0, 2, 4, 4, 8, 6, 9, 9}));
  // dim 0: out[i][j] = w[index[i][j]][j], index smaller than w along dim 1 too
  const Tensor g0 = gather(w, 0, ids({3, 0, 1, 2, 2, 2}, {2, 3}));
  EXPECT_EQ(vals(g0), (V{9, 1, 5, 6, 7, 8}));
  EXPECT_EQ(vals(gather(w, 0, ids({3, 0}, {1, 2}))), (V{9, 1}));
  EXPECT_EQ(vals(gather(w, -1, ids({2, 1, 0, 2}, {4, 1}))), (V{2, 4, 6, 11}));
  // a transposed source: wt[i][j] = w[j][i] = 3 j + i
  const Tensor wt = transpose(w, 0, 1);  // (3, 4)
  EXPECT_EQ(vals(gather(wt, 1, ids({3, 0, 1, 1, 2, 2}, {3, 2}))), (V{9, 0, 4, 4, 8, 8}));
  // against a loop on random 3-D data, dim 2
  const Tensor x = rnd({2, 3, 4}, 41);
  const V xv = vals(x);
  Generator g(42);
  const Tensor idx = randint(0, 4, {2, 3, 5}, g);
  const I iv = idx.to_vector<std::int64_t>();
  const V got = vals(gather(x, 2, idx));
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 5; ++k) EXPECT_EQ(got[(i * 3 + j) * 5 + k], xv[(i * 3 + j) * 4 + iv[(i * 3 + j) * 5 + k]]);
}

TEST(OpsShape, ToDtype) {
  const Tensor x = d({1.7, -1.7, 0.1, 0});
  EXPECT_EQ(to_dtype(x, DType::float32).to_vector<float>(), (std::vector<float>{1.7f, -1.7f, 0.1f, 0.f}));
  EXPECT_EQ(to_dtype(x, DType::int64).to_vector<std::int64_t>(), (I{1, -1, 0, 0}));
  EXPECT_EQ(vals(to_dtype(x, DType::bool_)), (V{1, 1, 1, 0}));
  EXPECT_EQ(to_dtype(x, DType::float64).shares_storage(x), true);
  EXPECT_EQ(vals(to_dtype(ids({3, -4}, {2}), DType::float32)), (V{3, -4}));
  EXPECT_EQ(to_dtype(x.reshape({2, 2}).transpose(0, 1), DType::float32).to_vector<float>(),
            (std::vector<float>{1.7f, 0.1f, -1.7f, 0.f}));
}

// ------------------------------------------------------------------------- matmul (light)

TEST(OpsLinalg, MatmulTwoDimAndOneDimCases) {
  const Tensor a = rnd({2, 3}, 50), b = rnd({3, 4}, 51);
  const V av = vals(a), bv = vals(b);
  V want(8, 0.0);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 3; ++k) want[i * 4 + j] += av[i * 3 + k] * bv[k * 4 + j];
  const Tensor y = matmul(a, b);
  EXPECT_EQ(y.shape(), (Shape{2, 4}));
  expect_close(vals(y), want, 1e-14, "(2,3)@(3,4)");
  expect_close(vals(matmul(b.transpose(0, 1), a.transpose(0, 1))), vals(y.transpose(0, 1)), 1e-14, "transposed");
  EXPECT_EQ(vals(matmul(d2({{1, 2}, {3, 4}}), d2({{5, 6}, {7, 8}}))), (V{19, 22, 43, 50}));
  // (2, 2) @ (2) -> (2); (2) @ (2, 3) -> (3); (3) @ (3) -> ()
  const Tensor mv = matmul(d2({{1, 2}, {3, 4}}), d({1, -1}));
  EXPECT_EQ(mv.shape(), (Shape{2}));
  EXPECT_EQ(vals(mv), (V{-1, -1}));
  const Tensor vm = matmul(d({1, 2}), d2({{1, 0, 2}, {0, 1, 3}}));
  EXPECT_EQ(vm.shape(), (Shape{3}));
  EXPECT_EQ(vals(vm), (V{1, 2, 8}));
  const Tensor dot = matmul(d({1, 2, 3}), d({4, 5, 6}));
  EXPECT_EQ(dot.shape(), Shape{});
  EXPECT_EQ(dot.item(), 32.0);
  EXPECT_NEAR(matmul(tensor({1, 2, 3}), tensor({4, 5, 6})).item(), 32.0, 0);  // float32
}

// ------------------------------------------------------------------------- nn ops

// Softmax of one strided line of a row-major buffer, in double.
V softmax_line(const V& x, int start, int n, int stride, bool log) {
  double m = -kInf, z = 0;
  for (int i = 0; i < n; ++i) m = std::max(m, x[start + i * stride]);
  for (int i = 0; i < n; ++i) z += std::exp(x[start + i * stride] - m);
  V out;
  for (int i = 0; i < n; ++i) {
    const double v = x[start + i * stride] - m;
    out.push_back(log ? v - std::log(z) : std::exp(v) / z);
  }
  return out;
}

TEST(OpsNN, SoftmaxAndLogSoftmaxAlongTheLastDim) {
  const Tensor x = rnd({4, 7}, 60);
  const V xv = vals(x), y = vals(softmax(x, -1)), ly = vals(log_softmax(x, -1));
  EXPECT_EQ(softmax(x).shape(), (Shape{4, 7}));
  for (int r = 0; r < 4; ++r) {
    const V sw = softmax_line(xv, r * 7, 7, 1, false), lw = softmax_line(xv, r * 7, 7, 1, true);
    double rowsum = 0;
    for (int i = 0; i < 7; ++i) {
      EXPECT_NEAR(y[r * 7 + i], sw[i], 1e-15);
      EXPECT_NEAR(ly[r * 7 + i], lw[i], 1e-14);
      EXPECT_NEAR(std::exp(ly[r * 7 + i]), y[r * 7 + i], 1e-15);
      rowsum += y[r * 7 + i];
    }
    EXPECT_NEAR(rowsum, 1.0, 1e-15);
  }
  EXPECT_EQ(vals(softmax(x)), y);  // dim defaults to -1
  EXPECT_EQ(vals(softmax(x, 1)), y);
  // stable for large logits: a shift does not change the result, and nothing overflows
  expect_close(vals(softmax(x + 1000.0, -1)), y, 1e-12, "shifted softmax");
  expect_close(vals(log_softmax(x - 1000.0, -1)), ly, 1e-12, "shifted log_softmax");
  // torch.softmax(torch.tensor([1., 2., 3.], dtype=torch.float64), 0)
  expect_close(vals(softmax(d({1, 2, 3}))), V{0.09003057317038046, 0.24472847105479764, 0.6652409557748219}, 1e-15,
               "softmax [1,2,3]");
  expect_close(vals(log_softmax(d({1, 2, 3}))), V{-2.4076059644443806, -1.4076059644443806, -0.4076059644443806}, 1e-15,
               "log_softmax [1,2,3]");
  // -inf entries get probability 0 (masked attention)
  const V masked = vals(softmax(d({0, -kInf, 0})));
  EXPECT_EQ(masked, (V{0.5, 0, 0.5}));
  // float32 rows (a SIMD body of 37 plus a tail) against double
  const Tensor xf = rnd({3, 37}, 61, DType::float32);
  expect_close(vals(softmax(xf)), vals(softmax(to_dtype(xf, DType::float64))), 1e-6, "float32 softmax");
  expect_close(vals(log_softmax(xf)), vals(log_softmax(to_dtype(xf, DType::float64))), 2e-6, "float32 log_softmax");
}

TEST(OpsNN, SoftmaxAlongAMiddleDimAndOnNonContiguousInput) {
  const Tensor x = rnd({2, 5, 3}, 62);
  const V xv = vals(x);
  const V y = vals(softmax(x, 1)), ly = vals(log_softmax(x, -2));
  for (int o = 0; o < 2; ++o)
    for (int j = 0; j < 3; ++j) {
      const V sw = softmax_line(xv, o * 15 + j, 5, 3, false), lw = softmax_line(xv, o * 15 + j, 5, 3, true);
      double colsum = 0;
      for (int i = 0; i < 5; ++i) {
        EXPECT_NEAR(y[o * 15 + i * 3 + j], sw[i], 1e-15);
        EXPECT_NEAR(ly[o * 15 + i * 3 + j], lw[i], 1e-14);
        colsum += y[o * 15 + i * 3 + j];
      }
      EXPECT_NEAR(colsum, 1.0, 1e-15);
    }
  for (double v : vals(sum(softmax(x, 0), {0}))) EXPECT_NEAR(v, 1.0, 1e-15);
  // a transposed input along its last dim equals the original along dim 0
  const Tensor m = rnd({6, 4}, 63);
  expect_close(vals(softmax(m.transpose(0, 1), -1)), vals(softmax(m, 0).transpose(0, 1)), 1e-15, "transposed");
  expect_close(vals(log_softmax(m.transpose(0, 1), 1)), vals(log_softmax(m, 0).transpose(0, 1)), 1e-14,
               "transposed log");
}

// layer_norm of each row of `rows` (n values each), in double, as a hand loop.
V layer_norm_rows(const V& x, int n, const V& w, const V& b, double eps) {
  V out;
  for (std::size_t r = 0; r < x.size() / n; ++r) {
    double mu = 0, var = 0;
    for (int i = 0; i < n; ++i) mu += x[r * n + i];
    mu /= n;
    for (int i = 0; i < n; ++i) var += (x[r * n + i] - mu) * (x[r * n + i] - mu);
    var /= n;  // biased, as torch
    for (int i = 0; i < n; ++i)
      out.push_back((x[r * n + i] - mu) / std::sqrt(var + eps) * (w.empty() ? 1.0 : w[i]) + (b.empty() ? 0.0 : b[i]));
  }
  return out;
}

TEST(OpsNN, LayerNormWithAndWithoutWeightAndBias) {
  const Tensor x = rnd({3, 5}, 70);
  const Tensor w = rnd({5}, 71), b = rnd({5}, 72);
  const V xv = vals(x), wv = vals(w), bv = vals(b);
  expect_close(vals(layer_norm(x, {5}, w, b)), layer_norm_rows(xv, 5, wv, bv, 1e-5), 1e-14, "affine");
  expect_close(vals(layer_norm(x, {5}, Tensor(), Tensor())), layer_norm_rows(xv, 5, {}, {}, 1e-5), 1e-14, "plain");
  expect_close(vals(layer_norm(x, {5}, w, Tensor())), layer_norm_rows(xv, 5, wv, {}, 1e-5), 1e-14, "weight only");
  expect_close(vals(layer_norm(x, {5}, Tensor(), b)), layer_norm_rows(xv, 5, {}, bv, 1e-5), 1e-14, "bias only");
  expect_close(vals(layer_norm(x, {5}, Tensor(), Tensor(), 0.5)), layer_norm_rows(xv, 5, {}, {}, 0.5), 1e-14, "eps");
  // hand-computed: [1, 2, 3, 4] has mean 2.5 and biased variance 1.25
  const double s = std::sqrt(1.25 + 1e-5);
  expect_close(vals(layer_norm(d({1, 2, 3, 4}), {4}, Tensor(), Tensor())), V{-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s},
               1e-15, "hand");
  // without affine, each row has mean 0 and variance var / (var + eps)
  const V plain = vals(layer_norm(x, {5}, Tensor(), Tensor(), 0.0));
  for (int r = 0; r < 3; ++r) {
    double mu = 0, var = 0;
    for (int i = 0; i < 5; ++i) mu += plain[r * 5 + i] / 5;
    for (int i = 0; i < 5; ++i) var += (plain[r * 5 + i] - mu) * (plain[r * 5 + i] - mu) / 5;
    EXPECT_NEAR(mu, 0.0, 1e-15);
    EXPECT_NEAR(var, 1.0, 1e-14);
  }
  // over the last two dims: each (2, 3) block of a (4, 2, 3) input is one group
  const Tensor x3 = rnd({4, 2, 3}, 73), w3 = rnd({2, 3}, 74), b3 = rnd({2, 3}, 75);
  expect_close(vals(layer_norm(x3, {2, 3}, w3, b3)), layer_norm_rows(vals(x3), 6, vals(w3), vals(b3), 1e-5), 1e-14,
               "two dims");
  // a non-contiguous input
  const Tensor xt_ = rnd({5, 3}, 76).transpose(0, 1);
  expect_close(vals(layer_norm(xt_, {5}, w, b)), layer_norm_rows(vals(xt_), 5, wv, bv, 1e-5), 1e-14, "transposed");
  // float32, 37 wide (SIMD body and tail)
  const Tensor xf = rnd({4, 37}, 77, DType::float32), wf = rnd({37}, 78, DType::float32),
               bf = rnd({37}, 79, DType::float32);
  expect_close(vals(layer_norm(xf, {37}, wf, bf)), layer_norm_rows(vals(xf), 37, vals(wf), vals(bf), 1e-5), 2e-6,
               "float32");
  EXPECT_EQ(layer_norm(xf, {37}, wf, bf).dtype(), DType::float32);
}

// The keep mask is a keyed hash of the position, blocks of 65536 positions apart: no block, no
// neighbour and no second draw may show a pattern.
TEST(OpsNN, DropoutMaskHasItsRateEverywhereAndNoPattern) {
  const std::int64_t n = 5 * 65536 + 123;
  std::vector<unsigned char> first, second;
  for (const double p : {0.1, 0.5, 0.9}) {
    Generator g(11);
    for (std::vector<unsigned char>* mask : {&first, &second}) {
      std::vector<char> keep(static_cast<std::size_t>(n));
      bernoulli_keep(reinterpret_cast<bool*>(keep.data()), n, p, g);
      mask->assign(keep.begin(), keep.end());
    }
    const double q = 1 - p;
    const auto near = [](double got, double want, double count) {  // within 5 standard errors
      return std::abs(got - want) < 5 * std::sqrt(want * (1 - want) / count);
    };
    for (std::int64_t block = 0; block * 65536 < n; ++block) {
      const std::int64_t lo = block * 65536, hi = std::min(n, lo + 65536);
      double kept = 0;
      for (std::int64_t i = lo; i < hi; ++i) kept += first[i];
      EXPECT_TRUE(near(kept / double(hi - lo), q, double(hi - lo))) << "p " << p << " block " << block << ": " << kept;
    }
    double pairs = 0, both = 0, same = 0;
    for (std::int64_t i = 0; i + 1 < n; ++i) {
      pairs += first[i] && first[i + 1];
      both += first[i] && second[i];
      same += first[i] == first[i + 1 + (i % 7)] || i + 8 >= n;
    }
    EXPECT_TRUE(near(pairs / double(n - 1), q * q, double(n))) << "neighbours, p " << p;
    EXPECT_TRUE(near(both / double(n - 1), q * q, double(n))) << "two draws, p " << p;
    EXPECT_TRUE(near(same / double(n - 1), p * p + q * q, double(n))) << "near positions, p " << p;
  }
  // a dropped infinity is 0 and a kept one stays infinite (the mask selects, it does not multiply)
  const Tensor inf = full({4096}, std::numeric_limits<double>::infinity(), DType::float64);
  Generator g(3);
  std::int64_t zeros = 0;
  for (const double v : dropout(inf, 0.5, true, g).to_vector<double>()) {
    ASSERT_TRUE(v == 0.0 || v == std::numeric_limits<double>::infinity()) << v;
    zeros += v == 0.0;
  }
  EXPECT_GT(zeros, 1800);
  EXPECT_LT(zeros, 2300);
}

TEST(OpsNN, DropoutEvalModeAndTrainModeStatistics) {
  const Tensor x = rnd({100000}, 80);
  const V xv = vals(x);
  // eval mode: the input itself
  const Tensor ev = dropout(x, 0.5, false);
  EXPECT_TRUE(ev.shares_storage(x));
  EXPECT_EQ(vals(ev), xv);
  // p = 0: identity even when training
  EXPECT_EQ(vals(dropout(x, 0.0, true)), xv);
  // training with p = 0.3: each element is 0 or x / 0.7, about 30% zeros
  const double p = 0.3;
  Generator g1(5);
  const Tensor y = dropout(x, p, true, g1);
  EXPECT_EQ(y.shape(), x.shape());
  EXPECT_EQ(y.dtype(), DType::float64);
  const V yv = vals(y);
  std::int64_t dropped = 0;
  for (std::size_t i = 0; i < yv.size(); ++i) {
    if (yv[i] == 0.0) {
      ++dropped;
    } else {
      EXPECT_DOUBLE_EQ(yv[i], xv[i] * (1.0 / (1.0 - p))) << i;
      if (::testing::Test::HasFailure()) break;
    }
  }
  EXPECT_NEAR(static_cast<double>(dropped) / 100000.0, p, 0.01);  // standard error 0.0014
  EXPECT_NEAR(sum(y).item() / 100000.0, sum(x).item() / 100000.0, 0.02) << "dropout preserves the mean";
  // same seed, same mask; another seed, another mask
  Generator g2(5), g3(6);
  EXPECT_EQ(vals(dropout(x, p, true, g2)), yv);
  const V other = vals(dropout(x, p, true, g3));
  std::int64_t differ = 0;
  for (std::size_t i = 0; i < yv.size(); ++i) differ += (yv[i] == 0.0) != (other[i] == 0.0);
  EXPECT_GT(differ, 30000);  // independent masks differ in 2 p (1 - p) = 42% of places
  // p = 1: everything dropped
  for (double v : vals(dropout(x, 1.0, true))) ASSERT_EQ(v, 0.0);
  // float32: kept values are x * (1 / (1 - p)) in float
  Generator g4(7);
  const Tensor xf = ones({1000});
  for (float v : dropout(xf, 0.25, true, g4).to_vector<float>())
    EXPECT_TRUE(v == 0.f || v == static_cast<float>(1.0 / 0.75)) << v;
  // the default generator is reproducible through manual_seed
  manual_seed(77);
  const V a = vals(dropout(x.slice(0, 0, 100), 0.5, true));
  manual_seed(77);
  EXPECT_EQ(vals(dropout(x.slice(0, 0, 100), 0.5, true)), a);
  // a non-contiguous input keeps its logical order
  const Tensor t = rnd({20, 30}, 81).transpose(0, 1);
  Generator g5(8);
  const V tv = vals(t), dt = vals(dropout(t, 0.5, true, g5));
  EXPECT_EQ(dropout(t, 0.5, true, g5).shape(), (Shape{30, 20}));
  for (std::size_t i = 0; i < tv.size(); ++i) EXPECT_TRUE(dt[i] == 0.0 || dt[i] == tv[i] * 2.0) << i;
}

// Expected cross-entropy terms in double from a log-softmax computed here.
struct CeRef {
  V logits;
  int classes;
  double logp(int r, int c) const {
    const V l = softmax_line(logits, r * classes, classes, 1, true);
    return l[c];
  }
  double nll(int r, int t) const { return -logp(r, t); }
  double smooth(int r) const {  // mean over classes of -log p
    double s = 0;
    for (int c = 0; c < classes; ++c) s -= logp(r, c);
    return s / classes;
  }
};

TEST(OpsNN, CrossEntropyReductionsAndIgnoreIndex) {
  const Tensor logits = rnd({4, 5}, 90);
  const CeRef ref{vals(logits), 5};
  const Tensor target = ids({1, 4, -100, 0}, {4});
  const double n0 = ref.nll(0, 1), n1 = ref.nll(1, 4), n3 = ref.nll(3, 0);
  const Tensor mean_loss = cross_entropy(logits, target);
  EXPECT_EQ(mean_loss.shape(), Shape{});
  EXPECT_NEAR(mean_loss.item(), (n0 + n1 + n3) / 3, 1e-14);  // mean over the non-ignored rows
  EXPECT_NEAR(cross_entropy(logits, target, {-100, 0.0, Reduction::sum}).item(), n0 + n1 + n3, 1e-14);
  const Tensor none = cross_entropy(logits, target, {-100, 0.0, Reduction::none});
  EXPECT_EQ(none.shape(), (Shape{4}));
  expect_close(vals(none), V{n0, n1, 0.0, n3}, 1e-14, "none");
  // a custom ignore_index that is also a valid class
  const Tensor t2 = ids({1, 4, 2, 4}, {4});
  CrossEntropyOptions o;
  o.ignore_index = 4;
  EXPECT_NEAR(cross_entropy(logits, t2, o).item(), (ref.nll(0, 1) + ref.nll(2, 2)) / 2, 1e-14);
  o.reduction = Reduction::none;
  expect_close(vals(cross_entropy(logits, t2, o)), V{ref.nll(0, 1), 0, ref.nll(2, 2), 0}, 1e-14, "ignore 4");
  // unbatched: (V) logits and a () target give a () loss
  const Tensor one = cross_entropy(logits.slice(0, 1, 2).reshape({5}), ids({4}, {}));
  EXPECT_EQ(one.shape(), Shape{});
  EXPECT_NEAR(one.item(), n1, 1e-14);
  // every target ignored: mean is 0 / 0 = NaN (as torch), sum is 0, none is all zeros
  const Tensor all_ignored = ids({-100, -100, -100, -100}, {4});
  EXPECT_TRUE(std::isnan(cross_entropy(logits, all_ignored).item()));
  EXPECT_EQ(cross_entropy(logits, all_ignored, {-100, 0.0, Reduction::sum}).item(), 0.0);
  EXPECT_EQ(vals(cross_entropy(logits, all_ignored, {-100, 0.0, Reduction::none})), V(4, 0.0));
  // a non-contiguous logits tensor
  const Tensor lt_ = rnd({5, 4}, 91).transpose(0, 1);
  const CeRef reft{vals(lt_), 5};
  EXPECT_NEAR(cross_entropy(lt_, ids({0, 1, 2, 3}, {4})).item(),
              (reft.nll(0, 0) + reft.nll(1, 1) + reft.nll(2, 2) + reft.nll(3, 3)) / 4, 1e-14);
  // float32 logits
  const Tensor lf = to_dtype(logits, DType::float32);
  const CeRef reff{vals(lf), 5};
  const double wantf = (reff.nll(0, 1) + reff.nll(1, 4) + reff.nll(3, 0)) / 3;
  EXPECT_EQ(cross_entropy(lf, target).dtype(), DType::float32);
  EXPECT_NEAR(cross_entropy(lf, target).item(), wantf, 2e-6 * std::max(1.0, wantf));
  // torch.nn.functional.cross_entropy(torch.tensor([[1., 2., 3.]]), torch.tensor([0]))
  EXPECT_NEAR(cross_entropy(d2({{1, 2, 3}}), ids({0}, {1})).item(), 2.4076059644443806, 1e-14);
  // large logits do not overflow
  EXPECT_NEAR(cross_entropy(d2({{1001, 1002, 1003}}), ids({0}, {1})).item(), 2.4076059644443806, 1e-12);
}

TEST(OpsNN, CrossEntropyLabelSmoothing) {
  const Tensor logits = rnd({4, 5}, 92);
  const CeRef ref{vals(logits), 5};
  const Tensor target = ids({1, -100, 3, 0}, {4});
  const double eps = 0.1;
  // torch: loss_i = (1 - eps) nll_i + eps * mean_c(-log p_ic); ignored rows add nothing,
  // and the mean divides both parts by the number of non-ignored rows
  auto row = [&](int r, int t) { return (1 - eps) * ref.nll(r, t) + eps * ref.smooth(r); };
  const double l0 = row(0, 1), l2 = row(2, 3), l3 = row(3, 0);
  EXPECT_NEAR(cross_entropy(logits, target, {-100, eps, Reduction::mean}).item(), (l0 + l2 + l3) / 3, 1e-14);
  EXPECT_NEAR(cross_entropy(logits, target, {-100, eps, Reduction::sum}).item(), l0 + l2 + l3, 1e-14);
  expect_close(vals(cross_entropy(logits, target, {-100, eps, Reduction::none})), V{l0, 0.0, l2, l3}, 1e-14, "none");
  // eps = 1: only the uniform part remains, whatever the target
  EXPECT_NEAR(cross_entropy(logits, ids({0, 1, 2, 3}, {4}), {-100, 1.0, Reduction::sum}).item(),
              ref.smooth(0) + ref.smooth(1) + ref.smooth(2) + ref.smooth(3), 1e-13);
  // uniform logits: every -log p is log V, smoothing or not
  EXPECT_NEAR(cross_entropy(zeros({2, 5}, DType::float64), ids({0, 4}, {2}), {-100, 0.3, Reduction::mean}).item(),
              std::log(5.0), 1e-15);
}

TEST(OpsNN, MseLoss) {
  const Tensor a = rnd({3, 4}, 95), b = rnd({3, 4}, 96);
  const V av = vals(a), bv = vals(b);
  V sq;
  double total = 0;
  for (std::size_t i = 0; i < av.size(); ++i) {
    sq.push_back((av[i] - bv[i]) * (av[i] - bv[i]));
    total += sq.back();
  }
  EXPECT_EQ(mse_loss(a, b).shape(), Shape{});
  EXPECT_NEAR(mse_loss(a, b).item(), total / 12, 1e-15);
  EXPECT_NEAR(mse_loss(a, b, Reduction::sum).item(), total, 1e-14);
  const Tensor none = mse_loss(a, b, Reduction::none);
  EXPECT_EQ(none.shape(), (Shape{3, 4}));
  expect_close(vals(none), sq, 1e-15, "none");
  EXPECT_DOUBLE_EQ(mse_loss(d({1, 2, 3}), d({1, 4, 0})).item(), 13.0 / 3);
  EXPECT_EQ(mse_loss(a, a).item(), 0.0);
  // a non-contiguous input against its contiguous copy
  EXPECT_NEAR(mse_loss(a.transpose(0, 1), b.transpose(0, 1)).item(), total / 12, 1e-15);
  const Tensor af = to_dtype(a, DType::float32), bf = to_dtype(b, DType::float32);
  EXPECT_NEAR(mse_loss(af, bf).item(), total / 12, 1e-6);
}

}  // namespace
}  // namespace rune
