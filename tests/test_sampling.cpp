// Choosing the next token (nn/sampling.hpp): the distributions of greedy, temperature, top-k and
// top-p on a hand-built logit vector, draws that follow them, reproducible by seed, and options
// out of range refused.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "nn/sampling.hpp"

namespace rune {
namespace {

// logits whose softmax is exactly these probabilities
std::vector<double> logits_of(const std::vector<double>& p) {
  std::vector<double> l;
  for (double v : p) l.push_back(std::log(v));
  return l;
}

void expect_distribution(const std::vector<double>& got, const std::vector<double>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << what << " token " << i;
}

TEST(Sampling, TopKTopPTemperatureAndGreedyKeepTheRightTokens) {
  // tokens 0..4 with probabilities 0.1, 0.5, 0.05, 0.2, 0.15 (most probable: 1, 3, 4, 0, 2)
  const std::vector<double> l = logits_of({0.1, 0.5, 0.05, 0.2, 0.15});
  nn::SamplingOptions o;
  expect_distribution(nn::sampling_distribution(l, o), {0.1, 0.5, 0.05, 0.2, 0.15}, "plain");
  o.top_k = 2;
  expect_distribution(nn::sampling_distribution(l, o), {0, 0.5 / 0.7, 0, 0.2 / 0.7, 0}, "top-k 2");
  o.top_k = 0;
  o.top_p = 0.6;  // 0.5 < 0.6, 0.5 + 0.2 reaches it
  expect_distribution(nn::sampling_distribution(l, o), {0, 0.5 / 0.7, 0, 0.2 / 0.7, 0}, "top-p 0.6");
  o.top_p = 0.5;  // the first token reaches it alone
  expect_distribution(nn::sampling_distribution(l, o), {0, 1, 0, 0, 0}, "top-p 0.5");
  o.top_p = 0.8;
  expect_distribution(nn::sampling_distribution(l, o), {0, 0.5 / 0.85, 0, 0.2 / 0.85, 0.15 / 0.85}, "top-p 0.8");
  o.top_k = 4;  // top-k first (0.95 kept), then top-p on the renormalised four: 0.5/0.95 + 0.2/0.95 < 0.8
  expect_distribution(nn::sampling_distribution(l, o), {0, 0.5 / 0.85, 0, 0.2 / 0.85, 0.15 / 0.85},
                      "top-k 4, top-p 0.8");
  o = {};
  o.temperature = 2.0;  // p^(1/2), renormalised
  std::vector<double> want;
  double z = 0;
  for (double p : {0.1, 0.5, 0.05, 0.2, 0.15}) z += std::sqrt(p);
  for (double p : {0.1, 0.5, 0.05, 0.2, 0.15}) want.push_back(std::sqrt(p) / z);
  expect_distribution(nn::sampling_distribution(l, o), want, "temperature 2");
  o.temperature = 0.0;
  expect_distribution(nn::sampling_distribution(l, o), {0, 1, 0, 0, 0}, "greedy");
  expect_distribution(nn::sampling_distribution({1.0, 3.0, 3.0}, o), {0, 1, 0}, "greedy: the first of tied tokens");
}

TEST(Sampling, DrawsFollowTheDistributionAndRepeatBySeed) {
  const std::vector<double> p{0.1, 0.5, 0.05, 0.2, 0.15};
  nn::SamplingOptions o;
  o.top_k = 4;
  const std::vector<double> want = nn::sampling_distribution(logits_of(p), o);
  // 4 rows of the same logits, 5000 calls: 20000 draws
  std::vector<double> row = logits_of(p), rows;
  for (int b = 0; b < 4; ++b) rows.insert(rows.end(), row.begin(), row.end());
  const Tensor logits = to_dtype(from_vector(rows, {4, 5}), DType::float32);
  Generator g(7);
  std::vector<double> counts(5, 0.0);
  std::vector<std::int64_t> first;  // the first 10 calls' 40 tokens
  for (int call = 0; call < 5000; ++call) {
    const std::vector<std::int64_t> t = nn::sample(logits, o, g).to_vector<std::int64_t>();
    if (call < 10) first.insert(first.end(), t.begin(), t.end());
    for (std::int64_t v : t) counts[static_cast<std::size_t>(v)] += 1;
  }
  const double n = 20000;
  for (std::size_t v = 0; v < 5; ++v)
    EXPECT_NEAR(counts[v] / n, want[v], 5 * std::sqrt(want[v] * (1 - want[v]) / n) + 1e-12) << "token " << v;
  EXPECT_EQ(counts[2], 0.0) << "top-k 4 never draws the least probable token";
  const auto forty = [&](Generator& gen) {
    std::vector<std::int64_t> out;
    for (int call = 0; call < 10; ++call)
      for (std::int64_t v : nn::sample(logits, o, gen).to_vector<std::int64_t>()) out.push_back(v);
    return out;
  };
  Generator again(7), other(8);
  EXPECT_EQ(forty(again), first) << "the same seed, the same tokens";
  EXPECT_NE(forty(other), first) << "another seed, other tokens";
  // greedy draws nothing from the generator and picks the argmax of each row
  o = {};
  o.temperature = 0.0;
  const Tensor two = from_vector(std::vector<double>{0.0, 2.0, 1.0, 5.0, -1.0, 4.9}, {2, 3});
  EXPECT_EQ(nn::sample(two, o, g).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 0}));
}

TEST(Sampling, OptionsOutOfRangeAreRefusedByName) {
  const std::vector<double> l{0.0, 1.0};
  const auto refused = [&](nn::SamplingOptions o, const char* what) {
    try {
      (void)nn::sampling_distribution(l, o);
      ADD_FAILURE() << what << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  refused({-1.0, 0, 1.0}, "temperature");
  refused({1.0, -2, 1.0}, "top_k");
  refused({1.0, 0, 0.0}, "top_p");
  refused({1.0, 0, 1.5}, "top_p");
  Generator g(1);
  EXPECT_THROW(nn::sample(zeros({5}), {}, g), std::invalid_argument);
}

}  // namespace
}  // namespace rune
