// 20 steps of our optimizers against torch.optim's trajectories (fixtures from
// make_fixtures.py: one start, the same gradient at each step, the parameters after each step),
// with two parameter groups, one without weight decay. Float32 on both sides: within 1e-6.
#include <gtest/gtest.h>

#include <memory>

#include "autograd/ops.hpp"
#include "optim/adam.hpp"
#include "optim/sgd.hpp"
#include "tests/parity/fixture.hpp"

namespace rune {
namespace {

void check_trajectory(const std::string& file) {
  SCOPED_TRACE(file);
  const parity::Fixture f(file);
  const Tensor w = f.read("params/w").clone().requires_grad_(), b = f.read("params/b").clone().requires_grad_();
  const double lr = f.attr_double("lr"), wd = f.attr_double("weight_decay");
  std::vector<optim::ParamGroup> groups{{"decay", {{"w", w}}, lr, lr, wd}, {"no_decay", {{"b", b}}, lr, lr, 0.0}};
  std::unique_ptr<optim::Optimizer> opt;
  const std::string kind = f.attr_string("optimizer");
  if (kind == "SGD") {
    optim::SGDOptions o;
    o.momentum = f.attr_double("momentum");
    o.nesterov = f.attr_int("nesterov") != 0;
    opt = std::make_unique<optim::SGD>(groups, o);
  } else {
    optim::AdamOptions o;
    o.beta1 = f.attr_double("beta1");
    o.beta2 = f.attr_double("beta2");
    o.eps = f.attr_double("eps");
    o.amsgrad = f.attr_int("amsgrad") != 0;
    o.decoupled_weight_decay = kind == "AdamW";
    opt = std::make_unique<optim::Adam>(groups, o);
  }
  EXPECT_EQ(opt->name(), kind);
  const Tensor gw = f.read("grads/w"), gb = f.read("grads/b"), tw = f.read("trajectory/w"), tb = f.read("trajectory/b");
  for (std::int64_t t = 0; t < f.attr_int("steps"); ++t) {
    // hand the step's gradient to each parameter, as a backward would
    sum(w * reshape(slice(gw, 0, t, t + 1), w.shape())).backward();
    sum(b * reshape(slice(gb, 0, t, t + 1), b.shape())).backward();
    opt->step();
    opt->zero_grad();
    ASSERT_TRUE(parity::close_to_reference(w, reshape(slice(tw, 0, t, t + 1), w.shape()), 1e-6,
                                           "w after step " + std::to_string(t + 1)));
    ASSERT_TRUE(parity::close_to_reference(b, reshape(slice(tb, 0, t, t + 1), b.shape()), 1e-6,
                                           "b after step " + std::to_string(t + 1)));
  }
}

TEST(ParityOptim, AdamFollowsTorchForTwentySteps) { check_trajectory("adam.h5"); }
TEST(ParityOptim, AdamWFollowsTorchForTwentySteps) { check_trajectory("adamw.h5"); }
TEST(ParityOptim, AdamWWithAmsgradFollowsTorch) { check_trajectory("adamw_amsgrad.h5"); }
TEST(ParityOptim, SgdWithNesterovMomentumFollowsTorch) { check_trajectory("sgd_nesterov.h5"); }

}  // namespace
}  // namespace rune
