// The module system (nn/module.hpp), initialisation (nn/init.hpp) and the basic layers: Linear,
// LayerNorm, Embedding, Dropout, GELU and the positional encodings. PyTorch parity of the layers'
// values and gradients is in tests/parity/.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "nn/dropout.hpp"
#include "nn/embedding.hpp"
#include "nn/init.hpp"
#include "nn/layer_norm.hpp"
#include "nn/linear.hpp"
#include "nn/transformer.hpp"
#include "tests/helpers.hpp"

namespace rune {
namespace {

std::vector<std::string> names_of(const nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& [name, t] : m.named_parameters()) out.push_back(name);
  return out;
}

// A small tree: two children, one nested, plus a parameter of its own.
class Tiny : public nn::Module {
 public:
  explicit Tiny(Generator& g) {
    scale = register_parameter("scale", ones({3}));
    first = register_module("first", std::make_shared<nn::Linear>(3, 4, true, g));
    ff = register_module("ff", std::make_shared<nn::FeedForward>(4, 8, 0.5, nn::Activation::gelu, g));
  }
  std::string repr() const override { return "Tiny()"; }
  Tensor scale;
  std::shared_ptr<nn::Linear> first;
  std::shared_ptr<nn::FeedForward> ff;
};

TEST(Module, NamedParametersAreDottedPathsInRegistrationOrder) {
  Generator g(0);
  Tiny m(g);
  EXPECT_EQ(names_of(m), (std::vector<std::string>{"scale", "first.weight", "first.bias", "ff.linear1.weight",
                                                   "ff.linear1.bias", "ff.linear2.weight", "ff.linear2.bias"}));
  EXPECT_EQ(m.num_parameters(), 3 + 12 + 4 + 32 + 8 + 32 + 4);
  EXPECT_EQ(m.parameters().size(), 7u);
  // the registry and the member are one tensor
  EXPECT_EQ(m.parameter("first.weight").impl(), m.first->weight.impl());
  EXPECT_TRUE(m.first->weight.requires_grad());
  EXPECT_THROW(m.parameter("first.nope"), std::out_of_range);
  std::vector<std::string> modules;
  for (const auto& [name, mod] : m.named_modules()) modules.push_back(name);
  EXPECT_EQ(modules, (std::vector<std::string>{"", "first", "ff", "ff.linear1", "ff.dropout", "ff.linear2"}));
}

TEST(Module, TrainAndEvalReachEveryDescendant) {
  Generator g(0);
  Tiny m(g);
  m.eval();
  for (const auto& [name, mod] : m.named_modules()) EXPECT_FALSE(mod->is_training()) << name;
  const Tensor x = randn({5, 4}, g);
  EXPECT_EQ(values(m.ff->forward(x)), values(m.ff->forward(x))) << "dropout must be off in eval mode";
  m.train();
  for (const auto& [name, mod] : m.named_modules()) EXPECT_TRUE(mod->is_training()) << name;
  EXPECT_NE(values(m.ff->forward(x)), values(m.ff->forward(x)));
}

TEST(Module, ZeroGradDropsEveryGradient) {
  Generator g(0);
  Tiny m(g);
  sum(m.ff->forward(m.first->forward(randn({2, 3}, g) * m.scale))).backward();
  for (const Tensor& p : m.parameters()) EXPECT_TRUE(p.grad().defined());
  m.zero_grad(/*set_to_none=*/false);
  for (const Tensor& p : m.parameters()) {
    ASSERT_TRUE(p.grad().defined());
    for (double v : values(p.grad())) EXPECT_EQ(v, 0.0);
  }
  m.zero_grad();
  for (const Tensor& p : m.parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(Module, SummaryListsEveryParameterAndTheTotal) {
  Generator g(0);
  Tiny m(g);
  const std::string s = m.summary();
  EXPECT_NE(s.find("Tiny()"), std::string::npos);
  EXPECT_NE(s.find("ff.linear1.weight"), std::string::npos);
  EXPECT_NE(s.find("[8,4]"), std::string::npos);
  EXPECT_NE(s.find("total"), std::string::npos);
  EXPECT_NE(s.find(std::to_string(m.num_parameters())), std::string::npos);
}

TEST(Module, RegistrationRefusesDuplicatesAndDots) {
  struct Bad : nn::Module {
    std::string repr() const override { return "Bad"; }
    void add(const std::string& n) { register_parameter(n, zeros({1})); }
  } bad;
  bad.add("w");
  EXPECT_THROW(bad.add("w"), std::invalid_argument);
  EXPECT_THROW(bad.add("a.b"), std::invalid_argument);
  EXPECT_THROW(bad.add(""), std::invalid_argument);
}

TEST(Module, LoadStateDictIsStrictAndReportsEveryProblem) {
  Generator g(0), h(1);
  Tiny a(g), b(h);
  // a full, well-shaped state loads exactly
  b.load_state_dict(a.named_parameters());
  for (const auto& [name, t] : a.named_parameters()) EXPECT_EQ(values(b.parameter(name)), values(t)) << name;

  nn::NamedTensors state = a.named_parameters();
  const auto entry = [&](const std::string& name) -> Tensor& {
    for (auto& [n, t] : state)
      if (n == name) return t;
    throw std::logic_error(name);
  };
  state.erase(state.begin() + 1);                  // first.weight missing
  state.emplace_back("extra.weight", zeros({2}));  // unexpected
  entry("scale") = zeros({4});                     // wrong shape
  const std::vector<double> before = values(b.first->bias);
  try {
    b.load_state_dict(state);
    FAIL() << "strict load accepted a bad state";
  } catch (const std::invalid_argument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("missing: first.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("unexpected: extra.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("scale: [4] given, [3] expected"), std::string::npos) << m;
  }
  // nothing was copied by the refused load
  Tiny c(h);
  EXPECT_EQ(values(b.first->bias), before);
  // non-strict loads what matches and lists the rest
  entry("first.bias") = full({4}, 7.0);
  const nn::LoadReport r = c.load_state_dict(state, /*strict=*/false);
  EXPECT_EQ(r.missing, std::vector<std::string>{"first.weight"});
  EXPECT_EQ(r.unexpected, std::vector<std::string>{"extra.weight"});
  EXPECT_EQ(r.mismatched.size(), 1u);
  EXPECT_EQ(values(c.first->bias), std::vector<double>(4, 7.0));
}

// ------------------------------------------------------------------------- init

TEST(Init, FansGainsAndBoundsFollowTorch) {
  EXPECT_EQ(nn::init::calculate_fan_in_and_fan_out(zeros({8, 3, 4, 4})),
            (std::pair<std::int64_t, std::int64_t>{48, 128}));
  EXPECT_THROW(nn::init::calculate_fan_in_and_fan_out(zeros({5})), std::invalid_argument);
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain(nn::init::Nonlinearity::relu), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain(nn::init::Nonlinearity::leaky_relu, std::sqrt(5.0)), std::sqrt(1.0 / 3.0));
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain(nn::init::Nonlinearity::tanh), 5.0 / 3.0);

  // Linear(in=100): weight and bias within 1/sqrt(100) and spread over it
  Generator g(3);
  const nn::Linear lin(100, 50, true, g);
  for (const Tensor& t : {lin.weight, lin.bias}) {
    const std::vector<double> v = values(t);
    double lo = 1, hi = -1;
    for (double x : v) lo = std::min(lo, x), hi = std::max(hi, x);
    EXPECT_GE(lo, -0.1);
    EXPECT_LE(hi, 0.1);
    EXPECT_LT(lo, -0.09);
    EXPECT_GT(hi, 0.09);
  }
}

TEST(Init, DistributionsHaveTheirMoments) {
  Generator g(4);
  Tensor t = empty({200, 300});
  const auto moments = [&] {
    const std::vector<double> v = values(t);
    double m = 0, s = 0;
    for (double x : v) m += x;
    m /= static_cast<double>(v.size());
    for (double x : v) s += (x - m) * (x - m);
    return std::pair<double, double>{m, std::sqrt(s / static_cast<double>(v.size()))};
  };
  nn::init::xavier_uniform_(t, 1.0, g);  // U(-a, a), a = sqrt(6/500): std a/sqrt(3)
  EXPECT_NEAR(moments().second, std::sqrt(6.0 / 500) / std::sqrt(3.0), 2e-3);
  nn::init::kaiming_normal_(t, 0.0, nn::init::FanMode::fan_in, nn::init::Nonlinearity::relu, g);
  EXPECT_NEAR(moments().second, std::sqrt(2.0 / 300), 2e-3);
  nn::init::normal_(t, 1.5, 2.0, g);
  EXPECT_NEAR(moments().first, 1.5, 0.02);
  EXPECT_NEAR(moments().second, 2.0, 0.02);
  nn::init::trunc_normal_(t, 0.0, 1.0, -0.5, 0.5, g);
  for (double x : values(t)) ASSERT_TRUE(x >= -0.5 && x <= 0.5);
  // the same seed gives the same model
  Generator a(9), b(9);
  EXPECT_EQ(values(nn::Linear(7, 5, true, a).weight), values(nn::Linear(7, 5, true, b).weight));
}

// ------------------------------------------------------------------------- layers

TEST(Layers, LinearWithoutBiasAndShapeErrors) {
  Generator g(5);
  const nn::Linear lin(6, 4, false, g);
  EXPECT_EQ(names_of(lin), std::vector<std::string>{"weight"});
  const Tensor x = randn({2, 3, 6}, g);
  EXPECT_EQ(lin.forward(x).shape(), (Shape{2, 3, 4}));
  try {
    lin.forward(randn({2, 5}, g));
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[2,5] does not fit weight [4,6]"), std::string::npos) << e.what();
  }
}

TEST(Layers, LayerNormInitAndNoAffine) {
  const nn::LayerNorm ln(8);
  EXPECT_EQ(values(ln.weight), std::vector<double>(8, 1.0));
  EXPECT_EQ(values(ln.bias), std::vector<double>(8, 0.0));
  const nn::LayerNorm plain(8, 1e-6, false);
  EXPECT_TRUE(plain.named_parameters().empty());
  Generator g(6);
  const std::vector<double> y = values(plain.forward(randn({1, 8}, g) * 3.0 + 2.0));
  double m = 0, v = 0;
  for (double x : y) m += x / 8;
  for (double x : y) v += (x - m) * (x - m) / 8;
  EXPECT_NEAR(m, 0.0, 1e-6);
  EXPECT_NEAR(v, 1.0, 1e-4);
  EXPECT_THROW(plain.forward(zeros({2, 7})), std::invalid_argument);
}

TEST(Layers, EmbeddingPaddingRowStartsAtZeroAndGetsNoGradient) {
  Generator g(7);
  nn::Embedding emb(10, 4, 0, g);
  EXPECT_EQ(values(slice(emb.weight, 0, 0, 1)), std::vector<double>(4, 0.0));
  const Tensor ids = from_vector(std::vector<std::int64_t>{0, 3, 3, 0, 9}, {5});
  const Tensor y = emb.forward(ids);
  EXPECT_EQ(y.shape(), (Shape{5, 4}));
  EXPECT_EQ(values(slice(y, 0, 1, 2)), values(slice(emb.weight, 0, 3, 4)));
  sum(y * 2.0).backward();
  const std::vector<double> gw = values(emb.weight.grad());
  for (int j = 0; j < 4; ++j) {
    EXPECT_EQ(gw[0 * 4 + j], 0.0) << "padding_idx row";
    EXPECT_EQ(gw[3 * 4 + j], 4.0) << "id 3 appears twice";
    EXPECT_EQ(gw[9 * 4 + j], 2.0);
    EXPECT_EQ(gw[1 * 4 + j], 0.0);
  }
  EXPECT_THROW(emb.forward(from_vector(std::vector<std::int64_t>{10}, {1})), std::out_of_range);
  EXPECT_THROW(nn::Embedding(10, 4, 10), std::invalid_argument);
}

TEST(Layers, SinusoidalEncodingFollowsVaswani) {
  const nn::SinusoidalPositionalEncoding pe(6, 50);
  EXPECT_TRUE(pe.named_parameters().empty()) << "a buffer, not a parameter";
  const std::vector<double> table = values(pe.pe);
  for (int t : {0, 1, 17, 49})
    for (int i = 0; i < 6; ++i) {
      const double angle = t / std::pow(10000.0, (i - i % 2) / 6.0);
      EXPECT_NEAR(table[t * 6 + i], i % 2 ? std::cos(angle) : std::sin(angle), 1e-6) << t << " " << i;
    }
  // forward adds rows [start, start + T) to every batch entry
  const Tensor x = zeros({2, 3, 6});
  const std::vector<double> y = values(pe.forward(x, 4));
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 3; ++t)
      for (int i = 0; i < 6; ++i) EXPECT_EQ(y[(b * 3 + t) * 6 + i], table[(4 + t) * 6 + i]);
  EXPECT_THROW(pe.forward(zeros({1, 3, 6}), 48), std::out_of_range);
}

TEST(Layers, LearnedPositionalEmbeddingIsTrained) {
  Generator g(8);
  const nn::LearnedPositionalEmbedding pe(16, 4, g);
  EXPECT_EQ(names_of(pe), std::vector<std::string>{"weight"});
  sum(pe.forward(zeros({3, 5, 4}), 2)).backward();
  const std::vector<double> gw = values(pe.weight.grad());
  for (int t = 0; t < 16; ++t) EXPECT_EQ(gw[t * 4], (t >= 2 && t < 7) ? 3.0 : 0.0) << t;
}

TEST(Layers, DropoutScalesKeptValuesAndIsIdentityInEval) {
  Generator g(9);
  nn::Dropout drop(0.25, &g);
  const Tensor x = ones({10000});
  const std::vector<double> y = values(drop.forward(x));
  int kept = 0;
  for (double v : y) {
    ASSERT_TRUE(v == 0.0 || std::abs(v - 1.0 / 0.75) < 1e-6);
    kept += v != 0.0;
  }
  EXPECT_NEAR(kept / 10000.0, 0.75, 0.02);
  drop.eval();
  EXPECT_EQ(values(drop.forward(x)), values(x));
  EXPECT_THROW(nn::Dropout(1.5), std::invalid_argument);
}

TEST(Layers, FeedForwardIsLinearActivationDropoutLinear) {
  Generator g(10);
  nn::FeedForward ff(4, 16, 0.0, nn::Activation::relu, g);
  const Tensor x = randn({3, 4}, g);
  const Tensor want = ff.linear2->forward(relu(ff.linear1->forward(x)));
  EXPECT_EQ(values(ff.forward(x)), values(want));
}

}  // namespace
}  // namespace rune
