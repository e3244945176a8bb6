#include "tests/parity/fixture.hpp"

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "autograd/ops.hpp"

namespace rune::parity {
namespace {

// Closes an HDF5 handle at scope exit.
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  ~Handle() {
    if (id >= 0) close(id);
  }
};

// HDF5 prints its error stack to stderr by default; the reader reports errors itself.
void silence_hdf5() {
  static const bool done = [] { return H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) >= 0; }();
  (void)done;
}

}  // namespace

Fixture::Fixture(const std::string& file) : path_(std::string(RUNE_PARITY_DIR) + "/" + file) {
  silence_hdf5();
  if (H5Fis_hdf5(path_.c_str()) <= 0)  // negative when missing, 0 when not HDF5
    throw std::runtime_error("parity fixture " + path_ + " is missing or not an HDF5 file (make fixtures rebuilds it)");
  file_ = H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file_ < 0) throw std::runtime_error("parity fixture " + path_ + " cannot be opened");
}

Fixture::~Fixture() {
  if (file_ >= 0) H5Fclose(file_);
}

bool Fixture::has_input(const std::string& name) const {
  return H5Lexists(file_, "inputs", H5P_DEFAULT) > 0 && H5Lexists(file_, ("inputs/" + name).c_str(), H5P_DEFAULT) > 0;
}

Tensor Fixture::read(const std::string& name) const {
  // check each link of the path, so that a missing group is reported like a missing dataset
  for (std::size_t at = name.find('/'); ; at = name.find('/', at + 1)) {
    const std::string prefix = name.substr(0, at);
    if (H5Lexists(file_, prefix.c_str(), H5P_DEFAULT) <= 0)
      throw std::runtime_error(path_ + ": no dataset '" + name + "'");
    if (at == std::string::npos) break;
  }
  const Handle ds{H5Dopen2(file_, name.c_str(), H5P_DEFAULT), H5Dclose};
  if (ds.id < 0) throw std::runtime_error(path_ + ": '" + name + "' is not a dataset");
  const Handle space{H5Dget_space(ds.id), H5Sclose};
  const int rank = H5Sget_simple_extent_ndims(space.id);
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
  Shape shape(dims.begin(), dims.end());
  const Handle type{H5Dget_type(ds.id), H5Tclose};
  const H5T_class_t cls = H5Tget_class(type.id);
  const std::size_t size = H5Tget_size(type.id);
  const auto fetch = [&](DType dtype, hid_t mem_type) {
    Tensor t = empty(shape, dtype);
    if (H5Dread(ds.id, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()) < 0)
      throw std::runtime_error(path_ + ": reading '" + name + "' failed");
    return t;
  };
  if (cls == H5T_FLOAT && size == 4) return fetch(DType::float32, H5T_NATIVE_FLOAT);
  if (cls == H5T_FLOAT && size == 8) return fetch(DType::float64, H5T_NATIVE_DOUBLE);
  if (cls == H5T_INTEGER && size == 8) return fetch(DType::int64, H5T_NATIVE_INT64);
  if (cls == H5T_INTEGER && size == 1 && H5Aexists(ds.id, "dtype") > 0) {
    const Tensor bytes = fetch(DType::bool_, H5T_NATIVE_UINT8);  // bool is one byte, 0 or 1
    return bytes;
  }
  throw std::runtime_error(path_ + ": dataset '" + name + "' has a type the reader does not know (class " +
                           std::to_string(static_cast<int>(cls)) + ", " + std::to_string(size) + " bytes)");
}

std::vector<std::string> Fixture::list(const std::string& group) const {
  std::vector<std::string> names;
  if (H5Lexists(file_, group.c_str(), H5P_DEFAULT) <= 0) return names;
  const Handle g{H5Gopen2(file_, group.c_str(), H5P_DEFAULT), H5Gclose};
  H5G_info_t info;
  H5Gget_info(g.id, &info);
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = H5Lget_name_by_idx(g.id, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string name(static_cast<std::size_t>(n), '\0');
    H5Lget_name_by_idx(g.id, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), static_cast<std::size_t>(n) + 1, H5P_DEFAULT);
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool Fixture::has_attr(const std::string& key) const { return H5Aexists(file_, key.c_str()) > 0; }

namespace {
// Opens root attribute `key` and checks its type class; throws naming the file and key.
hid_t open_attr(hid_t file, const std::string& path, const std::string& key, H5T_class_t want, const char* what) {
  if (H5Aexists(file, key.c_str()) <= 0) throw std::runtime_error(path + ": no attribute '" + key + "'");
  const hid_t a = H5Aopen(file, key.c_str(), H5P_DEFAULT);
  const Handle type{H5Aget_type(a), H5Tclose};
  if (H5Tget_class(type.id) != want) {
    H5Aclose(a);
    throw std::runtime_error(path + ": attribute '" + key + "' is not " + what);
  }
  return a;
}
}  // namespace

std::int64_t Fixture::attr_int(const std::string& key) const {
  const Handle a{open_attr(file_, path_, key, H5T_INTEGER, "an integer"), H5Aclose};
  std::int64_t v = 0;
  H5Aread(a.id, H5T_NATIVE_INT64, &v);
  return v;
}

double Fixture::attr_double(const std::string& key) const {
  const Handle a{open_attr(file_, path_, key, H5T_FLOAT, "a float"), H5Aclose};
  double v = 0;
  H5Aread(a.id, H5T_NATIVE_DOUBLE, &v);
  return v;
}

std::string Fixture::attr_string(const std::string& key) const {
  const Handle a{open_attr(file_, path_, key, H5T_STRING, "a string"), H5Aclose};
  const Handle type{H5Aget_type(a.id), H5Tclose};
  if (H5Tis_variable_str(type.id) > 0) {
    const Handle mem{H5Tcopy(H5T_C_S1), H5Tclose};
    H5Tset_size(mem.id, H5T_VARIABLE);
    H5Tset_cset(mem.id, H5Tget_cset(type.id));
    char* s = nullptr;
    H5Aread(a.id, mem.id, &s);
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  std::string out(H5Tget_size(type.id), '\0');
  H5Aread(a.id, type.id, out.data());
  return out.substr(0, out.find('\0'));
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
    const double err = std::isfinite(pa[i]) ? std::abs(pa[i] - pe[i]) : INFINITY;
    if (err > worst) worst = err, at = i;
  }
  const double bound = tol * std::max(magnitude, 1e-6);
  if (a.numel() == 0 || worst <= bound) return ::testing::AssertionSuccess();
  std::ostringstream index;  // the multi-index of the worst element
  std::int64_t rest = at;
  std::vector<std::int64_t> idx(a.shape().size());
  for (std::size_t d = idx.size(); d-- > 0;) {
    idx[d] = rest % a.shape()[d];
    rest /= a.shape()[d];
  }
  for (std::size_t d = 0; d < idx.size(); ++d) index << (d ? ", " : "") << idx[d];
  return ::testing::AssertionFailure() << what << " " << shape_str(a.shape()) << ": max error " << worst << " at ["
                                       << index.str() << "] (" << pa[at] << " vs reference " << pe[at]
                                       << "), above " << tol << " x magnitude " << magnitude;
}

}  // namespace rune::parity
