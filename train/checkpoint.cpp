// HDF5 checkpoints through HDF5's C API: the only file of the library that includes <hdf5.h>.
#include "train/checkpoint.hpp"

#include <hdf5.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string_view>

#include "autograd/ops.hpp"
#include "train/files.hpp"
#include "train/memory.hpp"
#include "train/sha256.hpp"

namespace rune::train {
namespace {

// An HDF5 handle closed at scope exit.
class H5 {
 public:
  H5(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~H5() {
    if (id_ >= 0) close_(id_);
  }
  H5(const H5&) = delete;
  H5& operator=(const H5&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }
  // Closes it now, for a caller that must know whether closing (a file's last writes) worked.
  herr_t close_now() {
    const herr_t status = id_ >= 0 ? close_(id_) : 0;
    id_ = -1;
    return status;
  }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// HDF5 prints its error stack when a call fails; we report errors ourselves, naming the file, so
// printing is off while a checkpoint is read or written and the caller's handler comes back after.
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

// Why the last HDF5 call failed, as the innermost entry of its error stack says it: the system's
// reason where there is one ("File too large", "Permission denied"), or "".
std::string hdf5_cause() {
  std::string desc;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
        auto& d = *static_cast<std::string*>(out);
        if (d.empty() && e->desc) d = e->desc;
        return 0;
      },
      &desc);
  // a system call's failure reads "..., errno = 27, error message = 'File too large', ..."
  const std::string key = "error message = '";
  if (const std::size_t at = desc.find(key); at != std::string::npos) {
    const std::size_t end = desc.find('\'', at + key.size());
    return desc.substr(at + key.size(), end == std::string::npos ? std::string::npos : end - at - key.size());
  }
  return desc;
}

std::string dots_to_slashes(std::string s) {
  std::replace(s.begin(), s.end(), '.', '/');
  return s;
}
std::string slashes_to_dots(std::string s) {
  std::replace(s.begin(), s.end(), '/', '.');
  return s;
}

// ------------------------------------------------------------------------- writing

struct Writer {
  std::string path;  // the final path, for messages
  hid_t file;

  [[noreturn]] void fail(const std::string& what) const {
    const std::string cause = hdf5_cause();
    throw std::runtime_error("checkpoint " + path + ": writing " + what + " failed" +
                             (cause.empty() ? "" : ": " + cause));
  }

  void string_attr(hid_t loc, const std::string& key, const std::string& value) const {
    const H5 type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.get(), H5T_VARIABLE);
    H5Tset_cset(type.get(), H5T_CSET_UTF8);
    const H5 space(H5Screate(H5S_SCALAR), H5Sclose);
    const H5 attr(H5Acreate2(loc, key.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    const char* data = value.c_str();
    if (!attr.ok() || H5Awrite(attr.get(), type.get(), &data) < 0) fail("attribute " + key);
  }

  template <class T>
  void number_attr(hid_t loc, const std::string& key, T value, hid_t type) const {
    const H5 space(H5Screate(H5S_SCALAR), H5Sclose);
    const H5 attr(H5Acreate2(loc, key.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    if (!attr.ok() || H5Awrite(attr.get(), type, &value) < 0) fail("attribute " + key);
  }

  hid_t group(const std::string& name) const {
    const hid_t g = H5Gcreate2(file, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) fail("group " + name);
    return g;
  }

  // A contiguous dataset (the file's SHA-256 covers its bytes); 0-d tensors are stored as [1]
  // with the attribute rank0 = 1.
  void tensor(const std::string& name, const Tensor& t_in, bool as_float32) const {
    Tensor t = t_in.detach();
    if (as_float32 && t.dtype() != DType::float32) t = to_dtype(t, DType::float32);
    t = t.contiguous();
    hid_t mem_type;
    switch (t.dtype()) {
      case DType::float32:
        mem_type = H5T_NATIVE_FLOAT;
        break;
      case DType::float64:
        mem_type = H5T_NATIVE_DOUBLE;
        break;
      case DType::int64:
        mem_type = H5T_NATIVE_INT64;
        break;
      default:
        throw std::runtime_error("checkpoint " + path + ": '" + name + "' has a dtype checkpoints do not store");
    }
    const bool rank0 = t.dim() == 0;
    std::vector<hsize_t> dims(rank0 ? 1 : t.shape().size(), 1);
    for (std::size_t d = 0; d < t.shape().size(); ++d) dims[d] = static_cast<hsize_t>(t.shape()[d]);
    const H5 space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
    const H5 lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
    H5Pset_create_intermediate_group(lcpl.get(), 1);
    const H5 ds(H5Dcreate2(file, name.c_str(), mem_type, space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
    if (!ds.ok() || (t.numel() > 0 && H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()) < 0))
      fail("dataset " + name);
    if (rank0) number_attr<std::int64_t>(ds.get(), "rank0", 1, H5T_NATIVE_INT64);
  }

  // Bytes kept whole: a 1-d uint8 dataset (h5py: bytes(f[name][()])).
  void bytes(const std::string& name, const std::string& value) const {
    const hsize_t n = value.size();
    const H5 space(H5Screate_simple(1, &n, nullptr), H5Sclose);
    const H5 ds(H5Dcreate2(file, name.c_str(), H5T_NATIVE_UINT8, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                H5Dclose);
    if (!ds.ok() || (n > 0 && H5Dwrite(ds.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, value.data()) < 0))
      fail("dataset " + name);
  }

  void strings(const std::string& name, const std::vector<std::string>& values) const {
    const H5 type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.get(), H5T_VARIABLE);
    H5Tset_cset(type.get(), H5T_CSET_UTF8);
    const hsize_t n = values.size();
    const H5 space(H5Screate_simple(1, &n, nullptr), H5Sclose);
    const H5 ds(H5Dcreate2(file, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                H5Dclose);
    std::vector<const char*> ptrs;
    for (const auto& v : values) ptrs.push_back(v.c_str());
    if (!ds.ok() || (n > 0 && H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0))
      fail("dataset " + name);
  }
};

// ------------------------------------------------------------------------- reading

struct Reader {
  std::string path;
  hid_t file;
  std::size_t file_size;  // no dataset holds more bytes than the file

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("checkpoint " + path + " is refused: " + what);
  }

  bool has_attr(hid_t loc, const std::string& key) const { return H5Aexists(loc, key.c_str()) > 0; }

  std::string string_attr(hid_t loc, const std::string& key) const {
    if (!has_attr(loc, key)) fail("no attribute '" + key + "'");
    const H5 attr(H5Aopen(loc, key.c_str(), H5P_DEFAULT), H5Aclose);
    const H5 type(H5Aget_type(attr.get()), H5Tclose);
    if (H5Tget_class(type.get()) != H5T_STRING) fail("attribute '" + key + "' is not a string");
    if (H5Tis_variable_str(type.get()) > 0) {
      char* s = nullptr;
      const H5 mem(H5Tcopy(H5T_C_S1), H5Tclose);
      H5Tset_size(mem.get(), H5T_VARIABLE);
      H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
      if (H5Aread(attr.get(), mem.get(), &s) < 0) fail("attribute '" + key + "' cannot be read");
      std::string out = s ? s : "";
      H5free_memory(s);
      return out;
    }
    std::string out(H5Tget_size(type.get()), '\0');
    if (H5Aread(attr.get(), type.get(), out.data()) < 0) fail("attribute '" + key + "' cannot be read");
    return out.substr(0, out.find('\0'));
  }

  template <class T>
  T number_attr(hid_t loc, const std::string& key, hid_t mem_type) const {
    if (!has_attr(loc, key)) fail("no attribute '" + key + "'");
    const H5 attr(H5Aopen(loc, key.c_str(), H5P_DEFAULT), H5Aclose);
    const H5 type(H5Aget_type(attr.get()), H5Tclose);
    const H5T_class_t cls = H5Tget_class(type.get());
    if (cls != H5T_INTEGER && cls != H5T_FLOAT) fail("attribute '" + key + "' is not a number");
    T v{};
    if (H5Aread(attr.get(), mem_type, &v) < 0) fail("attribute '" + key + "' cannot be read");
    return v;
  }

  // Attribute names of a group, in name order.
  std::vector<std::string> attr_names(hid_t loc) const {
    std::vector<std::string> names;
    H5Aiterate2(
        loc, H5_INDEX_NAME, H5_ITER_INC, nullptr,
        [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
          static_cast<std::vector<std::string>*>(data)->push_back(name);
          return 0;
        },
        &names);
    return names;
  }

  // Paths (relative to `group`) of every dataset below it, in name order.
  std::vector<std::string> datasets_under(const std::string& group) const {
    std::vector<std::string> out;
    if (H5Lexists(file, group.c_str(), H5P_DEFAULT) <= 0) return out;
    const H5 g(H5Gopen2(file, group.c_str(), H5P_DEFAULT), H5Gclose);
    if (!g.ok()) fail("'" + group + "' is not a group");
    struct Walk {
      std::vector<std::string>* out;
    } walk{&out};
    const herr_t status = H5Lvisit(
        g.get(), H5_INDEX_NAME, H5_ITER_INC,
        [](hid_t loc, const char* name, const H5L_info_t*, void* data) -> herr_t {
          const hid_t obj = H5Oopen(loc, name, H5P_DEFAULT);
          if (obj < 0) return -1;
          const bool is_dataset = H5Iget_type(obj) == H5I_DATASET;
          H5Oclose(obj);
          if (is_dataset) static_cast<Walk*>(data)->out->push_back(name);
          return 0;
        },
        &walk);
    if (status < 0) fail("the tree under '" + group + "' cannot be walked");
    return out;
  }

  Tensor tensor(const std::string& name) const {
    const H5 ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
    if (!ds.ok()) fail("dataset '" + name + "' cannot be opened");
    const H5 space(H5Dget_space(ds.get()), H5Sclose);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    if (rank < 0) fail("dataset '" + name + "' has no readable shape");
    if (rank > 8) fail("dataset '" + name + "' has " + std::to_string(rank) + " dimensions");
    std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);

    Shape shape(dims.begin(), dims.end());
    if (H5Aexists(ds.get(), "rank0") > 0) {
      if (shape != Shape{1}) fail("dataset '" + name + "' is marked 0-d but has shape " + shape_str(shape));
      shape.clear();
    }
    const H5 type(H5Dget_type(ds.get()), H5Tclose);
    const H5T_class_t cls = H5Tget_class(type.get());
    const std::size_t size = H5Tget_size(type.get());
    DType dtype;
    hid_t mem_type;
    if (cls == H5T_FLOAT && size == 4)
      dtype = DType::float32, mem_type = H5T_NATIVE_FLOAT;
    else if (cls == H5T_FLOAT && size == 8)
      dtype = DType::float64, mem_type = H5T_NATIVE_DOUBLE;
    else if (cls == H5T_INTEGER && size == 8)
      dtype = DType::int64, mem_type = H5T_NATIVE_INT64;
    else
      fail("dataset '" + name + "' has an unsupported type");
    double bytes = static_cast<double>(size);  // in double: a damaged shape cannot overflow it
    for (const hsize_t d : dims) bytes *= static_cast<double>(d);
    if (bytes > static_cast<double>(file_size))
      fail("dataset '" + name + "' claims a shape " + shape_str(shape) + " larger than the file");
    Tensor t = empty(shape, dtype);
    if (t.numel() > 0 && H5Dread(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()) < 0)
      fail("dataset '" + name + "' cannot be read");
    return t;
  }

  std::vector<std::string> strings(const std::string& name) const {
    const H5 ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
    const H5 space(H5Dget_space(ds.get()), H5Sclose);
    const hssize_t n = H5Sget_simple_extent_npoints(space.get());
    if (n < 0 || static_cast<std::size_t>(n) > file_size) fail("dataset '" + name + "' has no readable size");
    const H5 mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5T_CSET_UTF8);
    std::vector<char*> ptrs(static_cast<std::size_t>(std::max<hssize_t>(n, 0)), nullptr);
    if (n > 0 && H5Dread(ds.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0)
      fail("dataset '" + name + "' cannot be read");
    std::vector<std::string> out;
    for (char* p : ptrs) {
      out.emplace_back(p ? p : "");
      H5free_memory(p);
    }
    return out;
  }

  std::string bytes(const std::string& name) const {
    const H5 ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
    const H5 space(H5Dget_space(ds.get()), H5Sclose);
    const hssize_t n = H5Sget_simple_extent_npoints(space.get());
    if (n < 0 || static_cast<std::size_t>(n) > file_size) fail("dataset '" + name + "' has no readable size");
    std::string out(static_cast<std::size_t>(n), '\0');
    if (n > 0 && H5Dread(ds.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
      fail("dataset '" + name + "' cannot be read");
    return out;
  }

  bool is_bytes_dataset(const std::string& name) const {
    const H5 ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
    const H5 type(H5Dget_type(ds.get()), H5Tclose);
    return H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) == 1;
  }

  bool is_string_dataset(const std::string& name) const {
    const H5 ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
    const H5 type(H5Dget_type(ds.get()), H5Tclose);
    return H5Tget_class(type.get()) == H5T_STRING;
  }
};

}  // namespace

// ------------------------------------------------------------------------- save / read

namespace {

// The line a checkpoint ends in: the SHA-256 of every byte before it.
constexpr const char* kTrailerStart = "\nrunestone-checkpoint sha256 ";
constexpr std::size_t kTrailerSize = 29 + 64 + 1;  // the start, 64 hex digits, "\n"

std::string trailer(const std::string& image) { return kTrailerStart + sha256_hex(image.data(), image.size()) + "\n"; }

// Where HDF5's core driver keeps a file it builds in memory, through its file-image callbacks:
// the bytes as they stand when the file is closed (superblock and all, final), in `closed`.
// The driver grows the file a few bytes at a time (an increment of 1 keeps its size exact); the
// buffer grows by doubling.
struct MemoryImage {
  char* data = nullptr;
  std::size_t size = 0, capacity = 0;
  std::string closed;

  static void* allocate(std::size_t size, H5FD_file_image_op_t, void* self) {
    return static_cast<MemoryImage*>(self)->resize(size);
  }
  static void* copy(void* to, const void* from, std::size_t size, H5FD_file_image_op_t, void*) {
    return std::memcpy(to, from, size);
  }
  static void* reallocate(void*, std::size_t size, H5FD_file_image_op_t, void* self) {
    return static_cast<MemoryImage*>(self)->resize(size);  // the driver's buffer is always `data`
  }
  static herr_t release(void* data, H5FD_file_image_op_t op, void* self) {
    auto& image = *static_cast<MemoryImage*>(self);
    if (op == H5FD_FILE_IMAGE_OP_FILE_CLOSE && data) image.closed.assign(static_cast<char*>(data), image.size);
    std::free(data);
    image.data = nullptr;
    image.size = image.capacity = 0;
    return 0;
  }
  static void* same(void* self) { return self; }
  static herr_t keep(void*) { return 0; }

  void* resize(std::size_t new_size) {
    if (new_size > capacity) {
      const std::size_t grown = std::max(new_size, capacity * 2);
      char* p = static_cast<char*>(std::realloc(data, grown));
      if (!p) return nullptr;
      std::memset(p + capacity, 0, grown - capacity);
      data = p, capacity = grown;
    }
    size = new_size;
    return data;
  }
};

// The HDF5 file of c, built in memory (HDF5's core driver, no file behind it): HDF5 never writes to
// the disk, so a full disk is met by write_file alone, which leaves the previous file in place.
// HDF5 1.8's file format (h5py reads it): its groups keep their links compactly.
std::string hdf5_image(const std::string& path, const Checkpoint& c) {
  MemoryImage memory;
  const H5 fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_fapl_core(fapl.get(), 1, /*backing_store=*/0);
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_V18);
  H5FD_file_image_callbacks_t callbacks{&MemoryImage::allocate,
                                        &MemoryImage::copy,
                                        &MemoryImage::reallocate,
                                        &MemoryImage::release,
                                        &MemoryImage::same,
                                        &MemoryImage::keep,
                                        &memory};
  if (H5Pset_file_image_callbacks(fapl.get(), &callbacks) < 0)
    throw std::runtime_error("checkpoint " + path + ": HDF5 refuses the in-memory file");
  const std::string image_name = "runestone checkpoint image of " + path;
  H5 file(H5Fcreate(image_name.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
  if (!file.ok()) throw std::runtime_error("checkpoint " + path + ": HDF5 cannot create it in memory");
  const Writer w{path, file.get()};
  const hid_t root = file.get();
  w.string_attr(root, "format", kCheckpointFormat);
  w.number_attr<std::int64_t>(root, "format_version", kCheckpointVersion, H5T_NATIVE_INT64);
  w.string_attr(root, "config", c.config);
  w.number_attr<std::int64_t>(root, "epoch", c.epoch, H5T_NATIVE_INT64);
  w.number_attr<std::int64_t>(root, "step", c.step, H5T_NATIVE_INT64);
  w.string_attr(root, "optimizer", c.optimizer);
  w.number_attr<std::int64_t>(root, "optimizer_steps", c.optimizer_steps, H5T_NATIVE_INT64);
  H5Gclose(w.group("params"));
  for (const auto& [name, t] : c.params) w.tensor("params/" + dots_to_slashes(name), t, /*as_float32=*/true);
  H5Gclose(w.group("optimizer"));
  for (const auto& [key, t] : c.optimizer_state) {
    const std::size_t cut = key.rfind('/');
    if (cut == std::string::npos)
      throw std::runtime_error("checkpoint " + path + ": optimizer entry '" + key + "' is not <param>/<slot>");
    w.tensor("optimizer/" + dots_to_slashes(key.substr(0, cut)) + key.substr(cut), t, false);
  }
  {
    const H5 rng(w.group("rng"), H5Gclose);
    for (const auto& [name, state] : c.rng) w.string_attr(rng.get(), name, state);
    const H5 metrics(w.group("metrics"), H5Gclose);
    for (const auto& [name, v] : c.metrics) w.number_attr<double>(metrics.get(), name, v, H5T_NATIVE_DOUBLE);
    const H5 arch(w.group("architecture"), H5Gclose);
    for (const auto& [name, v] : c.architecture) {
      if (const auto* i = std::get_if<std::int64_t>(&v))
        w.number_attr<std::int64_t>(arch.get(), name, *i, H5T_NATIVE_INT64);
      else if (const auto* d = std::get_if<double>(&v))
        w.number_attr<double>(arch.get(), name, *d, H5T_NATIVE_DOUBLE);
      else
        w.string_attr(arch.get(), name, std::get<std::string>(v));
    }
  }
  H5Gclose(w.group("meta"));
  for (const auto& [key, list] : c.meta_strings) w.strings("meta/" + key, list);
  for (const auto& [key, list] : c.meta_numbers)
    w.tensor("meta/" + key, from_vector(list, {static_cast<std::int64_t>(list.size())}), false);
  for (const auto& [key, value] : c.meta_bytes) w.bytes("meta/" + key, value);
  if (file.close_now() < 0 || memory.closed.empty()) w.fail("the file (closing it)");
  return std::move(memory.closed);
}

// The whole file at `path`, or std::runtime_error naming it.
std::string read_bytes(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw std::runtime_error("checkpoint " + path + " does not exist");
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("checkpoint " + path + " cannot be opened: " + std::strerror(errno));
  // read whole (and copied once for HDF5): refused if that cannot fit
  const auto size = static_cast<double>(std::filesystem::file_size(path, ec));
  if (const MemoryLimit limit = available_memory(); !ec && 2 * size > limit.bytes) {
    std::fclose(f);
    throw std::runtime_error("checkpoint " + path + " is refused: reading its " + bytes_text(size) + " needs " +
                             bytes_text(2 * size) + "; " + limit.text);
  }
  std::string bytes;
  if (!ec) bytes.reserve(static_cast<std::size_t>(size));
  char buffer[1 << 16];
  std::size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, f)) > 0) bytes.append(buffer, got);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw std::runtime_error("checkpoint " + path + " cannot be read");
  return bytes;
}

// The HDF5 image inside a checkpoint file's bytes, once its SHA-256 line matches; refuses
// anything else by name, before HDF5 sees a byte of it.
std::string_view verified_image(const std::string& path, const std::string& bytes) {
  const auto refuse = [&](const std::string& why) {
    throw std::runtime_error("checkpoint " + path + " is refused: " + why);
  };
  const bool hdf5 = bytes.compare(0, 8, "\x89HDF\r\n\x1a\n") == 0;
  const std::size_t start = std::strlen(kTrailerStart);
  if (bytes.size() < kTrailerSize || bytes.compare(bytes.size() - kTrailerSize, start, kTrailerStart) != 0 ||
      bytes.back() != '\n')
    refuse(!hdf5 ? "not a Runestone checkpoint (not an HDF5 file; truncated or foreign?)"
                 : "it does not end in its SHA-256 line: truncated, damaged, foreign, or written before checkpoint "
                   "format " +
                       std::to_string(kCheckpointVersion));
  const std::string_view image(bytes.data(), bytes.size() - kTrailerSize);
  const std::string recorded = bytes.substr(bytes.size() - kTrailerSize + start, 64);
  if (sha256_hex(image.data(), image.size()) != recorded)
    refuse("its bytes do not match the SHA-256 it ends in (the file is damaged)");
  if (!hdf5) refuse("its SHA-256 matches but it is not an HDF5 file");
  return image;
}

}  // namespace

void save_checkpoint(const std::string& path, const Checkpoint& c) {
  const QuietErrors quiet;
  const std::string image = hdf5_image(path, c);
  write_file(path, image + trailer(image), "checkpoint");
}

Checkpoint read_checkpoint(const std::string& path) {
  const QuietErrors quiet;
  const std::string bytes = read_bytes(path);
  const std::string_view image = verified_image(path, bytes);
  const H5 fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_fapl_core(fapl.get(), 1 << 20, /*backing_store=*/0);
  H5Pset_file_image(fapl.get(), const_cast<char*>(image.data()), image.size());
  // a name no file has: HDF5's core driver refuses an image whose name exists on the disk
  const std::string name = "runestone checkpoint image of " + path;
  const H5 file(H5Fopen(name.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
  if (!file.ok()) throw std::runtime_error("checkpoint " + path + " is refused: HDF5 cannot open it: " + hdf5_cause());
  const Reader r{path, file.get(), image.size()};
  const hid_t root = file.get();
  if (!r.has_attr(root, "format") || r.string_attr(root, "format") != kCheckpointFormat)
    r.fail("it is not a Runestone checkpoint (no format attribute '" + std::string(kCheckpointFormat) + "')");
  const auto version = r.number_attr<std::int64_t>(root, "format_version", H5T_NATIVE_INT64);
  if (version != kCheckpointVersion)
    r.fail("format version " + std::to_string(version) + ", this build reads version " +
           std::to_string(kCheckpointVersion));
  Checkpoint c;
  c.config = r.string_attr(root, "config");
  c.epoch = r.number_attr<std::int64_t>(root, "epoch", H5T_NATIVE_INT64);
  c.step = r.number_attr<std::int64_t>(root, "step", H5T_NATIVE_INT64);
  c.optimizer = r.string_attr(root, "optimizer");
  c.optimizer_steps = r.number_attr<std::int64_t>(root, "optimizer_steps", H5T_NATIVE_INT64);
  if (H5Lexists(root, "params", H5P_DEFAULT) <= 0) r.fail("no /params group");
  for (const std::string& p : r.datasets_under("params")) {
    Tensor t = r.tensor("params/" + p);
    if (t.dtype() != DType::float32) r.fail("parameter '" + p + "' is not float32");
    c.params.emplace_back(slashes_to_dots(p), t);
  }
  for (const std::string& p : r.datasets_under("optimizer")) {
    const std::size_t cut = p.rfind('/');
    if (cut == std::string::npos) r.fail("optimizer entry '" + p + "' is not <param>/<slot>");
    c.optimizer_state.emplace_back(slashes_to_dots(p.substr(0, cut)) + p.substr(cut), r.tensor("optimizer/" + p));
  }
  for (const char* group : {"rng", "metrics", "architecture"}) {
    if (H5Lexists(root, group, H5P_DEFAULT) <= 0) continue;
    const H5 g(H5Gopen2(root, group, H5P_DEFAULT), H5Gclose);
    if (!g.ok()) r.fail("'" + std::string(group) + "' is not a group");
    for (const std::string& key : r.attr_names(g.get())) {
      if (std::string(group) == "rng") {
        c.rng[key] = r.string_attr(g.get(), key);
      } else if (std::string(group) == "metrics") {
        c.metrics[key] = r.number_attr<double>(g.get(), key, H5T_NATIVE_DOUBLE);
      } else {
        const H5 attr(H5Aopen(g.get(), key.c_str(), H5P_DEFAULT), H5Aclose);
        const H5 type(H5Aget_type(attr.get()), H5Tclose);
        const H5T_class_t cls = H5Tget_class(type.get());
        if (cls == H5T_INTEGER)
          c.architecture[key] = r.number_attr<std::int64_t>(g.get(), key, H5T_NATIVE_INT64);
        else if (cls == H5T_FLOAT)
          c.architecture[key] = r.number_attr<double>(g.get(), key, H5T_NATIVE_DOUBLE);
        else
          c.architecture[key] = r.string_attr(g.get(), key);
      }
    }
  }
  for (const std::string& key : r.datasets_under("meta")) {
    if (r.is_string_dataset("meta/" + key)) {
      c.meta_strings[key] = r.strings("meta/" + key);
    } else if (r.is_bytes_dataset("meta/" + key)) {
      c.meta_bytes[key] = r.bytes("meta/" + key);
    } else {
      const Tensor t = to_dtype(r.tensor("meta/" + key), DType::float64).contiguous();
      c.meta_numbers[key] = std::vector<double>(t.data<double>(), t.data<double>() + t.numel());
    }
  }
  return c;
}

nn::LoadReport load_parameters(nn::Module& module, const Checkpoint& c, const std::string& path, bool strict) {
  // a parameter that is not finite computes nothing sensible: refused, not loaded
  for (const auto& [name, t] : c.params) {
    const Tensor v = t.contiguous();
    const float* data = v.data<float>();
    const auto bad = std::count_if(data, data + v.numel(), [](float x) { return !std::isfinite(x); });
    if (bad > 0)
      throw std::runtime_error("checkpoint " + path + " is refused: parameter " + name + " holds " +
                               std::to_string(bad) + " non-finite value" + (bad > 1 ? "s" : "") + " (of " +
                               std::to_string(v.numel()) + ")");
  }
  try {
    return module.load_state_dict(c.params, strict);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("checkpoint " + path + " does not fit the model: " + e.what());
  }
}

// ------------------------------------------------------------------------- CheckpointManager

CheckpointManager::CheckpointManager(std::string folder, int keep_last, std::string metric, bool higher_is_better)
    : folder_(std::move(folder)),
      metric_(std::move(metric)),
      keep_last_(keep_last),
      higher_is_better_(higher_is_better) {
  if (keep_last < 1) throw std::invalid_argument("CheckpointManager: keep_last must be at least 1");
  std::filesystem::create_directories(folder_);
  // a resumed run continues the bookkeeping of the files already there, and clears what a killed
  // run left: the temporary of a save it did not finish, a numbered file it did not prune yet
  remove_temporaries(folder_);
  for (const auto& entry : std::filesystem::directory_iterator(folder_)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step-", 0) == 0 && entry.path().extension() == ".h5") numbered_.push_back(entry.path().string());
  }
  std::sort(numbered_.begin(), numbered_.end());
  prune();
  const std::string best = folder_ + "/best.h5";
  if (!metric_.empty() && std::filesystem::exists(best)) {
    try {
      const Checkpoint c = read_checkpoint(best);
      if (const auto it = c.metrics.find(metric_); it != c.metrics.end()) {
        best_ = it->second;
        has_best_ = true;
      }
    } catch (const std::exception& e) {
      // the run goes on from its last checkpoint; the next validation makes a new best.h5
      notes_.push_back(std::string(e.what()) + "; the next validation's checkpoint replaces it");
    }
  }
}

void CheckpointManager::prune() {
  while (static_cast<int>(numbered_.size()) > keep_last_) {
    std::error_code ignored;
    std::filesystem::remove(numbered_.front(), ignored);
    numbered_.erase(numbered_.begin());
  }
}

std::string CheckpointManager::save(const Checkpoint& c) {
  char name[64];
  std::snprintf(name, sizeof name, "step-%06lld.h5", static_cast<long long>(c.step));
  const std::string numbered = folder_ + "/" + name;
  save_checkpoint(numbered, c);
  save_checkpoint(folder_ + "/last.h5", c);
  numbered_.erase(std::remove(numbered_.begin(), numbered_.end(), numbered), numbered_.end());
  numbered_.push_back(numbered);
  prune();
  if (!metric_.empty()) {
    const auto it = c.metrics.find(metric_);
    if (it != c.metrics.end() && std::isfinite(it->second) &&
        (!has_best_ || (higher_is_better_ ? it->second >= best_ : it->second <= best_))) {
      best_ = it->second;
      has_best_ = true;
      save_checkpoint(folder_ + "/best.h5", c);
    }
  }
  return numbered;
}

}  // namespace rune::train
