// Reads the PyTorch parity fixtures written by make_fixtures.py (layout in its header) into
// Tensors, and compares results with them. HDF5's C API, for the tests only.
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
  // Opens RUNE_PARITY_DIR/file; throws std::runtime_error naming the path if it is missing or
  // not an HDF5 file.
  explicit Fixture(const std::string& file);
  ~Fixture();
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  const std::string& path() const { return path_; }

  // Datasets: float32, float64 and int64 as such; uint8 with the attribute dtype="bool" as bool.
  // A missing dataset throws std::runtime_error naming the file and the dataset.
  Tensor input(const std::string& name) const { return read("inputs/" + name); }
  Tensor param(const std::string& name) const { return read("params/" + name); }
  Tensor output(const std::string& name) const { return read("outputs/" + name); }
  Tensor loss_weight(const std::string& name) const { return read("loss_weights/" + name); }
  Tensor input_grad(const std::string& name) const { return read("grads/inputs/" + name); }
  Tensor param_grad(const std::string& name) const { return read("grads/params/" + name); }
  bool has_input(const std::string& name) const;
  std::vector<std::string> param_names() const { return list("params"); }         // sorted
  std::vector<std::string> output_names() const { return list("loss_weights"); }  // sorted

  // Root attributes; a missing key or another type throws naming the file and the key.
  std::int64_t attr_int(const std::string& key) const;
  double attr_double(const std::string& key) const;
  std::string attr_string(const std::string& key) const;
  bool has_attr(const std::string& key) const;

  Tensor read(const std::string& dataset) const;  // any dataset by its path

 private:
  std::vector<std::string> list(const std::string& group) const;
  std::string path_;
  std::int64_t file_ = -1;  // hid_t
};

// sum over outputs of sum(float64(out) * loss_weight(name)), built with rune ops so that backward
// gives the fixture's upstream gradients.
Tensor weighted_loss(const Fixture& f, const std::vector<std::pair<std::string, Tensor>>& outputs);

// max |actual - expected| <= tol * max(max |expected|, 1e-6): the error relative to the
// reference's magnitude. The failure message names `what`, the shapes, the worst index, both
// values there and the magnitude. Undefined, mis-shaped or non-finite results fail.
::testing::AssertionResult close_to_reference(const Tensor& actual, const Tensor& expected, double tol,
                                              const std::string& what);

inline constexpr double kOutputTol = 1e-5;
inline constexpr double kGradTol = 1e-4;

}  // namespace rune::parity
