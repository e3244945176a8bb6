// The parity fixture reader (HDF5 C API) and the comparison against the reference.
#include "tests/parity/fixture.hpp"

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <type_traits>

#include "autograd/ops.hpp"

namespace rune::parity {
namespace {

static_assert(std::is_same_v<hid_t, std::int64_t>, "Fixture keeps its hid_t in an int64 (HDF5 >= 1.10)");

// Closes an HDF5 handle at scope exit.
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    if (id >= 0) close(id);
  }
};

// HDF5 prints its error stack to stderr when a call fails; the reader reports errors itself, so it
// turns the printing off while it works and restores the previous handler (nn/checkpoint shares
// the library's default error stack).
class QuietErrors {
 public:
  QuietErrors() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  QuietErrors(const QuietErrors&) = delete;
  QuietErrors& operator=(const QuietErrors&) = delete;
  ~QuietErrors() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// The value of a string attribute (variable-length, as h5py writes a str, or fixed-length).
std::string string_value(hid_t attr) {
  const Handle type(H5Aget_type(attr), H5Tclose);
  if (H5Tis_variable_str(type.id) > 0) {
    const Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.id, H5T_VARIABLE);
    H5Tset_cset(mem.id, H5Tget_cset(type.id));
    char* s = nullptr;
    if (H5Aread(attr, mem.id, &s) < 0) return {};
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  std::string out(H5Tget_size(type.id), '\0');
  H5Aread(attr, type.id, out.data());
  return out.substr(0, out.find('\0'));
}

// Opens the scalar root attribute `key` of class `want`; throws naming the file and the key.
hid_t open_attr(hid_t file, const std::string& path, const std::string& key, H5T_class_t want, const char* what) {
  if (H5Aexists(file, key.c_str()) <= 0) throw std::runtime_error(path + ": no attribute '" + key + "'");
  Handle a(H5Aopen(file, key.c_str(), H5P_DEFAULT), H5Aclose);
  const Handle type(H5Aget_type(a.id), H5Tclose);
  const Handle space(H5Aget_space(a.id), H5Sclose);
  if (H5Tget_class(type.id) != want || H5Sget_simple_extent_npoints(space.id) != 1)
    throw std::runtime_error(path + ": attribute '" + key + "' is not " + what);
  const hid_t id = a.id;
  a.id = -1;  // the caller closes it
  return id;
}

}  // namespace

Fixture::Fixture(const std::string& file) : path_(std::string(RUNE_PARITY_DIR) + "/" + file) {
  const QuietErrors quiet;
  if (H5Fis_hdf5(path_.c_str()) <= 0)  // negative when missing, 0 when not HDF5
    throw std::runtime_error("parity fixture " + path_ +
                             " is missing or not an HDF5 file (make fixtures rebuilds the fixtures)");
  file_ = H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file_ < 0) throw std::runtime_error("parity fixture " + path_ + " cannot be opened");
}

Fixture::~Fixture() {
  if (file_ >= 0) H5Fclose(file_);
}

Fixture::Fixture(Fixture&& other) noexcept : path_(std::move(other.path_)), file_(std::exchange(other.file_, -1)) {}

Fixture& Fixture::operator=(Fixture&& other) noexcept {
  if (this != &other) {
    if (file_ >= 0) H5Fclose(file_);
    path_ = std::move(other.path_);
    file_ = std::exchange(other.file_, -1);
  }
  return *this;
}

bool Fixture::has_input(const std::string& name) const {
  const QuietErrors quiet;
  return H5Lexists(file_, "inputs", H5P_DEFAULT) > 0 && H5Lexists(file_, ("inputs/" + name).c_str(), H5P_DEFAULT) > 0;
}

Tensor Fixture::read(const std::string& name) const {
  const QuietErrors quiet;
  // check each link of the path (H5Lexists needs the groups above to exist), so that a missing
  // group is reported like a missing dataset
  for (std::size_t at = name.find('/');; at = name.find('/', at + 1)) {
    if (H5Lexists(file_, name.substr(0, at).c_str(), H5P_DEFAULT) <= 0)
      throw std::runtime_error(path_ + ": no dataset '" + name + "'");
    if (at == std::string::npos) break;
  }
  const Handle ds(H5Dopen2(file_, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (ds.id < 0) throw std::runtime_error(path_ + ": '" + name + "' is not a dataset");
  const Handle space(H5Dget_space(ds.id), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.id);  // 0 for a scalar dataset
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
  const Shape shape(dims.begin(), dims.end());
  const Handle type(H5Dget_type(ds.id), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type.id);
  const std::size_t size = H5Tget_size(type.id);
  const auto fetch = [&](DType dtype, hid_t mem_type) {
    Tensor t = empty(shape, dtype);  // contiguous, row-major like the dataset
    if (H5Dread(ds.id, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()) < 0)
      throw std::runtime_error(path_ + ": reading dataset '" + name + "' failed");
    return t;
  };
  const bool is_signed = H5Tget_sign(type.id) == H5T_SGN_2;
  if (cls == H5T_FLOAT && size == 4) return fetch(DType::float32, H5T_NATIVE_FLOAT);
  if (cls == H5T_FLOAT && size == 8) return fetch(DType::float64, H5T_NATIVE_DOUBLE);
  if (cls == H5T_INTEGER && size == 8 && is_signed) return fetch(DType::int64, H5T_NATIVE_INT64);
  if (cls == H5T_INTEGER && size == 1 && !is_signed && H5Aexists(ds.id, "dtype") > 0) {
    const Handle tag(H5Aopen(ds.id, "dtype", H5P_DEFAULT), H5Aclose);
    if (string_value(tag.id) == "bool") {
      const Tensor mask = fetch(DType::bool_, H5T_NATIVE_UINT8);  // one byte per bool
      const auto* bytes = static_cast<const std::uint8_t*>(mask.raw_data());
      if (std::any_of(bytes, bytes + mask.numel(), [](std::uint8_t b) { return b > 1; }))
        throw std::runtime_error(path_ + ": bool dataset '" + name + "' holds a value other than 0 and 1");
      return mask;
    }
  }
  throw std::runtime_error(path_ + ": dataset '" + name + "' has a type the reader does not know (" +
                           (cls == H5T_FLOAT     ? "float"
                            : cls == H5T_INTEGER ? "integer"
                                                 : "class " + std::to_string(static_cast<int>(cls))) +
                           " of " + std::to_string(size) +
                           " bytes; the layout has float32, float64, int64 and "
                           "uint8 tagged dtype=\"bool\")");
}

std::vector<std::string> Fixture::list(const std::string& group) const {
  const QuietErrors quiet;
  std::vector<std::string> names;
  if (H5Lexists(file_, group.c_str(), H5P_DEFAULT) <= 0) return names;
  const Handle g(H5Gopen2(file_, group.c_str(), H5P_DEFAULT), H5Gclose);
  H5G_info_t info;
  H5Gget_info(g.id, &info);
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = H5Lget_name_by_idx(g.id, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string name(static_cast<std::size_t>(n), '\0');
    H5Lget_name_by_idx(g.id, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), static_cast<std::size_t>(n) + 1,
                       H5P_DEFAULT);
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool Fixture::has_attr(const std::string& key) const {
  const QuietErrors quiet;
  return H5Aexists(file_, key.c_str()) > 0;
}

std::int64_t Fixture::attr_int(const std::string& key) const {
  const QuietErrors quiet;
  const Handle a(open_attr(file_, path_, key, H5T_INTEGER, "a scalar integer"), H5Aclose);
  std::int64_t v = 0;
  H5Aread(a.id, H5T_NATIVE_INT64, &v);
  return v;
}

double Fixture::attr_double(const std::string& key) const {
  const QuietErrors quiet;
  const Handle a(open_attr(file_, path_, key, H5T_FLOAT, "a scalar float"), H5Aclose);
  double v = 0;
  H5Aread(a.id, H5T_NATIVE_DOUBLE, &v);
  return v;
}

std::string Fixture::attr_string(const std::string& key) const {
  const QuietErrors quiet;
  const Handle a(open_attr(file_, path_, key, H5T_STRING, "a string"), H5Aclose);
  return string_value(a.id);
}

Tensor weighted_loss(const Fixture& f, const std::vector<std::pair<std::string, Tensor>>& outputs) {
  Tensor loss;
  for (const auto& [name, out] : outputs) {
    const Tensor term = sum(to_dtype(out, DType::float64) * f.loss_weight(name));
    loss = loss.defined() ? loss + term : term;
  }
  return loss;
}

::testing::AssertionResult close_to_reference(const Tensor& actual, const Tensor& expected, double tol,
                                              const std::string& what) {
  if (!actual.defined()) return ::testing::AssertionFailure() << what << ": undefined (no gradient reached it?)";
  if (actual.shape() != expected.shape())
    return ::testing::AssertionFailure() << what << ": shape " << shape_str(actual.shape()) << ", reference "
                                         << shape_str(expected.shape());
  const Tensor a = to_dtype(actual.detach(), DType::float64).contiguous();
  const Tensor e = to_dtype(expected.detach(), DType::float64).contiguous();
  const double* pa = a.data<double>();
  const double* pe = e.data<double>();
  double magnitude = 0, worst = -1;
  std::int64_t at = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    magnitude = std::max(magnitude, std::abs(pe[i]));
    const double err = std::isfinite(pa[i]) ? std::abs(pa[i] - pe[i]) : INFINITY;  // NaN and Inf always fail
    if (err > worst) worst = err, at = i;
  }
  const double bound = tol * std::max(magnitude, 1e-6);
  if (a.numel() == 0 || worst <= bound) return ::testing::AssertionSuccess();
  std::vector<std::int64_t> index(a.shape().size());  // the multi-index of the worst element
  std::int64_t rest = at;
  for (std::size_t d = index.size(); d-- > 0; rest /= a.shape()[d]) index[d] = rest % a.shape()[d];
  std::ostringstream where;
  for (std::size_t d = 0; d < index.size(); ++d) where << (d ? ", " : "") << index[d];
  return ::testing::AssertionFailure() << what << " " << shape_str(a.shape()) << ": max error " << worst << " at ["
                                       << where.str() << "] (" << pa[at] << " vs reference " << pe[at] << "), above "
                                       << tol << " x magnitude " << magnitude;
}

}  // namespace rune::parity
