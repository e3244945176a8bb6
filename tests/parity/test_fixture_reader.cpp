// The fixture reader itself: datasets come back with their dtype, shape and values (checked
// against each other: linear.h5's output is its input times its weights), bool masks, attributes,
// and errors that name the file and the dataset; and the comparison can fail.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "autograd/ops.hpp"
#include "tests/parity/fixture.hpp"

namespace rune::parity {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no exception";
}

TEST(FixtureReader, ReadsDtypesShapesAndConsistentValues) {
  const Fixture f("linear.h5");
  const Tensor x = f.input("x"), w = f.param("weight"), b = f.param("bias"), y = f.output("y");
  EXPECT_EQ(x.dtype(), DType::float32);
  EXPECT_EQ(x.shape(), (Shape{4, 5, 16}));
  EXPECT_EQ(w.shape(), (Shape{12, 16}));
  EXPECT_EQ(y.dtype(), DType::float64);
  EXPECT_EQ(y.shape(), (Shape{4, 5, 12}));
  EXPECT_EQ(f.param_names(), (std::vector<std::string>{"bias", "weight"}));
  EXPECT_EQ(f.output_names(), std::vector<std::string>{"y"});
  // the file is self-consistent: y = x W^T + b, computed here in float64
  const Tensor want = matmul(to_dtype(x, DType::float64), transpose(to_dtype(w, DType::float64), 0, 1)) +
                      to_dtype(b, DType::float64);
  EXPECT_TRUE(close_to_reference(want, y, 1e-12, "y"));
  EXPECT_EQ(f.input_grad("x").shape(), x.shape());
  EXPECT_EQ(f.loss_weight("y").shape(), y.shape());
  EXPECT_EQ(f.attr_string("torch_version").substr(0, 4), "1.13");
}

TEST(FixtureReader, ReadsBoolMasksIntsAndAttributes) {
  const Fixture f("mha_self.h5");
  const Tensor pad = f.input("key_padding_mask");
  EXPECT_EQ(pad.dtype(), DType::bool_);
  EXPECT_EQ(pad.shape(), (Shape{2, 6}));
  const bool* p = pad.data<bool>();
  for (int j = 0; j < 6; ++j) {
    EXPECT_FALSE(p[j]);
    EXPECT_EQ(p[6 + j], j >= 4) << "batch 1 pads its last two keys";
  }
  EXPECT_EQ(f.attr_int("embed_dim"), 32);
  EXPECT_TRUE(f.has_attr("num_heads"));
  EXPECT_FALSE(f.has_attr("kdim"));
  const Fixture e("embedding.h5");
  EXPECT_EQ(e.input("ids").dtype(), DType::int64);
  EXPECT_EQ(e.input("ids").data<std::int64_t>()[1], 3);
  EXPECT_DOUBLE_EQ(Fixture("layer_norm_noaffine.h5").attr_double("eps"), 1e-6);
}

TEST(FixtureReader, ErrorsNameTheFileAndTheDataset) {
  const std::string missing = error_of([] { Fixture f("no_such_fixture.h5"); });
  EXPECT_NE(missing.find("no_such_fixture.h5"), std::string::npos) << missing;
  const Fixture f("linear.h5");
  const std::string no_dataset = error_of([&] { f.input("z"); });
  EXPECT_NE(no_dataset.find("linear.h5"), std::string::npos) << no_dataset;
  EXPECT_NE(no_dataset.find("inputs/z"), std::string::npos) << no_dataset;
  const std::string no_group = error_of([&] { f.read("nothing/here"); });
  EXPECT_NE(no_group.find("nothing/here"), std::string::npos) << no_group;
  const std::string wrong_type = error_of([&] { f.attr_int("torch_version"); });
  EXPECT_NE(wrong_type.find("torch_version"), std::string::npos) << wrong_type;
  EXPECT_NE(wrong_type.find("not an integer"), std::string::npos) << wrong_type;
}

TEST(FixtureReader, ComparisonFailsOnAWrongValueAShapeOrANaN) {
  const Tensor ref = from_vector(std::vector<double>{1.0, -2.0, 4.0}, {3});
  EXPECT_TRUE(close_to_reference(from_vector(std::vector<double>{1.0, -2.0, 4.00001}, {3}), ref, 1e-5, "close"));
  const auto far = close_to_reference(from_vector(std::vector<double>{1.0, -2.1, 4.0}, {3}), ref, 1e-5, "far");
  EXPECT_FALSE(far);
  EXPECT_NE(std::string(far.message()).find("at [1]"), std::string::npos) << far.message();
  EXPECT_FALSE(close_to_reference(from_vector(std::vector<double>{1.0, -2.0}, {2}), ref, 1e-5, "shape"));
  EXPECT_FALSE(close_to_reference(from_vector(std::vector<double>{1.0, NAN, 4.0}, {3}), ref, 1e-5, "nan"));
  EXPECT_FALSE(close_to_reference(Tensor(), ref, 1e-5, "undefined"));
}

}  // namespace
}  // namespace rune::parity
