// The fixture reader itself, and one worked parity example.
//
// FixtureReader: reader_check.h5 holds values given by formulas (make_fixtures.py's reader_check),
// so every dtype, shape, element order and attribute kind is checked exactly; linear.h5 is read as
// a real fixture and found self-consistent; types outside the layout, missing files, datasets and
// attributes throw naming the file and the dataset or key; the comparison fails when it should.
// ParityLinear: nn.Linear rebuilt from plain rune ops (y = x W^T + b) against PyTorch, outputs and
// the gradients of x, W and b: the whole path script -> HDF5 -> reader -> comparison, before any
// module is involved. The module tests (test_parity_nn.cpp) follow the same steps.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.hpp"
#include "tests/helpers.hpp"
#include "tests/parity/fixture.hpp"

namespace rune::parity {
namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ------------------------------------------------------------------------- the reader

TEST(FixtureReader, ReadsEveryDtypeWithItsShapeAndExactValues) {
  const Fixture f("reader_check.h5");
  const Tensor f32 = f.input("f32");  // i/2 - 3 at row-major index i
  ASSERT_EQ(f32.dtype(), DType::float32);
  ASSERT_EQ(f32.shape(), (Shape{2, 3, 4}));
  for (int i = 0; i < 24; ++i) EXPECT_EQ(f32.data<float>()[i], i * 0.5f - 3.0f) << i;
  const Tensor f64 = f.input("f64");  // i/3
  ASSERT_EQ(f64.dtype(), DType::float64);
  ASSERT_EQ(f64.shape(), (Shape{3, 2}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(f64.data<double>()[i], i / 3.0) << i;
  const Tensor i64 = f.input("i64");  // (i - 3) 10^12
  ASSERT_EQ(i64.dtype(), DType::int64);
  ASSERT_EQ(i64.shape(), (Shape{7}));
  for (int i = 0; i < 7; ++i) EXPECT_EQ(i64.data<std::int64_t>()[i], (i - 3) * 1'000'000'000'000LL) << i;
  const Tensor mask = f.input("mask");  // True where i % 3 == 0
  ASSERT_EQ(mask.dtype(), DType::bool_);
  ASSERT_EQ(mask.shape(), (Shape{3, 4}));
  for (int i = 0; i < 12; ++i) EXPECT_EQ(mask.data<bool>()[i], i % 3 == 0) << i;
  const Tensor scalar = f.input("scalar");
  EXPECT_EQ(scalar.shape(), Shape{});
  EXPECT_EQ(scalar.item(), 2.5);
  EXPECT_TRUE(f.has_input("mask"));
  EXPECT_FALSE(f.has_input("absent"));
  EXPECT_TRUE(f.param_names().empty());
  EXPECT_TRUE(f.output_names().empty());
}

TEST(FixtureReader, ReadsAttributesOfEveryKind) {
  const Fixture f("reader_check.h5");
  EXPECT_EQ(f.attr_int("count"), 42);
  EXPECT_EQ(f.attr_double("ratio"), 0.125);
  EXPECT_EQ(f.attr_string("word"), "rune");         // variable-length, as h5py writes a str
  EXPECT_EQ(f.attr_string("fixed_word"), "stone");  // fixed-length
  EXPECT_TRUE(f.has_attr("count"));
  EXPECT_FALSE(f.has_attr("absent"));
  const Fixture ln("layer_norm_noaffine.h5");
  EXPECT_EQ(ln.attr_double("eps"), 1e-6);
  EXPECT_EQ(ln.attr_string("torch_version").substr(0, 5), "1.13.");
}

TEST(FixtureReader, ReadsARealFixtureThatIsSelfConsistent) {
  const Fixture f("linear.h5");
  const Tensor x = f.input("x"), w = f.param("weight"), b = f.param("bias"), y = f.output("y");
  EXPECT_EQ(x.dtype(), DType::float32);
  EXPECT_EQ(x.shape(), (Shape{4, 5, 16}));
  EXPECT_EQ(w.dtype(), DType::float32);
  EXPECT_EQ(w.shape(), (Shape{12, 16}));
  EXPECT_EQ(b.shape(), (Shape{12}));
  EXPECT_EQ(y.dtype(), DType::float64);
  EXPECT_EQ(y.shape(), (Shape{4, 5, 12}));
  EXPECT_EQ(f.param_names(), (std::vector<std::string>{"bias", "weight"}));
  EXPECT_EQ(f.output_names(), std::vector<std::string>{"y"});
  EXPECT_EQ(f.loss_weight("y").shape(), y.shape());
  EXPECT_EQ(f.input_grad("x").shape(), x.shape());
  EXPECT_EQ(f.param_grad("weight").dtype(), DType::float64);
  // the values were read in the order they were written: y = x W^T + b, here in float64
  const Tensor want =
      matmul(to_dtype(x, DType::float64), transpose(to_dtype(w, DType::float64), 0, 1)) + to_dtype(b, DType::float64);
  EXPECT_TRUE(close_to_reference(want, y, 1e-12, "y"));
}

TEST(FixtureReader, ReadsBoolMasksAndIndicesOfModuleFixtures) {
  const Fixture f("mha_self.h5");
  const Tensor pad = f.input("key_padding_mask");
  ASSERT_EQ(pad.dtype(), DType::bool_);
  ASSERT_EQ(pad.shape(), (Shape{2, 6}));
  for (int j = 0; j < 6; ++j) {
    EXPECT_FALSE(pad.data<bool>()[j]);
    EXPECT_EQ(pad.data<bool>()[6 + j], j >= 4) << "batch 1 pads its last two keys";
  }
  EXPECT_EQ(f.attr_int("embed_dim"), 32);
  EXPECT_FALSE(f.has_attr("kdim"));
  const Fixture e("embedding.h5");
  const Tensor ids = e.input("ids");
  ASSERT_EQ(ids.dtype(), DType::int64);
  EXPECT_EQ(ids.to_vector<std::int64_t>()[1], 3);
}

TEST(FixtureReader, TypesOutsideTheLayoutThrowNamingFileAndDataset) {
  const Fixture f("reader_check.h5");
  for (const char* name : {"int32", "uint8", "not_bool"}) {
    const std::string e = error_of([&] { f.input(name); });
    EXPECT_TRUE(contains(e, "reader_check.h5")) << e;
    EXPECT_TRUE(contains(e, std::string("inputs/") + name)) << e;
  }
  EXPECT_TRUE(contains(error_of([&] { f.input("not_bool"); }), "other than 0 and 1"));
  for (const auto& [key, read] : std::vector<std::pair<std::string, std::function<void()>>>{
           {"word", [&] { f.attr_int("word"); }},       // a string, not an int
           {"count", [&] { f.attr_double("count"); }},  // an int, not a float
           {"ratio", [&] { f.attr_string("ratio"); }},
           {"pair", [&] { f.attr_int("pair"); }}}) {  // an array, not a scalar
    const std::string e = error_of(read);
    EXPECT_TRUE(contains(e, "reader_check.h5")) << e;
    EXPECT_TRUE(contains(e, "'" + key + "' is not")) << e;
  }
}

TEST(FixtureReader, MissingThingsThrowNamingFileAndName) {
  const std::string missing = error_of([] { Fixture f("no_such_fixture.h5"); });
  EXPECT_TRUE(contains(missing, std::string(RUNE_PARITY_DIR) + "/no_such_fixture.h5")) << missing;
  const std::string not_hdf5 = error_of([] { Fixture f("../fixture.hpp"); });
  EXPECT_TRUE(contains(not_hdf5, "fixture.hpp")) << not_hdf5;
  EXPECT_TRUE(contains(not_hdf5, "not an HDF5 file")) << not_hdf5;
  const Fixture f("linear.h5");
  for (const auto& [what, read] : std::vector<std::pair<std::string, std::function<void()>>>{
           {"inputs/z", [&] { f.input("z"); }},
           {"params/bias_k", [&] { f.param("bias_k"); }},
           {"outputs/out", [&] { f.output("out"); }},
           {"grads/params/nothing", [&] { f.param_grad("nothing"); }},
           {"nothing/here", [&] { f.read("nothing/here"); }},  // a missing group too
           {"'eps'", [&] { f.attr_double("eps"); }}}) {
    const std::string e = error_of(read);
    EXPECT_TRUE(contains(e, "linear.h5")) << e;
    EXPECT_TRUE(contains(e, what)) << e;
  }
}

TEST(FixtureReader, MovesKeepTheFileOpen) {
  Fixture a("linear.h5");
  Fixture b(std::move(a));
  EXPECT_EQ(b.input("x").shape(), (Shape{4, 5, 16}));
  Fixture c("embedding.h5");
  c = std::move(b);
  EXPECT_TRUE(contains(c.path(), "linear.h5"));
  EXPECT_EQ(c.param("weight").shape(), (Shape{12, 16}));
}

TEST(FixtureReader, ComparisonFailsOnAWrongValueAShapeOrANaN) {
  const Tensor ref = from_vector(std::vector<double>{1.0, -2.0, 4.0, 0.5, 0.0, 3.0}, {2, 3});
  const auto near = from_vector(std::vector<double>{1.0, -2.0, 4.00003, 0.5, 0.0, 3.0}, {2, 3});
  EXPECT_TRUE(close_to_reference(near, ref, 1e-5, "near"));  // 3e-5 against 1e-5 x magnitude 4
  const auto far =
      close_to_reference(from_vector(std::vector<double>{1.0, -2.0, 4.0, 0.5, 0.0, 3.1}, {2, 3}), ref, 1e-5, "far");
  ASSERT_FALSE(far);
  EXPECT_TRUE(contains(far.message(), "far [2,3]: max error")) << far.message();
  EXPECT_TRUE(contains(far.message(), "at [1, 2] (3.1")) << far.message();  // full precision follows
  EXPECT_TRUE(contains(far.message(), "vs reference 3)")) << far.message();
  EXPECT_TRUE(contains(far.message(), "magnitude 4")) << far.message();
  const auto shape =
      close_to_reference(from_vector(std::vector<double>{1.0, -2.0, 4.0, 0.5, 0.0, 3.0}, {3, 2}), ref, 1e-5, "shape");
  ASSERT_FALSE(shape);
  EXPECT_TRUE(contains(shape.message(), "[3,2]")) << shape.message();
  EXPECT_FALSE(
      close_to_reference(from_vector(std::vector<double>{1.0, NAN, 4.0, 0.5, 0.0, 3.0}, {2, 3}), ref, 1e-5, "nan"));
  EXPECT_FALSE(close_to_reference(from_vector(std::vector<double>{1.0, -2.0, INFINITY, 0.5, 0.0, 3.0}, {2, 3}), ref,
                                  1e-5, "inf"));
  EXPECT_FALSE(close_to_reference(Tensor(), ref, 1e-5, "undefined"));
}

// ------------------------------------------------------------------------- the worked example

// nn.Linear from plain ops against the fixture: forward, then backward of the fixture's weighted
// loss, then every gradient. `weight_scale` != 1 runs it with a wrong weight.
struct LinearRun {
  Tensor y, x, weight, bias;  // the output, and the leaves with their gradients
};

LinearRun run_linear(const Fixture& f, double weight_scale = 1.0) {
  LinearRun r;
  r.x = f.input("x").requires_grad_();                                      // (B, T, in)
  r.weight = (f.param("weight") * weight_scale).detach().requires_grad_();  // (out, in)
  r.y = matmul(r.x, transpose(r.weight, 0, 1));                             // (B, T, out)
  if (f.param_names().size() == 2) {
    r.bias = f.param("bias").requires_grad_();  // (out)
    r.y = r.y + r.bias;
  }
  weighted_loss(f, {{"y", r.y}}).backward();
  return r;
}

TEST(ParityLinear, PlainOpsMatchTorchForwardAndGradients) {
  for (const char* file : {"linear.h5", "linear_nobias.h5"}) {
    SCOPED_TRACE(file);
    const Fixture f(file);
    const LinearRun r = run_linear(f);
    EXPECT_TRUE(close_to_reference(r.y, f.output("y"), kOutputTol, "y"));
    EXPECT_TRUE(close_to_reference(r.x.grad(), f.input_grad("x"), kGradTol, "d loss / d x"));
    EXPECT_TRUE(close_to_reference(r.weight.grad(), f.param_grad("weight"), kGradTol, "d loss / d weight"));
    if (r.bias.defined()) {
      EXPECT_TRUE(close_to_reference(r.bias.grad(), f.param_grad("bias"), kGradTol, "d loss / d bias"));
    }
  }
}

TEST(ParityLinear, AWrongModelFails) {
  const Fixture f("linear.h5");
  const LinearRun r = run_linear(f, 1.001);  // every weight 0.1% off
  EXPECT_FALSE(close_to_reference(r.y, f.output("y"), kOutputTol, "y"));
  EXPECT_FALSE(close_to_reference(r.x.grad(), f.input_grad("x"), kGradTol, "d loss / d x"));
  // and so is a forgotten bias
  const Tensor no_bias = matmul(f.input("x"), transpose(f.param("weight"), 0, 1));
  EXPECT_FALSE(close_to_reference(no_bias, f.output("y"), kOutputTol, "y"));
}

}  // namespace
}  // namespace rune::parity
