// The README example: a 2-8-1 MLP learns XOR with the tape and plain gradient descent.
#include <cstdio>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"

using namespace rune;

int main() {
  Generator gen(42);
  const Tensor x = tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}});  // (4, 2)
  const Tensor y = tensor({0, 1, 1, 0}).reshape({4, 1});      // (4, 1)
  Tensor w1 = randn({2, 8}, gen).requires_grad_(), b1 = zeros({8}).requires_grad_();
  Tensor w2 = randn({8, 1}, gen).requires_grad_(), b2 = zeros({1}).requires_grad_();
  for (int step = 0; step <= 2000; ++step) {
    const Tensor h = tanh(matmul(x, w1) + b1);     // (4, 8)
    const Tensor p = sigmoid(matmul(h, w2) + b2);  // (4, 1)
    const Tensor loss = mse_loss(p, y);
    loss.backward();  // fills w1.grad() ... b2.grad() and frees the tape
    NoGradGuard no_grad;
    for (Tensor* w : {&w1, &b1, &w2, &b2}) {
      w->add_(w->grad(), -1.0);  // w -= lr * grad, lr = 1
      w->zero_grad();
    }
    if (step % 500 == 0) std::printf("step %4d  loss %.6f\n", step, loss.item());
  }
  NoGradGuard no_grad;
  const Tensor p = sigmoid(matmul(tanh(matmul(x, w1) + b1), w2) + b2);
  std::printf("XOR of (0,0) (0,1) (1,0) (1,1): %s\n", p.reshape({4}).to_string().c_str());
  return 0;
}
