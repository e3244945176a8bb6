// Reads the PyTorch parity fixtures written by tests/parity/make_fixtures.py (the layout is in its
// header: /inputs, /params, /loss_weights, /outputs, /grads/inputs, /grads/params, config in root
// attributes) into Tensors, and compares our results with them. HDF5's C API, for the tests only
// (nn/checkpoint is the library's HDF5 code).
//
// Contract: every dataset comes back with its stored dtype and shape (float32, float64, int64, and
// uint8 tagged dtype="bool" as bool); anything else, and every missing file, dataset or attribute,
// throws std::runtime_error naming the file and the dataset or key.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"

namespace rune::parity {

class Fixture {
 public:
  // Opens RUNE_PARITY_DIR/file (e.g. Fixture f("mha_self.h5")); throws naming the path if it is
  // missing or not an HDF5 file.
  explicit Fixture(const std::string& file);
  ~Fixture();
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;
  Fixture(Fixture&& other) noexcept;
  Fixture& operator=(Fixture&& other) noexcept;

  const std::string& path() const { return path_; }

  // The datasets of the layout. float32 -> DType::float32, float64 -> float64, int64 -> int64,
  // uint8 with the attribute dtype="bool" (values 0/1) -> bool_.
  Tensor input(const std::string& name) const { return read("inputs/" + name); }
  Tensor param(const std::string& name) const { return read("params/" + name); }
  Tensor output(const std::string& name) const { return read("outputs/" + name); }
  Tensor loss_weight(const std::string& name) const { return read("loss_weights/" + name); }
  Tensor input_grad(const std::string& name) const { return read("grads/inputs/" + name); }
  Tensor param_grad(const std::string& name) const { return read("grads/params/" + name); }
  bool has_input(const std::string& name) const;
  std::vector<std::string> param_names() const { return list("params"); }         // sorted
  std::vector<std::string> output_names() const { return list("loss_weights"); }  // sorted

  // Scalar root attributes; a missing key, another type or an array throws naming file and key.
  std::int64_t attr_int(const std::string& key) const;
  double attr_double(const std::string& key) const;
  std::string attr_string(const std::string& key) const;
  bool has_attr(const std::string& key) const;

  // Any dataset by its path in the file, for fixtures with their own layout (the optimizers').
  Tensor read(const std::string& dataset) const;

 private:
  std::vector<std::string> list(const std::string& group) const;
  std::string path_;
  std::int64_t file_ = -1;  // hid_t; -1 when closed or moved from
};

// loss = sum over `outputs` of sum(to_dtype(out, float64) * f.loss_weight(name)), built with rune
// ops, so that backward() on it sends each output the fixture's upstream gradient.
Tensor weighted_loss(const Fixture& f, const std::vector<std::pair<std::string, Tensor>>& outputs);

// Passes when max |actual - expected| <= tol * max(max |expected|, 1e-6): the error relative to
// the reference's magnitude. Fails on an undefined actual, a shape mismatch or a NaN/Inf in
// actual; the message names `what`, the shapes, the max error, its multi-index, both values there
// and the reference's magnitude.
::testing::AssertionResult close_to_reference(const Tensor& actual, const Tensor& expected, double tol,
                                              const std::string& what);

inline constexpr double kOutputTol = 1e-5;  // outputs, float32 against the float64 reference
inline constexpr double kGradTol = 1e-4;    // gradients

}  // namespace rune::parity
