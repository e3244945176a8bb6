// Tensor handles, buffers, creation, printing and the in-place updates optimizers use.
#include "autograd/tensor.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <variant>

#include "autograd/allocator.hpp"
#include "autograd/kernels.hpp"
#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/tape.hpp"
#include "autograd/xt.hpp"

namespace rune {

// ------------------------------------------------------------------------- dtypes and shapes

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::float32:
      return "float32";
    case DType::float64:
      return "float64";
    case DType::int64:
      return "int64";
    case DType::bool_:
      return "bool";
  }
  return "?";
}

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::float32:
      return 4;
    case DType::float64:
      return 8;
    case DType::int64:
      return 8;
    case DType::bool_:
      return 1;
  }
  return 0;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::int64_t shape_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  std::int64_t s = 1;
  for (std::int64_t d = static_cast<std::int64_t>(shape.size()) - 1; d >= 0; --d) {
    strides[d] = s;
    s *= std::max<std::int64_t>(shape[d], 1);
  }
  return strides;
}

std::int64_t wrap_dim(std::int64_t dim, std::int64_t rank, const char* op) {
  const std::int64_t r = std::max<std::int64_t>(rank, 1);
  if (dim < -r || dim >= r)
    throw std::out_of_range(std::string(op) + ": dim " + std::to_string(dim) +
                            " is out of range for a tensor of rank " + std::to_string(rank));
  return dim < 0 ? dim + r : dim;
}

// ------------------------------------------------------------------------- storage

namespace {
std::atomic<std::int64_t> g_live_bytes{0};
std::atomic<std::int64_t> g_live_buffers{0};
}  // namespace

// One xtensor buffer of the dtype's element type. xt::uvector leaves trivially constructible
// elements uninitialised, so allocating a buffer the kernel will overwrite costs no zeroing pass;
// its memory comes from the caching allocator (allocator.hpp).
template <class T>
using Buffer = xt::uvector<T, BufferAllocator<T>>;

class Storage {
 public:
  Storage(DType dtype, std::int64_t n) : nbytes_(n * static_cast<std::int64_t>(dtype_size(dtype))) {
    const auto count = static_cast<std::size_t>(n);
    switch (dtype) {
      case DType::float32:
        buf_.emplace<Buffer<float>>(count);
        break;
      case DType::float64:
        buf_.emplace<Buffer<double>>(count);
        break;
      case DType::int64:
        buf_.emplace<Buffer<std::int64_t>>(count);
        break;
      case DType::bool_:
        buf_.emplace<Buffer<std::uint8_t>>(count);
        break;
    }
    g_live_bytes += nbytes_;
    ++g_live_buffers;
  }
  ~Storage() {
    g_live_bytes -= nbytes_;
    --g_live_buffers;
  }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() {
    return std::visit([](auto& v) -> void* { return v.data(); }, buf_);
  }

 private:
  std::int64_t nbytes_;
  std::variant<Buffer<float>, Buffer<double>, Buffer<std::int64_t>, Buffer<std::uint8_t>> buf_;
};

std::int64_t live_tensor_bytes() { return g_live_bytes.load(); }
std::int64_t live_tensor_buffers() { return g_live_buffers.load(); }

// ------------------------------------------------------------------------- Tensor

void Tensor::check_defined(const char* what) const {
  if (!impl_) throw std::logic_error(std::string(what) + ": the tensor is undefined");
}

const Shape& Tensor::shape() const {
  check_defined("shape");
  return impl_->shape;
}
const Shape& Tensor::strides() const {
  check_defined("strides");
  return impl_->strides;
}
std::int64_t Tensor::offset() const {
  check_defined("offset");
  return impl_->offset;
}
std::int64_t Tensor::dim() const { return static_cast<std::int64_t>(shape().size()); }
namespace {
// Like wrap_dim, but a 0-d tensor has no dim to ask about (wrap_dim lets reductions name dim 0 there).
std::int64_t existing_dim(std::int64_t d, std::int64_t rank, const char* op) {
  if (rank == 0) throw std::out_of_range(std::string(op) + ": a 0-d tensor has no dim " + std::to_string(d));
  return wrap_dim(d, rank, op);
}
}  // namespace
std::int64_t Tensor::size(std::int64_t d) const { return shape()[existing_dim(d, dim(), "size")]; }
std::int64_t Tensor::stride(std::int64_t d) const { return strides()[existing_dim(d, dim(), "stride")]; }
std::int64_t Tensor::numel() const { return shape_numel(shape()); }
DType Tensor::dtype() const {
  check_defined("dtype");
  return impl_->dtype;
}

bool Tensor::is_contiguous() const {
  const Shape& s = shape();
  std::int64_t expected = 1;
  for (std::int64_t d = static_cast<std::int64_t>(s.size()) - 1; d >= 0; --d) {
    if (s[d] == 1) continue;  // a dim of size 1 may carry any stride
    if (impl_->strides[d] != expected) return false;
    expected *= s[d];
  }
  return true;
}

bool Tensor::shares_storage(const Tensor& other) const {
  return impl_ && other.impl_ && impl_->storage == other.impl_->storage;
}

void* Tensor::raw_data() const {
  check_defined("data");
  return static_cast<char*>(impl_->storage->data()) +
         impl_->offset * static_cast<std::int64_t>(dtype_size(impl_->dtype));
}

template <class T>
T* Tensor::data() const {
  check_defined("data");
  if (impl_->dtype != detail::dtype_of<T>::value)
    throw std::invalid_argument(std::string("data<") + dtype_name(detail::dtype_of<T>::value) +
                                ">: the tensor's dtype is " + dtype_name(impl_->dtype));
  return static_cast<T*>(raw_data());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template std::int64_t* Tensor::data<std::int64_t>() const;
template bool* Tensor::data<bool>() const;

template <class T>
std::vector<T> Tensor::to_vector() const {
  const Tensor c = detail::contiguous_data(*this);
  const T* p = c.data<T>();
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<std::int64_t> Tensor::to_vector<std::int64_t>() const;

double Tensor::item() const {
  if (numel() != 1)
    throw std::invalid_argument("item: tensor of shape " + shape_str(shape()) + " has " + std::to_string(numel()) +
                                " elements, not 1");
  switch (dtype()) {
    case DType::float32:
      return *data<float>();
    case DType::float64:
      return *data<double>();
    case DType::int64:
      return static_cast<double>(*data<std::int64_t>());
    case DType::bool_:
      return *data<bool>() ? 1.0 : 0.0;
  }
  return 0.0;
}

bool Tensor::requires_grad() const {
  return impl_ && impl_->meta && (impl_->meta->requires_grad || impl_->meta->grad_fn);
}

bool Tensor::is_leaf() const { return !impl_ || !impl_->meta || !impl_->meta->grad_fn; }

Tensor& Tensor::requires_grad_(bool requires) {
  check_defined("requires_grad_");
  if (!is_leaf())
    throw std::logic_error("requires_grad_: only leaf tensors can be marked (this one was made by '" +
                           std::string(impl_->meta->grad_fn->name()) + "'); use detach() first");
  if (requires && !is_floating(impl_->dtype))
    throw std::invalid_argument(std::string("requires_grad_: only floating tensors can require "
                                            "gradients, this one is ") +
                                dtype_name(impl_->dtype));
  if (!impl_->meta) impl_->meta = std::make_shared<AutogradMeta>();
  impl_->meta->requires_grad = requires;
  return *this;
}

Tensor Tensor::grad() const {
  if (!impl_ || !impl_->meta || !impl_->meta->grad) return Tensor();
  return Tensor(impl_->meta->grad);
}

void Tensor::zero_grad() const {
  if (impl_ && impl_->meta && impl_->meta->grad) {
    Tensor g(impl_->meta->grad);
    NoGradGuard no_grad;
    g.fill_(0.0);
  }
}

void Tensor::clear_grad() const {
  if (impl_ && impl_->meta) impl_->meta->grad = nullptr;
}

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  check_defined("backward");
  run_backward(*this, gradient, retain_graph);
}

Tensor Tensor::detach() const {
  check_defined("detach");
  auto impl = std::make_shared<TensorImpl>(*impl_);
  impl->meta = nullptr;
  return Tensor(std::move(impl));
}

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<Node> none;
  if (!impl_ || !impl_->meta) return none;
  return impl_->meta->grad_fn;
}

// ------------------------------------------------------------------------- in-place updates

namespace {
void check_inplace(const Tensor& t, const char* op) {
  if (is_grad_enabled() && t.requires_grad())
    throw std::logic_error(std::string(op) +
                           ": in-place update of a tensor that requires grad while grad mode is "
                           "on; wrap it in rune::NoGradGuard");
}

// Arithmetic in place on a tensor whose elements alias one another (an expand: stride 0 over a
// dim of size > 1) would update the shared location once per alias. Refused, as PyTorch does;
// fill_ stays allowed since writing one value any number of times is still that value.
void check_no_internal_overlap(const Tensor& t, const char* op) {
  for (std::int64_t d = 0; d < t.dim(); ++d)
    if (t.stride(d) == 0 && t.size(d) > 1)
      throw std::invalid_argument(std::string(op) + ": the tensor of shape " + shape_str(t.shape()) +
                                  " has several elements at one memory location (stride 0 in dim " + std::to_string(d) +
                                  ", an expand); call contiguous() first");
}

template <class T>
void fill_strided(const Tensor& t, T value) {
  T* p = t.data<T>();
  if (t.is_contiguous()) {
    const std::int64_t n = t.numel();
    const int threads = detail::num_threads_for(n);
#pragma omp parallel for num_threads(threads) if (threads > 1)
    for (std::int64_t i = 0; i < n; ++i) p[i] = value;
    return;
  }
  detail::for_each_row<1>(
      t.shape(), {&t.strides()},
      [&](const std::array<std::int64_t, 1>& off, std::int64_t n, const std::array<std::int64_t, 1>& inner) {
        for (std::int64_t i = 0; i < n; ++i) p[off[0] + i * inner[0]] = value;
      });
}
}  // namespace

Tensor& Tensor::fill_(double value) {
  check_defined("fill_");
  check_inplace(*this, "fill_");
  switch (dtype()) {
    case DType::float32:
      fill_strided<float>(*this, static_cast<float>(value));
      break;
    case DType::float64:
      fill_strided<double>(*this, value);
      break;
    case DType::int64:
      fill_strided<std::int64_t>(*this, static_cast<std::int64_t>(value));
      break;
    case DType::bool_:
      fill_strided<bool>(*this, value != 0.0);
      break;
  }
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_defined("copy_");
  check_inplace(*this, "copy_");
  check_no_internal_overlap(*this, "copy_");
  NoGradGuard no_grad;
  Tensor s = src.dtype() == dtype() ? src : to_dtype(src, dtype());
  if (s.shape() != shape()) s = expand(s, shape());
  if (is_contiguous() && s.is_contiguous()) {
    std::memcpy(raw_data(), s.raw_data(), static_cast<std::size_t>(numel()) * dtype_size(dtype()));
    return *this;
  }
  detail::dispatch_bits(dtype(), [&](auto tag) {
    using U = decltype(tag);
    detail::strided_copy<U>(static_cast<U*>(raw_data()), strides(), static_cast<const U*>(s.raw_data()), s.strides(),
                            shape());
  });
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_defined("add_");
  check_inplace(*this, "add_");
  check_no_internal_overlap(*this, "add_");
  detail::check_same_float("add_", *this, other);
  const Shape out = detail::broadcast_shapes(shape(), other.shape(), "add_");
  if (out != shape())
    throw std::invalid_argument("add_: cannot broadcast " + shape_str(other.shape()) + " into the destination's " +
                                shape_str(shape()));
  const Shape os = detail::broadcast_strides(other, shape());
  detail::dispatch_float(dtype(), "add_", [&](auto tag) {
    using T = decltype(tag);
    T* d = data<T>();
    const T* o = other.data<T>();
    const T a = static_cast<T>(alpha);
    if (is_contiguous() && other.is_contiguous() && other.shape() == shape()) {
      const std::int64_t n = numel();
      const int threads = detail::num_threads_for(n);
#pragma omp parallel for num_threads(threads) if (threads > 1)
      for (std::int64_t i = 0; i < n; ++i) d[i] += a * o[i];
      return;
    }
    detail::for_each_row<2>(
        shape(), {&strides(), &os},
        [&](const std::array<std::int64_t, 2>& off, std::int64_t n, const std::array<std::int64_t, 2>& inner) {
          for (std::int64_t i = 0; i < n; ++i) d[off[0] + i * inner[0]] += a * o[off[1] + i * inner[1]];
        });
  });
  return *this;
}

Tensor& Tensor::mul_(double factor) {
  check_defined("mul_");
  check_inplace(*this, "mul_");
  check_no_internal_overlap(*this, "mul_");
  detail::dispatch_float(dtype(), "mul_", [&](auto tag) {
    using T = decltype(tag);
    T* d = data<T>();
    const T f = static_cast<T>(factor);
    detail::for_each_row<1>(
        shape(), {&strides()},
        [&](const std::array<std::int64_t, 1>& off, std::int64_t n, const std::array<std::int64_t, 1>& inner) {
          for (std::int64_t i = 0; i < n; ++i) d[off[0] + i * inner[0]] *= f;
        });
  });
  return *this;
}

// ------------------------------------------------------------------------- method forms

Tensor Tensor::reshape(const Shape& s) const { return rune::reshape(*this, s); }
Tensor Tensor::view(const Shape& s) const { return rune::view(*this, s); }
Tensor Tensor::transpose(std::int64_t d0, std::int64_t d1) const { return rune::transpose(*this, d0, d1); }
Tensor Tensor::permute(const std::vector<std::int64_t>& dims) const { return rune::permute(*this, dims); }
Tensor Tensor::contiguous() const { return rune::contiguous(*this); }
Tensor Tensor::slice(std::int64_t dim, std::int64_t start, std::int64_t end, std::int64_t step) const {
  return rune::slice(*this, dim, start, end, step);
}
Tensor Tensor::unsqueeze(std::int64_t d) const { return rune::unsqueeze(*this, d); }
Tensor Tensor::squeeze(std::int64_t d) const { return rune::squeeze(*this, d); }
Tensor Tensor::sum() const { return rune::sum(*this); }
Tensor Tensor::sum(const std::vector<std::int64_t>& dims, bool keepdim) const {
  return rune::sum(*this, dims, keepdim);
}
Tensor Tensor::mean() const { return rune::mean(*this); }
Tensor Tensor::mean(const std::vector<std::int64_t>& dims, bool keepdim) const {
  return rune::mean(*this, dims, keepdim);
}
Tensor Tensor::to(DType d) const { return rune::to_dtype(*this, d); }
Tensor Tensor::clone() const {
  // A copy with its own buffer; differentiable (as the identity).
  if (is_contiguous()) {
    Tensor out = empty(shape(), dtype());
    {
      NoGradGuard no_grad;
      out.copy_(*this);
    }
    if (requires_grad() && is_grad_enabled())
      record(Op::contiguous, out, {*this}, [](const Tensor& gy, Grads& g) { g.set(0, gy); });
    return out;
  }
  return rune::contiguous(*this);
}

// ------------------------------------------------------------------------- printing

namespace {
template <class T>
void print_values(std::ostream& os, const Tensor& c, std::int64_t dim, std::int64_t offset, int indent) {
  const Shape& s = c.shape();
  const T* p = c.data<T>();
  if (s.empty()) {
    os << p[0];
    return;
  }
  const std::int64_t n = s[dim];
  const std::int64_t stride = c.strides()[dim];
  const bool last = dim + 1 == static_cast<std::int64_t>(s.size());
  const std::int64_t edge = 3;
  os << '[';
  for (std::int64_t i = 0; i < n; ++i) {
    if (n > 2 * edge + 1 && i == edge) {
      os << (last ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - edge - 1;
      continue;
    }
    if (last) {
      if constexpr (std::is_same_v<T, bool>)
        os << (p[offset + i * stride] ? "true" : "false");
      else
        os << p[offset + i * stride];
    } else {
      print_values<T>(os, c, dim + 1, offset + i * stride, indent + 1);
    }
    if (i + 1 < n) os << (last ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  os << ']';
}
}  // namespace

std::string Tensor::to_string() const {
  std::ostringstream os;
  os << *this;
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  const Tensor c = detail::contiguous_data(t);
  std::ostringstream body;
  body << std::setprecision(6);
  switch (c.dtype()) {
    case DType::float32:
      print_values<float>(body, c, 0, 0, 7);
      break;
    case DType::float64:
      print_values<double>(body, c, 0, 0, 7);
      break;
    case DType::int64:
      print_values<std::int64_t>(body, c, 0, 0, 7);
      break;
    case DType::bool_:
      print_values<bool>(body, c, 0, 0, 7);
      break;
  }
  os << "tensor(" << body.str() << ", shape=" << shape_str(t.shape()) << ", dtype=" << dtype_name(t.dtype());
  if (t.requires_grad()) os << (t.is_leaf() ? ", requires_grad" : std::string(", grad_fn=") + t.grad_fn()->name());
  return os << ')';
}

// ------------------------------------------------------------------------- creation

Tensor empty(const Shape& shape, DType dtype) {
  for (auto d : shape)
    if (d < 0) throw std::invalid_argument("empty: negative dimension in shape " + shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(dtype, shape_numel(shape));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  t.fill_(value);
  return t;
}
Tensor zeros(const Shape& shape, DType dtype) { return full(shape, 0.0, dtype); }
Tensor ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype()); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype()); }
Tensor full_like(const Tensor& t, double value) { return full(t.shape(), value, t.dtype()); }

Tensor arange(double end, DType dtype) { return arange(0.0, end, 1.0, dtype); }

Tensor arange(double start, double end, double step, DType dtype) {
  if (step == 0.0 || !std::isfinite(start) || !std::isfinite(end) || !std::isfinite(step))
    throw std::invalid_argument("arange: start, end and step must be finite and step non-zero");
  const auto n = static_cast<std::int64_t>(std::max(0.0, std::ceil((end - start) / step)));
  Tensor t = empty({n}, dtype);
  for (std::int64_t i = 0; i < n; ++i) {
    const double v = start + static_cast<double>(i) * step;
    switch (dtype) {
      case DType::float32:
        t.data<float>()[i] = static_cast<float>(v);
        break;
      case DType::float64:
        t.data<double>()[i] = v;
        break;
      case DType::int64:
        t.data<std::int64_t>()[i] = static_cast<std::int64_t>(v);
        break;
      case DType::bool_:
        t.data<bool>()[i] = v != 0.0;
        break;
    }
  }
  return t;
}

namespace {
template <class T>
Tensor copy_in(const T* data, const Shape& shape) {
  Tensor t = empty(shape, detail::dtype_of<T>::value);
  if (t.numel() > 0) std::memcpy(t.raw_data(), data, static_cast<std::size_t>(t.numel()) * sizeof(T));
  return t;
}
template <class T>
Tensor from_values(const std::vector<T>& values, const Shape& shape) {
  if (static_cast<std::int64_t>(values.size()) != shape_numel(shape))
    throw std::invalid_argument("from_vector: " + std::to_string(values.size()) + " values do not fill shape " +
                                shape_str(shape));
  return copy_in(values.data(), shape);
}
}  // namespace

Tensor from_buffer(const float* data, const Shape& shape) { return copy_in(data, shape); }
Tensor from_buffer(const double* data, const Shape& shape) { return copy_in(data, shape); }
Tensor from_buffer(const std::int64_t* data, const Shape& shape) { return copy_in(data, shape); }
Tensor from_buffer(const bool* data, const Shape& shape) { return copy_in(data, shape); }
Tensor from_vector(const std::vector<float>& v, const Shape& s) { return from_values(v, s); }
Tensor from_vector(const std::vector<double>& v, const Shape& s) { return from_values(v, s); }
Tensor from_vector(const std::vector<std::int64_t>& v, const Shape& s) { return from_values(v, s); }

Tensor tensor(std::initializer_list<double> values, DType dtype) {
  std::vector<double> v(values);
  return to_dtype(from_vector(v, {static_cast<std::int64_t>(v.size())}), dtype);
}

Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, DType dtype) {
  std::vector<double> v;
  const std::int64_t n_rows = static_cast<std::int64_t>(rows.size());
  const std::int64_t n_cols = n_rows ? static_cast<std::int64_t>(rows.begin()->size()) : 0;
  for (const auto& row : rows) {
    if (static_cast<std::int64_t>(row.size()) != n_cols)
      throw std::invalid_argument("tensor: rows of a 2-D literal must have equal lengths (" + std::to_string(n_cols) +
                                  " and " + std::to_string(row.size()) + ")");
    v.insert(v.end(), row.begin(), row.end());
  }
  return to_dtype(from_vector(v, {n_rows, n_cols}), dtype);
}

namespace {
template <class Draw>
Tensor random_fill(const Shape& shape, DType dtype, const char* op, Draw&& draw) {
  Tensor t = empty(shape, dtype);
  detail::dispatch_float(dtype, op, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    // Sequential on purpose: the values depend only on the seed, never on the thread count.
    for (std::int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = static_cast<T>(draw());
  });
  return t;
}
}  // namespace

Tensor randn(const Shape& shape, Generator& gen, DType dtype) {
  return random_fill(shape, dtype, "randn", [&] { return gen.normal(); });
}
Tensor rand(const Shape& shape, Generator& gen, DType dtype) { return uniform(shape, 0.0, 1.0, gen, dtype); }
Tensor uniform(const Shape& shape, double low, double high, Generator& gen, DType dtype) {
  if (!(low <= high)) throw std::invalid_argument("uniform: low must not exceed high");
  Tensor t = empty(shape, dtype);
  detail::dispatch_float(dtype, "uniform", [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    // The draw is in [low, high) in double; rounding to float32 can land on high itself, so such a
    // value steps down to the largest T below high, keeping the interval half-open.
    const T top = static_cast<T>(high);
    const T below_top = low < high ? std::nextafter(top, static_cast<T>(low)) : top;
    for (std::int64_t i = 0, n = t.numel(); i < n; ++i) {
      const T v = static_cast<T>(low + (high - low) * gen.uniform());
      p[i] = v >= top && low < high ? below_top : v;
    }
  });
  return t;
}
Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape, Generator& gen) {
  if (low >= high)
    throw std::invalid_argument("randint: low (" + std::to_string(low) + ") must be below high (" +
                                std::to_string(high) + ")");
  Tensor t = empty(shape, DType::int64);
  auto* p = t.data<std::int64_t>();
  const auto span = static_cast<std::uint64_t>(high - low);
  for (std::int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = low + static_cast<std::int64_t>(gen.below(span));
  return t;
}
Tensor randn(const Shape& shape, DType dtype) { return randn(shape, default_generator(), dtype); }
Tensor rand(const Shape& shape, DType dtype) { return rand(shape, default_generator(), dtype); }

// ------------------------------------------------------------------------- kernel helpers

namespace detail {

void throw_dtype(const char* op, DType dtype, const char* wanted) {
  throw std::invalid_argument(std::string(op) + ": expected " + wanted + ", got " + dtype_name(dtype));
}

void check_same_float(const char* op, const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) throw std::invalid_argument(std::string(op) + ": undefined tensor");
  if (!is_floating(a.dtype())) throw_dtype(op, a.dtype(), "a floating dtype (float32 or float64)");
  if (a.dtype() != b.dtype())
    throw std::invalid_argument(std::string(op) + ": dtypes differ: " + dtype_name(a.dtype()) + " and " +
                                dtype_name(b.dtype()) + " (convert one with to())");
}

void check_dtype(const char* op, const Tensor& t, DType dtype, const char* role) {
  if (!t.defined()) throw std::invalid_argument(std::string(op) + ": " + role + " is undefined");
  if (t.dtype() != dtype)
    throw std::invalid_argument(std::string(op) + ": " + role + " must be " + dtype_name(dtype) + ", got " +
                                dtype_name(t.dtype()));
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    const std::int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const std::int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      throw std::invalid_argument(std::string(op) + ": cannot broadcast " + shape_str(a) + " with " + shape_str(b) +
                                  " (dim " + std::to_string(i) + ": " + std::to_string(da) + " vs " +
                                  std::to_string(db) + ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Shape broadcast_strides(const Tensor& t, const Shape& out) {
  const Shape& s = t.shape();
  const Shape& st = t.strides();
  Shape strides(out.size(), 0);
  const std::size_t lead = out.size() - s.size();
  for (std::size_t i = 0; i < s.size(); ++i) strides[lead + i] = s[i] == 1 ? 0 : st[i];
  return strides;
}

Tensor contiguous_data(const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor out = empty(x.shape(), x.dtype());
  dispatch_bits(x.dtype(), [&](auto tag) {
    using U = decltype(tag);
    strided_gather<U>(static_cast<U*>(out.raw_data()), static_cast<const U*>(x.raw_data()), x.shape(), x.strides());
  });
  return out;
}

OuterInner split_at(const Shape& shape, std::int64_t dim) {
  OuterInner r{1, shape.empty() ? 1 : shape[dim], 1};
  for (std::int64_t d = 0; d < dim; ++d) r.outer *= shape[d];
  for (std::size_t d = dim + 1; d < shape.size(); ++d) r.inner *= shape[d];
  return r;
}

}  // namespace detail
}  // namespace rune
