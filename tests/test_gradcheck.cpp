// Finite-difference gradient checks of every differentiable op (the list in autograd/tape.hpp),
// in float64 on small random shapes including broadcast and non-contiguous (transposed) inputs,
// plus float32 runs of the fused kernels. GradCheckCoverage fails when an op of the list has no
// case here, or when a case does not actually record the op it claims to check.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <string>

#include "autograd/gradcheck.hpp"
#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/testing.hpp"

namespace rune {
namespace {

using Inputs = std::vector<Tensor>;

struct GradCase {
  std::string name;
  Op op;  // the op this case is for
  std::function<Inputs()> make_inputs;
  GradcheckFn fn;
  GradcheckOptions options = {};
};
// gtest names a case by this, not by the bytes of the struct (which hold addresses)
void PrintTo(const GradCase& c, std::ostream* os) { *os << c.name; }

// A float64 leaf of normal values, seeded by its shape's position in the case list.
Tensor leaf(const Shape& shape, std::uint64_t seed, DType dtype = DType::float64) {
  Generator g(seed);
  return randn(shape, g, dtype).requires_grad_();
}

// Values in [low, high]: for log, sqrt, pow and divisors.
Tensor positive_leaf(const Shape& shape, std::uint64_t seed, double low = 0.5, double high = 2.0) {
  Generator g(seed);
  return uniform(shape, low, high, g, DType::float64).requires_grad_();
}

// Normal values pushed at least 0.1 away from 0 (relu's kink).
Tensor away_from_zero(const Shape& shape, std::uint64_t seed) {
  Generator g(seed);
  Tensor t = randn(shape, g, DType::float64);
  double* p = t.data<double>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] += p[i] >= 0 ? 0.1 : -0.1;
  return t.requires_grad_();
}

// A non-contiguous leaf of the given shape: the transpose of a (.., cols, rows) tensor.
Tensor transposed_leaf(const Shape& shape, std::uint64_t seed) {
  Shape stored = shape;
  std::swap(stored[stored.size() - 1], stored[stored.size() - 2]);
  Generator g(seed);
  Tensor t = randn(stored, g, DType::float64).transpose(-1, -2).detach();
  return t.requires_grad_();
}

Tensor ids(const std::vector<std::int64_t>& v, const Shape& shape) { return from_vector(v, shape); }

Tensor bool_mask(const Shape& shape, std::uint64_t seed) {
  Generator g(seed);
  return gt(randn(shape, g, DType::float64), zeros({}, DType::float64));
}

const GradcheckOptions kFloat32{1e-3, 2e-3, 2e-2};

std::vector<GradCase> all_cases() {
  std::vector<GradCase> c;
  auto add_case = [&](std::string name, Op op, std::function<Inputs()> in, GradcheckFn fn, GradcheckOptions o = {}) {
    c.push_back({std::move(name), op, std::move(in), std::move(fn), o});
  };

  // ---- arithmetic, with broadcasting and non-contiguous operands
  add_case(
      "add_broadcast", Op::add,
      [] {
        return Inputs{leaf({2, 3}, 1), leaf({3}, 2)};
      },
      [](const Inputs& x) { return add(x[0], x[1]); });
  add_case(
      "add_transposed", Op::add,
      [] {
        return Inputs{transposed_leaf({3, 4}, 3), leaf({3, 1}, 4)};
      },
      [](const Inputs& x) { return x[0] + x[1]; });
  add_case(
      "sub_broadcast", Op::sub,
      [] {
        return Inputs{leaf({2, 1, 3}, 5), leaf({4, 3}, 6)};
      },
      [](const Inputs& x) { return sub(x[0], x[1]); });
  add_case(
      "mul_broadcast", Op::mul,
      [] {
        return Inputs{transposed_leaf({3, 4}, 7), leaf({4}, 8)};
      },
      [](const Inputs& x) { return mul(x[0], x[1]); });
  add_case(
      "mul_scalar", Op::mul,
      [] {
        return Inputs{leaf({2, 3}, 9)};
      },
      [](const Inputs& x) { return 3.0 * x[0] * 0.5; });
  add_case(
      "div_broadcast", Op::div,
      [] {
        return Inputs{leaf({2, 3}, 10), positive_leaf({2, 1}, 11)};
      },
      [](const Inputs& x) { return div(x[0], x[1]); });
  add_case(
      "neg", Op::neg,
      [] {
        return Inputs{transposed_leaf({2, 3}, 12)};
      },
      [](const Inputs& x) { return -x[0]; });
  add_case(
      "pow_scalar", Op::pow,
      [] {
        return Inputs{positive_leaf({2, 3}, 13)};
      },
      [](const Inputs& x) { return pow(x[0], 2.5) + pow(x[0], 3.0); });
  add_case(
      "pow_tensor", Op::pow_tensor,
      [] {
        return Inputs{positive_leaf({2, 3}, 14), leaf({3}, 15)};
      },
      [](const Inputs& x) { return pow(x[0], x[1]); });

  // ---- unary math and activations
  add_case(
      "exp", Op::exp,
      [] {
        return Inputs{transposed_leaf({3, 2}, 16)};
      },
      [](const Inputs& x) { return exp(x[0]); });
  add_case(
      "log", Op::log,
      [] {
        return Inputs{positive_leaf({2, 5}, 17)};
      },
      [](const Inputs& x) { return log(x[0]); });
  add_case(
      "sqrt", Op::sqrt,
      [] {
        return Inputs{positive_leaf({2, 5}, 18)};
      },
      [](const Inputs& x) { return sqrt(x[0]); });
  add_case(
      "tanh", Op::tanh,
      [] {
        return Inputs{leaf({3, 11}, 19)};
      },  // 11: a SIMD body and a tail
      [](const Inputs& x) { return tanh(x[0]); });
  add_case(
      "sigmoid", Op::sigmoid,
      [] {
        return Inputs{leaf({3, 7}, 20)};
      },
      [](const Inputs& x) { return sigmoid(x[0]); });
  add_case(
      "relu", Op::relu,
      [] {
        return Inputs{away_from_zero({3, 7}, 21)};
      },
      [](const Inputs& x) { return relu(x[0]); });
  add_case(
      "erf", Op::erf,
      [] {
        return Inputs{leaf({2, 9}, 22)};
      },
      [](const Inputs& x) { return erf(x[0]); });
  add_case(
      "gelu_exact", Op::gelu,
      [] {
        return Inputs{transposed_leaf({5, 3}, 23)};
      },
      [](const Inputs& x) { return gelu(x[0]); });
  add_case(
      "gelu_tanh", Op::gelu,
      [] {
        return Inputs{leaf({3, 9}, 24)};
      },
      [](const Inputs& x) { return gelu(x[0], GeluApproximation::tanh); });
  add_case(
      "gelu_float32", Op::gelu,
      [] {
        return Inputs{leaf({3, 19}, 25, DType::float32)};
      },
      [](const Inputs& x) { return gelu(x[0]); }, kFloat32);

  // ---- selection
  add_case(
      "where", Op::where,
      [] {
        return Inputs{bool_mask({2, 3}, 26), leaf({2, 3}, 27), leaf({3}, 28)};
      },
      [](const Inputs& x) { return where(x[0], x[1], x[2]); });
  add_case(
      "masked_fill", Op::masked_fill,
      [] {
        return Inputs{transposed_leaf({2, 3}, 29), bool_mask({1, 3}, 30)};
      },
      [](const Inputs& x) { return masked_fill(x[0], x[1], -5.0); });

  // ---- reductions
  add_case(
      "sum_all", Op::sum,
      [] {
        return Inputs{transposed_leaf({3, 4}, 31)};
      },
      [](const Inputs& x) { return sum(x[0]); });
  add_case(
      "sum_dims_keepdim", Op::sum,
      [] {
        return Inputs{leaf({2, 3, 4}, 32)};
      },
      [](const Inputs& x) {
        return sum(x[0], {0, 2}, true);
      });
  add_case(
      "sum_last", Op::sum,
      [] {
        return Inputs{leaf({2, 3, 4}, 33)};
      },
      [](const Inputs& x) { return x[0].sum({-1}); });
  add_case(
      "mean_dims", Op::mean,
      [] {
        return Inputs{transposed_leaf({2, 4, 3}, 34)};
      },
      [](const Inputs& x) { return mean(x[0], {1}, false); });
  add_case(
      "mean_all", Op::mean,
      [] {
        return Inputs{leaf({3, 2}, 35)};
      },
      [](const Inputs& x) { return mean(x[0]); });
  add_case(
      "max_dim", Op::max,
      [] {
        return Inputs{leaf({3, 5}, 36)};
      },
      [](const Inputs& x) { return max(x[0], 1, false); });
  add_case(
      "max_dims_keepdim", Op::max,
      [] {
        return Inputs{transposed_leaf({2, 3, 4}, 37)};
      },
      [](const Inputs& x) {
        return max(x[0], std::vector<std::int64_t>{0, 2}, true);
      });
  add_case(
      "max_all", Op::max,
      [] {
        return Inputs{leaf({2, 3}, 38)};
      },
      [](const Inputs& x) { return max(x[0]); });

  // ---- shape
  add_case(
      "reshape", Op::reshape,
      [] {
        return Inputs{transposed_leaf({3, 4}, 39)};
      },
      [](const Inputs& x) {
        return reshape(x[0], {2, -1}) * leaf({2, 6}, 40).detach();
      });
  add_case(
      "transpose", Op::transpose,
      [] {
        return Inputs{leaf({2, 3, 4}, 41)};
      },
      [](const Inputs& x) {
        return transpose(x[0], 0, 2) * leaf({4, 3, 2}, 42).detach();
      });
  add_case(
      "permute", Op::permute,
      [] {
        return Inputs{leaf({2, 3, 4}, 43)};
      },
      [](const Inputs& x) {
        return permute(x[0], {1, 2, 0}) * leaf({3, 4, 2}, 44).detach();
      });
  add_case(
      "expand", Op::expand,
      [] {
        return Inputs{leaf({3, 1}, 45)};
      },
      [](const Inputs& x) {
        return expand(x[0], {2, 3, 4}) * leaf({2, 3, 4}, 46).detach();
      });
  add_case(
      "contiguous", Op::contiguous,
      [] {
        return Inputs{transposed_leaf({3, 4}, 47)};
      },
      [](const Inputs& x) {
        return contiguous(x[0]) * leaf({3, 4}, 48).detach();
      });
  add_case(
      "slice", Op::slice,
      [] {
        return Inputs{leaf({4, 7}, 49)};
      },
      [](const Inputs& x) { return slice(x[0], 1, -6, 7, 2) + slice(x[0], 0, 1, 3).sum({0}, true).slice(1, 0, 3); });
  add_case(
      "split", Op::slice,
      [] {
        return Inputs{leaf({5, 3}, 50)};
      },
      [](const Inputs& x) {
        auto parts = split(x[0], 2, 0);
        return parts[0].sum() * parts[1].sum() + parts[2].sum();
      });
  add_case(
      "concat", Op::concat,
      [] {
        return Inputs{leaf({2, 3}, 51), transposed_leaf({2, 1}, 52), leaf({2, 2}, 53)};
      },
      [](const Inputs& x) {
        return concat({x[0], x[1], x[2]}, 1) * leaf({2, 6}, 54).detach();
      });
  add_case(
      "index_select_dim0", Op::index_select,
      [] {
        return Inputs{leaf({5, 3}, 55)};
      },
      [](const Inputs& x) {
        return index_select(x[0], 0, ids({4, 0, 4, 2}, {4})) * leaf({4, 3}, 56).detach();
      });
  add_case(
      "index_select_dim1", Op::index_select,
      [] {
        return Inputs{transposed_leaf({2, 4}, 57)};
      },
      [](const Inputs& x) {
        return index_select(x[0], 1, ids({3, 3, 1}, {3}));
      });
  add_case(
      "gather", Op::gather,
      [] {
        return Inputs{leaf({3, 4}, 58)};
      },
      [](const Inputs& x) {
        return gather(x[0], 1, ids({0, 0, 3, 1, 2, 1}, {3, 2})) * leaf({3, 2}, 59).detach();
      });
  add_case(
      "cast", Op::cast,
      [] {
        return Inputs{leaf({2, 3}, 60, DType::float32)};
      },
      // linear after the cast, so a float32 step of any size differences exactly
      [](const Inputs& x) {
        return to_dtype(x[0], DType::float64) * leaf({2, 3}, 61).detach();
      },
      GradcheckOptions{1e-2, 1e-6, 1e-5});

  // ---- matmul: 2-D, batched with broadcasting, 3-D @ 2-D (folded), transposed operands, 1-D
  // ---- linear: with and without bias, 3-D rows, a transposed input and a transposed weight
  add_case(
      "linear_bias_3d", Op::linear,
      [] {
        return Inputs{leaf({2, 3, 4}, 90), leaf({5, 4}, 91), leaf({5}, 92)};
      },
      [](const Inputs& x) { return linear(x[0], x[1], x[2]); });
  add_case(
      "linear_no_bias", Op::linear,
      [] {
        return Inputs{leaf({3, 4}, 93), leaf({2, 4}, 94)};
      },
      [](const Inputs& x) { return linear(x[0], x[1]); });
  add_case(
      "linear_transposed", Op::linear,
      [] {
        return Inputs{transposed_leaf({3, 4}, 95), transposed_leaf({5, 4}, 96), leaf({5}, 97)};
      },
      [](const Inputs& x) { return linear(x[0], x[1], x[2]); });
  add_case(
      "matmul_2d", Op::matmul,
      [] {
        return Inputs{leaf({3, 4}, 62), leaf({4, 2}, 63)};
      },
      [](const Inputs& x) { return matmul(x[0], x[1]); });
  add_case(
      "matmul_transposed", Op::matmul,
      [] {
        return Inputs{transposed_leaf({3, 4}, 64), transposed_leaf({4, 2}, 65)};
      },
      [](const Inputs& x) { return matmul(x[0], x[1]); });
  add_case(
      "matmul_batched_broadcast", Op::matmul,
      [] {
        return Inputs{leaf({2, 1, 3, 4}, 66), leaf({3, 4, 2}, 67)};
      },
      [](const Inputs& x) { return matmul(x[0], x[1]); });
  add_case(
      "matmul_3d_2d", Op::matmul,
      [] {
        return Inputs{leaf({2, 3, 4}, 68), leaf({4, 5}, 69)};
      },
      [](const Inputs& x) { return matmul(x[0], x[1]); });
  add_case(
      "matmul_2d_3d", Op::matmul,
      [] {
        return Inputs{leaf({3, 4}, 70), transposed_leaf({2, 4, 2}, 71)};
      },
      [](const Inputs& x) { return matmul(x[0], x[1]); });
  add_case(
      "matmul_vectors", Op::matmul,
      [] {
        return Inputs{leaf({4}, 72), leaf({4, 3}, 73), leaf({3}, 74)};
      },
      [](const Inputs& x) { return matmul(matmul(x[0], x[1]), x[2]) + matmul(x[1], x[2]).sum(); });
  add_case(
      "matmul_float32", Op::matmul,
      [] {
        return Inputs{leaf({2, 5, 6}, 75, DType::float32), leaf({6, 3}, 76, DType::float32)};
      },
      [](const Inputs& x) { return matmul(x[0], x[1]); }, kFloat32);

  // ---- fused nn ops
  add_case(
      "softmax_last", Op::softmax,
      [] {
        return Inputs{leaf({3, 9}, 77)};
      },
      [](const Inputs& x) { return softmax(x[0], -1); });
  add_case(
      "softmax_middle", Op::softmax,
      [] {
        return Inputs{transposed_leaf({2, 4, 3}, 78)};
      },
      [](const Inputs& x) { return softmax(x[0], 1); });
  add_case(
      "softmax_float32", Op::softmax,
      [] {
        return Inputs{leaf({2, 19}, 79, DType::float32)};
      },
      [](const Inputs& x) { return softmax(x[0], -1); }, kFloat32);
  add_case(
      "log_softmax_last", Op::log_softmax,
      [] {
        return Inputs{leaf({3, 10}, 80)};
      },
      [](const Inputs& x) { return log_softmax(x[0], -1); });
  add_case(
      "log_softmax_first", Op::log_softmax,
      [] {
        return Inputs{leaf({4, 3}, 81)};
      },
      [](const Inputs& x) { return log_softmax(x[0], 0); });
  add_case(
      "layer_norm_affine", Op::layer_norm,
      [] {
        return Inputs{leaf({2, 3, 5}, 82), leaf({5}, 83), leaf({5}, 84)};
      },
      [](const Inputs& x) { return layer_norm(x[0], {5}, x[1], x[2]); });
  add_case(
      "layer_norm_two_dims", Op::layer_norm,
      [] {
        return Inputs{transposed_leaf({2, 4, 3}, 85), leaf({4, 3}, 86), leaf({4, 3}, 87)};
      },
      [](const Inputs& x) {
        return layer_norm(x[0], {4, 3}, x[1], x[2], 1e-3);
      });
  add_case(
      "layer_norm_plain", Op::layer_norm,
      [] {
        return Inputs{leaf({3, 6}, 88)};
      },
      [](const Inputs& x) { return layer_norm(x[0], {6}, Tensor(), Tensor()); });
  add_case(
      "layer_norm_float32", Op::layer_norm,
      [] {
        return Inputs{leaf({3, 8}, 89, DType::float32), leaf({8}, 90, DType::float32), leaf({8}, 91, DType::float32)};
      },
      [](const Inputs& x) { return layer_norm(x[0], {8}, x[1], x[2]); }, kFloat32);
  add_case(
      "dropout", Op::dropout,
      [] {
        return Inputs{leaf({4, 6}, 92)};
      },
      [](const Inputs& x) {
        Generator g(7);  // the same mask on every call
        return dropout(x[0], 0.3, true, g);
      });
  add_case(
      "cross_entropy_mean_smoothing_ignore", Op::cross_entropy,
      [] {
        return Inputs{leaf({5, 4}, 93)};
      },
      [](const Inputs& x) {
        return cross_entropy(x[0], ids({1, 3, -100, 0, 2}, {5}), {-100, 0.1, Reduction::mean});
      });
  add_case(
      "cross_entropy_sum", Op::cross_entropy,
      [] {
        return Inputs{transposed_leaf({3, 6}, 94)};
      },
      [](const Inputs& x) {
        return cross_entropy(x[0], ids({5, 0, 2}, {3}), {-100, 0.0, Reduction::sum});
      });
  add_case(
      "cross_entropy_none", Op::cross_entropy,
      [] {
        return Inputs{leaf({4, 3}, 95)};
      },
      [](const Inputs& x) {
        return cross_entropy(x[0], ids({2, 1, 0, 1}, {4}), {1, 0.2, Reduction::none});
      });
  add_case(
      "cross_entropy_1d", Op::cross_entropy, [] { return Inputs{leaf({7}, 96)}; },
      [](const Inputs& x) { return cross_entropy(x[0], ids({4}, {})); });
  add_case(
      "cross_entropy_float32", Op::cross_entropy,
      [] {
        return Inputs{leaf({4, 13}, 97, DType::float32)};
      },
      [](const Inputs& x) {
        return cross_entropy(x[0], ids({12, 0, 5, 7}, {4}), {-100, 0.1, Reduction::mean});
      },
      kFloat32);
  add_case(
      "mse_loss_mean", Op::mse_loss,
      [] {
        return Inputs{leaf({3, 4}, 98), transposed_leaf({3, 4}, 99)};
      },
      [](const Inputs& x) { return mse_loss(x[0], x[1]); });
  add_case(
      "mse_loss_sum_none", Op::mse_loss,
      [] {
        return Inputs{leaf({2, 3}, 100), leaf({2, 3}, 101)};
      },
      [](const Inputs& x) { return mse_loss(x[0], x[1], Reduction::sum) + mse_loss(x[0], x[1], Reduction::none); });

  // ---- attention: grouped heads, every mask kind, a query with no key left, strided heads
  const auto masks = [] {
    AttentionMask m;
    m.causal = true;
    m.key_padding_mask = gt(ids({0, 0, 0, 1, 0, 1, 1, 1}, {2, 4}), ids({0}, {1}));  // batch 1 keeps key 0 only
    m.bias = leaf({3, 4}, 102).detach();
    return m;
  };
  add_case(
      "attention_gqa_masks", Op::attention,
      [] {
        return Inputs{leaf({2, 4, 3, 5}, 103), leaf({2, 2, 4, 5}, 104), leaf({2, 2, 4, 3}, 105)};
      },
      [masks](const Inputs& x) { return attention(x[0], x[1], x[2], masks()); });
  add_case(
      "attention_blocked_row_and_strided_q", Op::attention,
      [] {
        return Inputs{transposed_leaf({1, 2, 3, 4}, 106), leaf({1, 1, 5, 4}, 107), leaf({1, 1, 5, 2}, 108)};
      },
      [](const Inputs& x) {
        AttentionMask m;  // query 1 sees no key: its output and gradient are zero
        m.blocked = gt(ids({0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0}, {3, 5}), ids({0}, {1}));
        return attention(x[0], x[1], x[2], m, 0.7);
      });
  add_case(
      "attention_dropout", Op::attention,
      [] {
        return Inputs{leaf({1, 2, 3, 4}, 109), leaf({1, 2, 5, 4}, 110), leaf({1, 2, 5, 4}, 111)};
      },
      [](const Inputs& x) {
        Generator g(11);  // the same dropped weights on every call
        return attention(x[0], x[1], x[2], {}, std::nullopt, 0.4, &g);
      });
  add_case(
      "attention_float32", Op::attention,
      [] {
        return Inputs{leaf({2, 2, 4, 8}, 112, DType::float32), leaf({2, 2, 4, 8}, 113, DType::float32),
                      leaf({2, 2, 4, 8}, 114, DType::float32)};
      },
      [](const Inputs& x) {
        return attention(x[0], x[1], x[2], AttentionMask{true, {}, {}, {}});
      },
      kFloat32);
  // ---- flash_attention: tiles of 2 x 3 over 5 x 7, causal at an offset, padding, grouped heads
  add_case(
      "flash_attention_gqa_causal_padding", Op::flash_attention,
      [] {
        return Inputs{leaf({2, 4, 5, 3}, 120), leaf({2, 2, 7, 3}, 121), leaf({2, 2, 7, 2}, 122)};
      },
      [](const Inputs& x) {
        AttentionMask m;
        m.causal = true;  // query i sees keys j <= i + 2
        m.key_padding_mask = gt(ids({0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0, 1, 1}, {2, 7}), ids({0}, {1}));
        return flash_attention(x[0], x[1], x[2], m, std::nullopt, {2, 3});
      });
  add_case(
      "flash_attention_strided_q_float32", Op::flash_attention,
      [] {
        return Inputs{leaf({1, 2, 6, 4}, 123, DType::float32), leaf({1, 1, 6, 4}, 124, DType::float32),
                      leaf({1, 1, 6, 4}, 125, DType::float32)};
      },
      [](const Inputs& x) {
        return flash_attention(x[0], x[1], x[2], AttentionMask{true, {}, {}, {}}, 0.8, {4, 4});
      },
      kFloat32);
  add_case(
      "attention_weights_mqa_masks", Op::attention_weights,
      [] {
        return Inputs{leaf({2, 3, 3, 4}, 115), leaf({2, 1, 4, 4}, 116)};
      },
      [masks](const Inputs& x) { return attention_weights(x[0], x[1], masks()); });
  add_case(
      "attention_weights_strided_k", Op::attention_weights,
      [] {
        return Inputs{leaf({1, 2, 2, 3}, 117), transposed_leaf({1, 2, 4, 3}, 118)};
      },
      [](const Inputs& x) { return attention_weights(x[0], x[1], {}, 0.5); });

  // ---- image ops: patches of a permuted (non-contiguous) image; bicubic up, down, non-square
  add_case(
      "patchify", Op::patchify,
      [] {
        return Inputs{leaf({2, 4, 6, 3}, 121).permute({0, 3, 1, 2}).detach().requires_grad_()};
      },
      [](const Inputs& x) { return patchify(x[0], 2); });
  add_case(
      "interpolate_bicubic_up", Op::interpolate_bicubic,
      [] {
        return Inputs{leaf({1, 2, 3, 4}, 122)};
      },
      [](const Inputs& x) { return interpolate_bicubic(x[0], 5, 7); });
  add_case(
      "interpolate_bicubic_down_nonsquare", Op::interpolate_bicubic,
      [] {
        return Inputs{transposed_leaf({2, 1, 5, 6}, 123)};
      },
      [](const Inputs& x) { return interpolate_bicubic(x[0], 2, 3); });
  add_case(
      "interpolate_bicubic_align_corners", Op::interpolate_bicubic,
      [] {
        return Inputs{leaf({1, 1, 4, 3}, 124)};
      },
      [](const Inputs& x) { return interpolate_bicubic(x[0], 6, 1, true); });
  add_case(
      "patchify_odd_nonsquare", Op::patchify,
      [] {
        return Inputs{leaf({1, 2, 6, 9}, 125)};
      },
      [](const Inputs& x) { return patchify(x[0], 3); });
  add_case(
      "interpolate_bicubic_align_corners_down_permuted", Op::interpolate_bicubic,
      [] {
        return Inputs{leaf({1, 6, 5, 2}, 126).permute({0, 3, 1, 2}).detach().requires_grad_()};
      },
      [](const Inputs& x) { return interpolate_bicubic(x[0], 4, 3, true); });
  add_case(
      "interpolate_bicubic_up_align_corners", Op::interpolate_bicubic,
      [] {
        return Inputs{leaf({2, 1, 3, 3}, 127)};
      },
      [](const Inputs& x) { return interpolate_bicubic(x[0], 5, 6, true); });

  // ---- rotary embedding: all features from position 0; part of them, at an offset, base 100, of
  // a permuted (non-contiguous) input
  add_case(
      "rope", Op::rope,
      [] {
        return Inputs{leaf({2, 3, 5, 8}, 131)};
      },
      [](const Inputs& x) { return rope(x[0]); });
  add_case(
      "rope_partial_offset_permuted", Op::rope,
      [] {
        return Inputs{leaf({2, 6, 3, 5}, 132).permute({0, 2, 1, 3}).detach().requires_grad_()};
      },
      [](const Inputs& x) { return rope(x[0], 7, 100.0, 2); });

  // ---- embedding: repeated ids add up. padding_idx's row gets no gradient by definition, though
  // the output reads it, so its positions are zeroed here for the finite differences to agree.
  add_case(
      "embedding", Op::embedding,
      [] {
        return Inputs{transposed_leaf({6, 3}, 119)};
      },
      [](const Inputs& x) {
        return embedding(x[0], ids({1, 2, 4, 1, 5, 3}, {2, 3}));
      });
  add_case(
      "embedding_padding", Op::embedding,
      [] {
        return Inputs{leaf({6, 3}, 120)};
      },
      [](const Inputs& x) {
        const Tensor tokens = ids({1, 0, 4, 1, 5, 0}, {2, 3});
        const Tensor real = to_dtype(unsqueeze(ne(tokens, ids({0}, {1})), -1), DType::float64);
        return embedding(x[0], tokens, 0) * real;
      });

  // ---- convolution: padding, stride, dilation and groups together, on a permuted image; the 1x1
  // kernel that reads its input directly; enough images for the parallel blocks (and uneven ones);
  // float32 through the BLAS
  add_case(
      "conv2d_stride_pad_dilation_groups", Op::conv2d,
      [] {
        return Inputs{leaf({2, 7, 6, 4}, 141).permute({0, 3, 1, 2}).detach().requires_grad_(), leaf({6, 2, 3, 2}, 142),
                      leaf({6}, 143)};
      },
      [](const Inputs& x) {
        Conv2dOptions o;
        o.stride = {2, 1}, o.padding = {1, 2}, o.dilation = {1, 2}, o.groups = 2;
        return conv2d(x[0], x[1], x[2], o);
      });
  add_case(
      "conv2d_1x1", Op::conv2d,
      [] {
        return Inputs{leaf({2, 3, 4, 5}, 144), leaf({4, 3, 1, 1}, 145)};
      },
      [](const Inputs& x) { return conv2d(x[0], x[1]); });
  add_case(
      "conv2d_many_images", Op::conv2d,
      [] {
        return Inputs{leaf({9, 2, 5, 5}, 146), leaf({3, 2, 3, 3}, 147), leaf({3}, 148)};
      },
      [](const Inputs& x) {
        Conv2dOptions o;
        o.padding = {1, 1};
        return conv2d(x[0], x[1], x[2], o);
      });
  add_case(
      "conv2d_same_dilated", Op::conv2d,
      [] {
        return Inputs{leaf({2, 2, 5, 6}, 152), leaf({3, 2, 3, 3}, 153), leaf({3}, 154)};
      },
      [](const Inputs& x) {
        Conv2dOptions o;
        o.padding = {2, 2}, o.dilation = {2, 2};
        return conv2d(x[0], x[1], x[2], o);
      });
  add_case(  // stride 1, 16 channels a group: the input gradient is a convolution of gy (flipped kernel)
      "conv2d_stride1_groups_uneven", Op::conv2d,
      [] {
        return Inputs{leaf({2, 32, 5, 6}, 155), leaf({6, 16, 3, 2}, 156), leaf({6}, 157)};
      },
      [](const Inputs& x) {
        Conv2dOptions o;
        o.padding = {1, 0}, o.dilation = {1, 2}, o.groups = 2;
        return conv2d(x[0], x[1], x[2], o);
      });
  add_case(
      "conv2d_float32", Op::conv2d,
      [] {
        return Inputs{leaf({2, 3, 6, 6}, 149, DType::float32), leaf({4, 3, 3, 3}, 150, DType::float32),
                      leaf({4}, 151, DType::float32)};
      },
      [](const Inputs& x) {
        Conv2dOptions o;
        o.stride = {2, 2}, o.padding = {1, 1};
        return conv2d(x[0], x[1], x[2], o);
      },
      kFloat32);

  // ---- batch norm: training on images (batch statistics, the running ones updated aside) and
  // on (B, C) rows; evaluation by running statistics
  add_case(
      "batch_norm_train", Op::batch_norm,
      [] {
        return Inputs{leaf({3, 4, 2, 3}, 152), leaf({4}, 153), leaf({4}, 154)};
      },
      [](const Inputs& x) {
        return batch_norm(x[0], zeros({4}, DType::float64), ones({4}, DType::float64), x[1], x[2], true, 0.1, 1e-5);
      });
  add_case(
      "batch_norm_train_rows_no_affine", Op::batch_norm,
      [] {
        return Inputs{transposed_leaf({5, 3}, 155)};
      },
      [](const Inputs& x) { return batch_norm(x[0], {}, {}, {}, {}, true); });
  add_case(
      "batch_norm_eval", Op::batch_norm,
      [] {
        return Inputs{leaf({2, 3, 2, 2}, 156), leaf({3}, 157), leaf({3}, 158)};
      },
      [](const Inputs& x) {
        return batch_norm(x[0], from_vector(std::vector<double>{0.5, -1.0, 0.0}, {3}),
                          from_vector(std::vector<double>{2.0, 0.5, 1.0}, {3}), x[1], x[2], false);
      });

  // ---- pooling: overlapping windows with padding, dilation and ceil_mode; averages with and
  // without the padding counted; adaptive windows that overlap (7 -> 3) and that repeat (2 -> 3)
  add_case(
      "max_pool2d_overlap_pad", Op::max_pool2d,
      [] {
        return Inputs{leaf({2, 2, 5, 6}, 159)};
      },
      [](const Inputs& x) {
        Pool2dOptions o;
        o.kernel_size = {3, 3}, o.stride = {2, 2}, o.padding = {1, 1};
        return max_pool2d(x[0], o);
      });
  add_case(
      "max_pool2d_dilation_ceil_permuted", Op::max_pool2d,
      [] {
        return Inputs{leaf({1, 7, 6, 2}, 160).permute({0, 3, 1, 2}).detach().requires_grad_()};
      },
      [](const Inputs& x) {
        Pool2dOptions o;
        o.kernel_size = {2, 3}, o.stride = {2, 2}, o.dilation = {2, 1}, o.ceil_mode = true;
        return max_pool2d(x[0], o);
      });
  add_case(
      "avg_pool2d_count_pad", Op::avg_pool2d,
      [] {
        return Inputs{leaf({2, 3, 5, 5}, 161)};
      },
      [](const Inputs& x) {
        Pool2dOptions o;
        o.kernel_size = {3, 3}, o.stride = {2, 2}, o.padding = {1, 1}, o.ceil_mode = true;
        return avg_pool2d(x[0], o);
      });
  add_case(
      "avg_pool2d_exclude_pad", Op::avg_pool2d,
      [] {
        return Inputs{leaf({1, 2, 4, 7}, 162)};
      },
      [](const Inputs& x) {
        Pool2dOptions o;
        o.kernel_size = {2, 3}, o.stride = {1, 2}, o.padding = {1, 1}, o.count_include_pad = false;
        return avg_pool2d(x[0], o);
      });
  add_case(
      "adaptive_avg_pool2d", Op::adaptive_avg_pool2d,
      [] {
        return Inputs{transposed_leaf({2, 2, 2, 7}, 163)};
      },
      [](const Inputs& x) { return adaptive_avg_pool2d(x[0], 3, 3); });
  return c;
}

class GradCheckOps : public ::testing::TestWithParam<GradCase> {};

TEST_P(GradCheckOps, MatchesFiniteDifferences) {
  const GradCase& c = GetParam();
  const Inputs inputs = c.make_inputs();
  EXPECT_GRADIENTS_OK(c.fn, inputs, c.options);
}

INSTANTIATE_TEST_SUITE_P(AllOps, GradCheckOps, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<GradCase>& param_info) { return param_info.param.name; });

TEST(GradCheckCoverage, EveryDifferentiableOpHasACheckThatRecordsIt) {
  // Runs every case again, notes which op each really recorded, and prints each op's worst
  // Jacobian errors over its cases (docs/gradcheck.md, written by scripts/gradcheck_table.sh).
  struct Worst {
    int cases = 0;
    double abs64 = 0, rel64 = 0, abs32 = -1, rel32 = -1;  // -1: no float32 case
  };
  std::map<Op, Worst> verified;
  for (const GradCase& c : all_cases()) {
    reset_recorded_op_counts();
    const Inputs inputs = c.make_inputs();
    const GradcheckResult r = gradcheck(c.fn, inputs, c.options);
    if (recorded_op_counts()[static_cast<std::size_t>(c.op)] == 0) {
      ADD_FAILURE() << "case '" << c.name << "' claims op '" << op_name(c.op) << "' but never records it";
      continue;
    }
    Worst& w = verified[c.op];
    ++w.cases;
    const bool f32 = inputs[0].dtype() == DType::float32;
    for (const auto& in : r.inputs) {
      double& a = f32 ? w.abs32 : w.abs64;
      double& e = f32 ? w.rel32 : w.rel64;
      a = std::max(a, in.max_abs_error);
      e = std::max(e, in.max_rel_error);
    }
  }
  std::printf("%-14s %5s %12s %12s %12s %12s\n", "op", "cases", "f64 abs err", "f64 rel err", "f32 abs err",
              "f32 rel err");
  for (std::size_t i = 0; i < kOpCount; ++i) {
    const Op op = static_cast<Op>(i);
    const Worst& w = verified[op];
    EXPECT_GT(w.cases, 0) << "differentiable op '" << op_name(op) << "' has no gradient check in "
                          << "tests/test_gradcheck.cpp";
    std::printf("%-14s %5d %12.2g %12.2g", op_name(op), w.cases, w.abs64, w.rel64);
    if (w.abs32 >= 0) std::printf(" %12.2g %12.2g", w.abs32, w.rel32);
    std::printf("\n");
  }
}

// The checker itself must catch a wrong gradient, or every check above proves nothing.
TEST(GradCheckHelper, DetectsAWrongGradient) {
  Generator g(1);
  Tensor x = randn({2, 3}, g, DType::float64).requires_grad_();
  // y = x^2 in the forward, but its backward claims dy/dx = x (half the truth).
  auto wrong = [](const Inputs& in) {
    Tensor y = in[0].detach() * in[0].detach();
    record(Op::mul, y, {in[0]}, [x_ = in[0].detach()](const Tensor& gy, Grads& gr) { gr.set(0, gy * x_); });
    return y;
  };
  const GradcheckResult r = gradcheck(wrong, {x});
  EXPECT_FALSE(r.ok);
  ASSERT_EQ(r.inputs.size(), 1u);
  EXPECT_GT(r.inputs[0].max_abs_error, 0.1);
  EXPECT_EQ(r.inputs[0].failures, 6);  // the diagonal entries of the 6x6 Jacobian
  EXPECT_NE(r.message().find("out of tolerance"), std::string::npos);
}

TEST(GradCheckHelper, ReportsPerInputErrorsAndSkipsConstants) {
  Generator g(2);
  Tensor a = randn({2, 2}, g, DType::float64).requires_grad_();
  Tensor b = randn({2, 2}, g, DType::float64);  // no grad: reported as unchecked
  const GradcheckResult r = gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); }, {a, b});
  EXPECT_TRUE(r.ok) << r.message();
  ASSERT_EQ(r.inputs.size(), 2u);
  EXPECT_TRUE(r.inputs[0].checked);
  EXPECT_FALSE(r.inputs[1].checked);
  EXPECT_LT(r.inputs[0].max_abs_error, 1e-8);
  EXPECT_FALSE(a.grad().defined()) << "gradcheck must leave the inputs' .grad as it found them";
}

TEST(GradCheckHelper, RefusesInputsWithoutGradients) {
  Tensor a = ones({2});
  EXPECT_THROW(gradcheck([](const Inputs& in) { return in[0] * 2.0; }, {a}), std::invalid_argument);
}

}  // namespace
}  // namespace rune
