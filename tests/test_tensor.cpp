// Tensors themselves: creation, shape and stride queries, views sharing buffers, contiguous
// copies, dtypes, the seeded generator, xtensor conversions, in-place updates and the buffer
// bookkeeping (with the caching allocator).
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <set>

#include "autograd/allocator.hpp"
#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/xt.hpp"

namespace rune {
namespace {

using V = std::vector<double>;
V vals(const Tensor& t) { return to_dtype(t, DType::float64).to_vector<double>(); }

TEST(TensorCreation, FilledTensors) {
  const Tensor z = zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.strides(), (Shape{3, 1}));
  EXPECT_EQ(z.dtype(), DType::float32);
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(vals(z), V(6, 0.0));
  EXPECT_EQ(vals(ones({4}, DType::float64)), V(4, 1.0));
  EXPECT_EQ(vals(full({2}, 2.5)), (V{2.5, 2.5}));
  EXPECT_EQ(full({}, 7.0).dim(), 0);
  EXPECT_EQ(full({}, 7.0).numel(), 1);
  EXPECT_EQ(full({}, 7.0).item(), 7.0);
  EXPECT_EQ(zeros({3, 0}).numel(), 0);
  EXPECT_EQ(empty({5}, DType::int64).dtype(), DType::int64);
  const Tensor base = ones({2, 2}, DType::float64);
  EXPECT_EQ(zeros_like(base).dtype(), DType::float64);
  EXPECT_EQ(vals(full_like(base, 3.0)), V(4, 3.0));
}

TEST(TensorCreation, RangesBuffersAndLiterals) {
  EXPECT_EQ(vals(arange(4)), (V{0, 1, 2, 3}));
  EXPECT_EQ(vals(arange(1, 2, 0.25)), (V{1, 1.25, 1.5, 1.75}));
  EXPECT_EQ(vals(arange(5, 0, -2)), (V{5, 3, 1}));
  EXPECT_EQ(arange(3, DType::int64).to_vector<std::int64_t>(), (std::vector<std::int64_t>{0, 1, 2}));
  const float buf[] = {1, 2, 3, 4, 5, 6};
  const Tensor b = from_buffer(buf, {3, 2});
  EXPECT_EQ(vals(b), (V{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(b.size(-1), 2);
  EXPECT_EQ(vals(from_vector(std::vector<double>{1, 2}, {2, 1})), (V{1, 2}));
  const Tensor lit = tensor({{1, 2, 3}, {4, 5, 6}}, DType::float64);
  EXPECT_EQ(lit.shape(), (Shape{2, 3}));
  EXPECT_EQ(lit.dtype(), DType::float64);
  EXPECT_EQ(vals(tensor({1.5, -2})), (V{1.5, -2}));
}

TEST(TensorCreation, SeededRandomTensors) {
  Generator a(7), b(7), c(8);
  const V ra = vals(randn({1000}, a)), rb = vals(randn({1000}, b)), rc = vals(randn({1000}, c));
  EXPECT_EQ(ra, rb);
  EXPECT_NE(ra, rc);
  Generator g(1);
  const V big = vals(randn({100000}, g, DType::float64));
  const double mean = std::accumulate(big.begin(), big.end(), 0.0) / big.size();
  double var = 0;
  for (double v : big) var += (v - mean) * (v - mean) / big.size();
  EXPECT_NEAR(mean, 0.0, 0.02);
  EXPECT_NEAR(std::sqrt(var), 1.0, 0.02);
  const V u = vals(uniform({10000}, -2.0, 3.0, g, DType::float64));
  for (double v : u) EXPECT_TRUE(v >= -2.0 && v < 3.0);
  EXPECT_NEAR(std::accumulate(u.begin(), u.end(), 0.0) / u.size(), 0.5, 0.05);
  const auto ri = randint(-3, 4, {5000}, g).to_vector<std::int64_t>();
  const std::set<std::int64_t> seen(ri.begin(), ri.end());
  EXPECT_EQ(seen, (std::set<std::int64_t>{-3, -2, -1, 0, 1, 2, 3}));
  for (double v : vals(rand({1000}, g))) EXPECT_TRUE(v >= 0.0 && v < 1.0);
}

TEST(TensorCreation, GeneratorStateRoundTrip) {
  Generator g(11);
  (void)g.normal();  // leaves a cached Box-Muller value in the state
  const std::string state = g.state();
  const V first = vals(randn({9}, g, DType::float64));
  Generator h(0);
  h.set_state(state);
  EXPECT_EQ(vals(randn({9}, h, DType::float64)), first);
  EXPECT_THROW(h.set_state("nonsense"), std::invalid_argument);
  manual_seed(5);
  const V d1 = vals(randn({3}));
  manual_seed(5);
  EXPECT_EQ(vals(randn({3})), d1);
}

TEST(TensorViews, ShapeStridesAndContiguity) {
  const Tensor x = arange(24).reshape({2, 3, 4});
  EXPECT_EQ(x.dim(), 3);
  EXPECT_EQ(x.size(-1), 4);
  EXPECT_EQ(x.stride(0), 12);
  EXPECT_TRUE(x.is_contiguous());
  const Tensor t = x.transpose(0, 2);
  EXPECT_EQ(t.shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(t.strides(), (Shape{1, 4, 12}));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_TRUE(t.shares_storage(x));
  const Tensor s = x.slice(2, 1, 3);
  EXPECT_FALSE(s.is_contiguous());
  EXPECT_EQ(s.offset(), 1);
  EXPECT_TRUE(x.slice(0, 1, 2).is_contiguous());  // a whole block
  EXPECT_TRUE(ones({3, 1}).transpose(0, 1).is_contiguous());  // size-1 dims carry any stride
}

TEST(TensorViews, WritesThroughAViewAreSeenByTheBase) {
  Tensor x = zeros({2, 3});
  Tensor col = x.slice(1, 1, 2);  // (2, 1)
  col.fill_(5.0);
  EXPECT_EQ(vals(x), (V{0, 5, 0, 0, 5, 0}));
  Tensor row = x.transpose(0, 1).slice(1, 1, 2);  // x's second row, seen as a column
  row.copy_(tensor({1, 2, 3}).reshape({3, 1}));
  EXPECT_EQ(vals(x), (V{0, 5, 0, 1, 2, 3}));
}

TEST(TensorViews, ContiguousCopiesInRowMajorOrder) {
  const Tensor x = arange(6).reshape({2, 3});
  const Tensor t = x.transpose(0, 1);
  EXPECT_EQ(vals(t), (V{0, 3, 1, 4, 2, 5}));  // to_vector reads in logical order
  const Tensor c = t.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_FALSE(c.shares_storage(x));
  EXPECT_EQ(std::vector<float>(c.data<float>(), c.data<float>() + 6), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_TRUE(x.contiguous().shares_storage(x));  // already contiguous: no copy
  const Tensor cl = x.clone();
  EXPECT_FALSE(cl.shares_storage(x));
  EXPECT_EQ(vals(cl), vals(x));
}

TEST(TensorDtypes, ConversionsItemAndPrinting) {
  const Tensor x = tensor({1.5, -2.25, 0});
  EXPECT_EQ(x.to(DType::float64).dtype(), DType::float64);
  EXPECT_EQ(vals(x.to(DType::float64)), (V{1.5, -2.25, 0}));
  EXPECT_EQ(x.to(DType::int64).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, -2, 0}));
  EXPECT_EQ(vals(x.to(DType::bool_)), (V{1, 1, 0}));
  EXPECT_EQ(tensor({3.5}).item(), 3.5);
  EXPECT_STREQ(dtype_name(DType::bool_), "bool");
  EXPECT_EQ(dtype_size(DType::float64), 8u);
  const std::string s = tensor({{1, 2}, {3, 4}}).to_string();
  EXPECT_NE(s.find("shape=[2,2]"), std::string::npos) << s;
  EXPECT_NE(s.find("dtype=float32"), std::string::npos) << s;
  EXPECT_NE(s.find("[[1, 2],"), std::string::npos) << s;
  Tensor w = ones({2}).requires_grad_();
  EXPECT_NE((w * 2.0).to_string().find("grad_fn=mul"), std::string::npos);
  EXPECT_NE(arange(100).to_string().find("..."), std::string::npos);  // long tensors are elided
}

TEST(TensorDtypes, XtensorRoundTrip) {
  const Tensor x = arange(6, DType::float64).reshape({2, 3}).transpose(0, 1);
  const xt::xarray<double> a = to_xarray<double>(x);
  EXPECT_EQ(a.shape().size(), 2u);
  EXPECT_EQ(a(0, 1), 3.0);
  EXPECT_EQ(a(2, 0), 2.0);
  const Tensor back = from_xarray(xt::xarray<double>(a * 2.0));
  EXPECT_EQ(back.shape(), (Shape{3, 2}));
  EXPECT_EQ(vals(back), (V{0, 6, 2, 8, 4, 10}));
  EXPECT_THROW(to_xarray<float>(x), std::invalid_argument);
}

TEST(TensorInPlace, UpdatesAndTheirGradModeRule) {
  Tensor x = zeros({3});
  x.fill_(2.0).add_(tensor({1, 2, 3}), 0.5).mul_(2.0);
  EXPECT_EQ(vals(x), (V{5, 6, 7}));
  x.add_(tensor({1}));  // broadcast into the destination
  EXPECT_EQ(vals(x), (V{6, 7, 8}));
  EXPECT_THROW(x.add_(ones({2, 3})), std::invalid_argument);  // cannot grow the destination
  Tensor w = ones({2}).requires_grad_();
  EXPECT_THROW(w.fill_(0.0), std::logic_error);
  EXPECT_THROW(w.mul_(2.0), std::logic_error);
  {
    NoGradGuard no_grad;
    w.mul_(3.0);
  }
  EXPECT_EQ(vals(w), (V{3, 3}));
  Tensor ints = zeros({2}, DType::int64);
  ints.copy_(tensor({1.9, 2.1}));
  EXPECT_EQ(ints.to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 2}));
}

TEST(TensorMemory, LiveBytesReturnAndTheCacheReusesBlocks) {
  const std::int64_t before = live_tensor_bytes();
  {
    const Tensor a = zeros({1000});
    EXPECT_EQ(live_tensor_bytes(), before + 4000);
  }
  EXPECT_EQ(live_tensor_bytes(), before);
  // A large block is cached when freed and handed back for the next request of its size.
  const void* first;
  {
    const Tensor big = empty({1 << 20});
    first = big.raw_data();
  }
  EXPECT_GE(cached_buffer_bytes(), 4 << 20);
  {
    const Tensor again = empty({1 << 20});
    EXPECT_EQ(again.raw_data(), first);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(again.raw_data()) % 64, 0u);
  }
  empty_cache();
  EXPECT_EQ(cached_buffer_bytes(), 0);
}

}  // namespace
}  // namespace rune
