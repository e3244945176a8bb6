// Tensor: a strided view over a shared, type-erased buffer, plus the autograd state.
//
// A Tensor is a cheap handle (shared_ptr) to a TensorImpl. Views (reshape of a contiguous tensor,
// transpose, permute, slice, expand, detach) share the buffer and differ only in offset, shape
// and strides, exactly as in PyTorch. Buffers are xtensor containers (xt::uvector), held behind
// the opaque `Storage` so that this header stays light to include.
//
// Dtypes: float32 (the default, what models train in), float64 (gradient checks), int64 (indices,
// targets) and bool (masks). Arithmetic is defined on the floating dtypes only.
//
// Shapes and strides are counted in elements, row-major. Negative dims count from the end.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

namespace rune {

enum class DType : std::uint8_t { float32, float64, int64, bool_ };

const char* dtype_name(DType dtype);
std::size_t dtype_size(DType dtype);
inline bool is_floating(DType dtype) { return dtype == DType::float32 || dtype == DType::float64; }

using Shape = std::vector<std::int64_t>;

std::string shape_str(const Shape& shape);  // "[2,3]"
std::int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
// Normalises a possibly negative dim against a rank; throws naming `op` when out of range.
std::int64_t wrap_dim(std::int64_t dim, std::int64_t rank, const char* op);

class Storage;  // tensor.cpp: one xt::uvector of the dtype
class Node;     // tape.hpp
class Generator;
struct AutogradMeta;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  std::int64_t offset = 0;  // in elements
  Shape shape;
  Shape strides;
  DType dtype = DType::float32;
  std::shared_ptr<AutogradMeta> meta;  // null for tensors that never needed a gradient
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // ---- metadata
  const Shape& shape() const;
  const Shape& strides() const;
  std::int64_t offset() const;
  std::int64_t dim() const;
  std::int64_t size(std::int64_t dim) const;
  std::int64_t stride(std::int64_t dim) const;
  std::int64_t numel() const;
  DType dtype() const;
  bool is_contiguous() const;
  // True when this tensor and `other` view the same buffer.
  bool shares_storage(const Tensor& other) const;

  // ---- data. data<T>() points at the first element (offset applied) and checks the dtype.
  template <class T>
  T* data() const;
  void* raw_data() const;
  double item() const;  // the single element as a double; throws unless numel() == 1
  template <class T>
  std::vector<T> to_vector() const;  // elements in logical (row-major) order

  // ---- autograd
  bool requires_grad() const;
  // Marks a leaf as needing a gradient. Throws on a non-leaf (its gradient is the graph's).
  Tensor& requires_grad_(bool requires = true);
  bool is_leaf() const;
  // The accumulated gradient of a leaf (undefined until a backward reaches it).
  Tensor grad() const;
  // Zeroes the accumulated gradient in place (keeping its buffer); no-op when there is none.
  void zero_grad() const;
  // Drops the accumulated gradient: grad() is undefined until the next backward reaches it.
  void clear_grad() const;
  // Reverse-mode pass from this tensor. Without `gradient`, the tensor must hold one element and
  // the seed is 1. The graph is freed afterwards unless `retain_graph`.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;
  // Same buffer, no history, requires_grad false.
  Tensor detach() const;
  const std::shared_ptr<Node>& grad_fn() const;

  // ---- in-place updates, for optimizers and initialisers. Refused on a tensor that requires
  // grad while grad mode is on (the tape would silently see changed values).
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }
  Tensor& copy_(const Tensor& src);                       // src broadcast to this shape, cast to dtype
  Tensor& add_(const Tensor& other, double alpha = 1.0);  // this += alpha * other
  Tensor& mul_(double factor);

  // ---- method forms of common ops (see ops.hpp)
  Tensor reshape(const Shape& shape) const;
  Tensor view(const Shape& shape) const;
  Tensor transpose(std::int64_t dim0, std::int64_t dim1) const;
  Tensor permute(const std::vector<std::int64_t>& dims) const;
  Tensor contiguous() const;
  Tensor slice(std::int64_t dim, std::int64_t start, std::int64_t end, std::int64_t step = 1) const;
  Tensor unsqueeze(std::int64_t dim) const;
  Tensor squeeze(std::int64_t dim) const;
  Tensor sum() const;
  Tensor sum(const std::vector<std::int64_t>& dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(const std::vector<std::int64_t>& dims, bool keepdim = false) const;
  Tensor to(DType dtype) const;
  Tensor clone() const;

  std::string to_string() const;

 private:
  void check_defined(const char* what) const;
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- creation. Buffers from empty() are uninitialised; everything else is filled.
Tensor empty(const Shape& shape, DType dtype = DType::float32);
Tensor zeros(const Shape& shape, DType dtype = DType::float32);
Tensor ones(const Shape& shape, DType dtype = DType::float32);
Tensor full(const Shape& shape, double value, DType dtype = DType::float32);
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
// [start, end) by step, as torch.arange (the dtype is explicit: C++ has no int/float literal cue).
Tensor arange(double end, DType dtype = DType::float32);
Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::float32);
// Copies `n` elements from a C++ buffer; the shape's element count must equal the buffer's.
Tensor from_buffer(const float* data, const Shape& shape);
Tensor from_buffer(const double* data, const Shape& shape);
Tensor from_buffer(const std::int64_t* data, const Shape& shape);
Tensor from_buffer(const bool* data, const Shape& shape);
Tensor from_vector(const std::vector<float>& values, const Shape& shape);
Tensor from_vector(const std::vector<double>& values, const Shape& shape);
Tensor from_vector(const std::vector<std::int64_t>& values, const Shape& shape);
// Literals: tensor({1, 2, 3}), tensor({{1, 2}, {3, 4}}, DType::float64).
Tensor tensor(std::initializer_list<double> values, DType dtype = DType::float32);
Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, DType dtype = DType::float32);
// Random tensors from a seeded generator (the default generator when none is given).
Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::float32);
Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::float32);
Tensor uniform(const Shape& shape, double low, double high, Generator& gen, DType dtype = DType::float32);
Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape, Generator& gen);  // int64
Tensor randn(const Shape& shape, DType dtype = DType::float32);
Tensor rand(const Shape& shape, DType dtype = DType::float32);

// ---- bookkeeping, for leak tests and diagnostics
std::int64_t live_tensor_bytes();  // bytes held by all live buffers
std::int64_t live_tensor_buffers();

}  // namespace rune
