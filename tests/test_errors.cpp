// Bad input gets a clear exception that names the op and the shapes, dtypes or index at fault,
// never a crash or silent garbage.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"

namespace rune {
namespace {

// Runs fn, expects an exception of type E whose message contains every fragment.
template <class E>
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& fragments) {
  try {
    fn();
  } catch (const E& e) {
    const std::string what = e.what();
    for (const auto& f : fragments) EXPECT_NE(what.find(f), std::string::npos) << "'" << f << "' not in: " << what;
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type, message: " << e.what();
    return;
  }
  ADD_FAILURE() << "no exception thrown";
}

Tensor ids(std::vector<std::int64_t> v) {
  const auto n = static_cast<std::int64_t>(v.size());
  return from_vector(v, {n});
}

TEST(ErrorsShape, MatmulNamesBothShapesAndTheInnerDims) {
  try {
    matmul(zeros({2, 3}), zeros({4, 5}));
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "matmul: [2,3] @ [4,5]: inner dimensions 3 and 4 differ");
  }
  expect_error<std::invalid_argument>([] { matmul(zeros({2, 3, 4}), zeros({3, 4, 5})); },
                                      {"matmul", "batch", "[2]", "[3]"});
  expect_error<std::invalid_argument>([] { matmul(zeros({}), zeros({3})); }, {"matmul", "at least 1 dim"});
}

TEST(ErrorsShape, BroadcastFailureNamesBothShapes) {
  expect_error<std::invalid_argument>([] { add(zeros({2, 3}), zeros({4})); }, {"add", "[2,3]", "[4]"});
  expect_error<std::invalid_argument>([] { where(zeros({2}, DType::bool_), zeros({3}), zeros({3})); },
                                      {"where", "[2]", "[3]"});
  expect_error<std::invalid_argument>([] { masked_fill(zeros({3}), zeros({2, 3}, DType::bool_), 1.0); },
                                      {"masked_fill", "[2,3]", "[3]"});
}

TEST(ErrorsShape, ReshapeAndView) {
  expect_error<std::invalid_argument>([] { reshape(zeros({2, 3}), {4, 2}); }, {"reshape", "[2,3]", "[4,2]", "6"});
  expect_error<std::invalid_argument>([] { reshape(zeros({2, 3}), {-1, -1}); }, {"reshape", "-1"});
  expect_error<std::invalid_argument>([] { reshape(zeros({2, 3}), {4, -1}); }, {"reshape", "[2,3]"});
  expect_error<std::invalid_argument>([] { view(zeros({2, 3}).transpose(0, 1), {6}); },
                                      {"view", "not contiguous", "reshape"});
}

TEST(ErrorsShape, PermuteTransposeExpandSliceConcatSplit) {
  expect_error<std::invalid_argument>([] { permute(zeros({2, 3}), {0, 0}); }, {"permute", "repeats"});
  expect_error<std::invalid_argument>([] { permute(zeros({2, 3}), {0}); }, {"permute", "rank 2"});
  expect_error<std::out_of_range>([] { transpose(zeros({2, 3}), 0, 2); }, {"transpose", "dim 2", "rank 2"});
  expect_error<std::invalid_argument>([] { expand(zeros({2, 3}), {4, 3}); }, {"expand", "[2,3]", "[4,3]"});
  expect_error<std::invalid_argument>([] { slice(zeros({4}), 0, 0, 4, 0); }, {"slice", "step"});
  expect_error<std::invalid_argument>([] { concat({zeros({2, 3}), zeros({3, 3})}, 1); },
                                      {"concat", "tensor 1", "[3,3]", "[2,3]"});
  expect_error<std::invalid_argument>([] { concat({zeros({2}), zeros({2}, DType::float64)}); },
                                      {"concat", "float64", "float32"});
  expect_error<std::invalid_argument>([] { split(zeros({5}), std::vector<std::int64_t>{2, 2}); },
                                      {"split", "4", "5"});
}

TEST(ErrorsIndex, OutOfRangeIndicesNameTheIndexAndTheSize) {
  expect_error<std::out_of_range>([] { index_select(zeros({5, 2}), 0, ids({1, 7})); },
                                  {"index_select", "index 7", "size 5"});
  expect_error<std::out_of_range>([] { index_select(zeros({5, 2}), 0, ids({-1})); }, {"index_select", "index -1"});
  expect_error<std::out_of_range>([] { gather(zeros({2, 3}), 1, from_vector(std::vector<std::int64_t>{0, 3}, {2, 1})); },
                                  {"gather", "index 3", "size 3"});
  expect_error<std::out_of_range>([] { cross_entropy(zeros({2, 4}), ids({1, 4})); },
                                  {"cross_entropy", "target 4", "position 1", "4 classes"});
  expect_error<std::out_of_range>([] { sum(zeros({2, 3}), {2}); }, {"sum", "dim 2"});
}

TEST(ErrorsDtype, MismatchedAndWrongDtypes) {
  expect_error<std::invalid_argument>([] { add(zeros({2}), zeros({2}, DType::float64)); },
                                      {"add", "float32", "float64"});
  expect_error<std::invalid_argument>([] { exp(zeros({2}, DType::int64)); }, {"exp", "int64"});
  expect_error<std::invalid_argument>([] { masked_fill(zeros({2}), zeros({2}), 0.0); }, {"masked_fill", "mask", "bool"});
  expect_error<std::invalid_argument>([] { index_select(zeros({2}), 0, zeros({1})); }, {"index_select", "index", "int64"});
  expect_error<std::invalid_argument>([] { cross_entropy(zeros({2, 3}), zeros({2})); }, {"cross_entropy", "target", "int64"});
  expect_error<std::invalid_argument>([] { zeros({2}).data<double>(); }, {"float32"});
}

TEST(ErrorsAutograd, BackwardMisuse) {
  expect_error<std::logic_error>(
      [] {
        Tensor x = ones({2, 3}).requires_grad_();
        (x * 2.0).backward();
      },
      {"backward", "[2,3]", "gradient"});
  expect_error<std::logic_error>([] { ones({1}).backward(); }, {"backward", "does not require grad"});
  expect_error<std::invalid_argument>(
      [] {
        Tensor x = ones({2}).requires_grad_();
        (x * 2.0).backward(ones({3}));
      },
      {"backward", "[3]", "[2]"});
  expect_error<std::logic_error>(
      [] {
        Tensor x = ones({2}).requires_grad_();
        Tensor y = sum(exp(x));
        y.backward();
        y.backward();
      },
      {"backward", "already freed", "retain_graph"});
  expect_error<std::logic_error>(
      [] {
        Tensor x = ones({2}).requires_grad_();
        (x * 2.0).requires_grad_();
      },
      {"requires_grad_", "leaf", "mul"});
  expect_error<std::logic_error>(
      [] {
        Tensor x = ones({2}).requires_grad_();
        x.add_(ones({2}));
      },
      {"add_", "NoGradGuard"});
}

TEST(ErrorsValues, ItemLayerNormDropoutCrossEntropyShapes) {
  expect_error<std::invalid_argument>([] { zeros({2, 2}).item(); }, {"item", "[2,2]", "4 elements"});
  expect_error<std::invalid_argument>([] { layer_norm(zeros({2, 5}), {4}, Tensor(), Tensor()); },
                                      {"layer_norm", "[4]", "[2,5]"});
  expect_error<std::invalid_argument>([] { layer_norm(zeros({2, 4}), {4}, zeros({3}), Tensor()); },
                                      {"layer_norm", "weight", "[3]", "[4]"});
  expect_error<std::invalid_argument>([] { dropout(zeros({2}), 1.5, true); }, {"dropout", "[0, 1]"});
  expect_error<std::invalid_argument>([] { dropout(zeros({2}), -0.1, true); }, {"dropout"});
  expect_error<std::invalid_argument>([] { cross_entropy(zeros({2, 3, 4}), ids({0, 1})); },
                                      {"cross_entropy", "[2,3,4]", "flatten"});
  expect_error<std::invalid_argument>([] { mse_loss(zeros({2}), zeros({3})); }, {"mse_loss", "[2]", "[3]"});
  expect_error<std::invalid_argument>([] { randint(3, 3, {2}, default_generator()); }, {"randint"});
  expect_error<std::invalid_argument>([] { from_vector(std::vector<float>{1, 2, 3}, {2, 2}); },
                                      {"from_vector", "3", "[2,2]"});
  expect_error<std::logic_error>([] { Tensor().shape(); }, {"undefined"});
}

}  // namespace
}  // namespace rune
