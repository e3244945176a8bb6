#include "vision/image_data.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace rune::vision {
namespace fs = std::filesystem;

ImageSet ImageSet::subset(const std::vector<std::int64_t>& indices) const {
  ImageSet out;
  out.channels = channels;
  out.height = height;
  out.width = width;
  out.classes = classes;
  out.origin = origin;
  out.pixels.resize(indices.size() * static_cast<std::size_t>(image_bytes()));
  out.labels.reserve(indices.size());
  for (std::size_t i = 0; i < indices.size(); ++i) {
    std::copy(image(indices[i]), image(indices[i]) + image_bytes(),
              out.pixels.begin() + static_cast<std::ptrdiff_t>(i) * image_bytes());
    out.labels.push_back(labels[static_cast<std::size_t>(indices[i])]);
  }
  return out;
}

// ------------------------------------------------------------------------- CIFAR-10

namespace {

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open (missing or unreadable)");
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> read_cifar_classes(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open (missing or unreadable); it names CIFAR-10's 10 classes");
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  if (names.size() != 10)
    throw std::runtime_error(path + ": holds " + std::to_string(names.size()) + " class names, CIFAR-10 has 10");
  return names;
}

}  // namespace

ImageSet read_cifar10(const std::string& folder, bool train) {
  ImageSet set;
  set.channels = 3;
  set.height = set.width = 32;
  set.origin = folder;
  set.classes = read_cifar_classes((fs::path(folder) / "batches.meta.txt").string());
  std::vector<std::string> files;
  if (train)
    for (int i = 1; i <= 5; ++i) files.push_back("data_batch_" + std::to_string(i) + ".bin");
  else
    files.push_back("test_batch.bin");
  for (const std::string& name : files) {
    const std::string path = (fs::path(folder) / name).string();
    const std::vector<std::uint8_t> bytes = read_bytes(path);
    if (bytes.empty() || bytes.size() % kCifarRecordBytes != 0)
      throw std::runtime_error(path + ": " + std::to_string(bytes.size()) + " bytes is not a whole number of " +
                               std::to_string(kCifarRecordBytes) +
                               "-byte CIFAR-10 records (truncated or not CIFAR-10)");
    const std::size_t records = bytes.size() / kCifarRecordBytes;
    for (std::size_t r = 0; r < records; ++r) {
      const std::uint8_t* rec = bytes.data() + r * kCifarRecordBytes;
      if (rec[0] >= set.classes.size())
        throw std::runtime_error(path + ": record " + std::to_string(r) + " has label " + std::to_string(rec[0]) +
                                 ", outside 0..9");
      set.labels.push_back(rec[0]);
      set.pixels.insert(set.pixels.end(), rec + 1, rec + kCifarRecordBytes);
    }
  }
  return set;
}

// ------------------------------------------------------------------------- IDX

namespace {

// A whole file through zlib's gz reader, which reads gzip and plain files alike.
std::vector<std::uint8_t> read_maybe_gzipped(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error(path + ": cannot open");
  std::vector<std::uint8_t> out;
  std::uint8_t buf[1 << 16];
  for (;;) {
    const int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int code = 0;
      const std::string message = gzerror(f, &code);
      gzclose(f);
      throw std::runtime_error(path + ": " + message + " (corrupt or truncated gzip)");
    }
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  gzclose(f);
  return out;
}

// <folder>/<name>.gz, else <folder>/<name>.
std::string find_idx(const std::string& folder, const std::string& name) {
  const fs::path gz = fs::path(folder) / (name + ".gz"), plain = fs::path(folder) / name;
  if (fs::exists(gz)) return gz.string();
  if (fs::exists(plain)) return plain.string();
  throw std::runtime_error(
      plain.string() +
      "[.gz]: missing (an IDX folder holds train-images-idx3-ubyte, "
      "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, gzipped or not)");
}

std::uint32_t big_endian(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) << 24 | static_cast<std::uint32_t>(p[1]) << 16 |
         static_cast<std::uint32_t>(p[2]) << 8 | static_cast<std::uint32_t>(p[3]);
}

// The body of an IDX file of unsigned bytes with `dims` dimensions; dimension sizes into `sizes`.
std::vector<std::uint8_t> read_idx_file(const std::string& path, std::uint32_t dims, std::vector<std::int64_t>& sizes) {
  std::vector<std::uint8_t> bytes = read_maybe_gzipped(path);
  const std::size_t header = 4 + 4 * dims;
  if (bytes.size() < header)
    throw std::runtime_error(path + ": " + std::to_string(bytes.size()) + " bytes, shorter than an IDX header");
  const std::uint32_t magic = big_endian(bytes.data()), expected = 0x0800u | dims;
  if (magic != expected) {
    char buf[96];
    std::snprintf(buf, sizeof buf, ": magic number 0x%08X, expected 0x%08X (unsigned bytes, %u dimensions)", magic,
                  expected, dims);
    throw std::runtime_error(path + buf);
  }
  // the body's size, checked: three 32-bit dimensions may multiply past 64 bits
  std::uint64_t body = 1;
  bool overflow = false;
  std::string shape;
  sizes.clear();
  for (std::uint32_t d = 0; d < dims; ++d) {
    sizes.push_back(big_endian(bytes.data() + 4 + 4 * d));
    overflow = __builtin_mul_overflow(body, static_cast<std::uint64_t>(sizes.back()), &body) || overflow;
    shape += (d ? " x " : "") + std::to_string(sizes.back());
  }
  if (overflow)
    throw std::runtime_error(path + ": the header's dimensions " + shape +
                             " promise more than 2^64 bytes (the file has " + std::to_string(bytes.size() - header) +
                             " bytes of data)");
  if (bytes.size() - header != body)
    throw std::runtime_error(path + ": " + std::to_string(bytes.size() - header) +
                             " bytes of data where the header promises " + std::to_string(body) +
                             (bytes.size() - header < body ? " (truncated)" : " (trailing bytes)"));
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header));
  return bytes;
}

}  // namespace

ImageSet read_idx(const std::string& folder, bool train, const std::vector<std::string>& classes) {
  const std::string prefix = train ? "train" : "t10k";
  const std::string images_path = find_idx(folder, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_idx(folder, prefix + "-labels-idx1-ubyte");
  std::vector<std::int64_t> image_sizes, label_sizes;
  ImageSet set;
  set.origin = images_path;
  set.classes = classes;
  set.pixels = read_idx_file(images_path, 3, image_sizes);
  set.labels = read_idx_file(labels_path, 1, label_sizes);
  if (image_sizes[0] != label_sizes[0])
    throw std::runtime_error(images_path + " holds " + std::to_string(image_sizes[0]) + " images but " + labels_path +
                             " holds " + std::to_string(label_sizes[0]) + " labels");
  if (image_sizes[0] == 0) throw std::runtime_error(images_path + ": no images");
  if (image_sizes[1] == 0 || image_sizes[2] == 0)
    throw std::runtime_error(images_path + ": the header's images are " + std::to_string(image_sizes[1]) + " x " +
                             std::to_string(image_sizes[2]) + " pixels (rows and columns must be positive)");
  set.channels = 1;
  set.height = image_sizes[1];
  set.width = image_sizes[2];
  for (std::size_t i = 0; i < set.labels.size(); ++i)
    if (set.labels[i] >= classes.size())
      throw std::runtime_error(labels_path + ": label " + std::to_string(set.labels[i]) + " of item " +
                               std::to_string(i) + " is outside the " + std::to_string(classes.size()) + " classes");
  return set;
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

const std::vector<std::string>& mnist_classes() {
  static const std::vector<std::string> names{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  return names;
}

// ------------------------------------------------------------------------- transforms

ChannelStats channel_stats(const ImageSet& set) {
  const std::int64_t C = set.channels, HW = set.height * set.width;
  ChannelStats s;
  for (std::int64_t c = 0; c < C; ++c) {
    double sum = 0, sq = 0;
    for (std::int64_t i = 0; i < set.size(); ++i) {
      const std::uint8_t* p = set.image(i) + c * HW;
      std::uint64_t a = 0, b = 0;  // exact integer sums per image
      for (std::int64_t k = 0; k < HW; ++k) {
        a += p[k];
        b += static_cast<std::uint64_t>(p[k]) * p[k];
      }
      sum += static_cast<double>(a);
      sq += static_cast<double>(b);
    }
    const double n = static_cast<double>(set.size() * HW);
    const double mean = sum / n / 255.0;
    s.mean.push_back(mean);
    s.std.push_back(std::sqrt(std::max(sq / n / (255.0 * 255.0) - mean * mean, 1e-12)));
  }
  return s;
}

Resize resize_from_name(const std::string& name) {
  if (name == "none") return Resize::none;
  if (name == "pad") return Resize::pad;
  if (name == "upsample") return Resize::upsample;
  throw std::invalid_argument("resize '" + name + "' is not one of none, pad, upsample");
}

namespace {

// One image, augmented, at its native size, as floats in [0, 255] (C, H, W) into `out`.
void crop_and_flip(const ImageSet& set, std::int64_t index, const ImageTransform& t, bool augment, Generator* gen,
                   float* out) {
  const std::int64_t C = set.channels, H = set.height, W = set.width, P = t.crop_padding;
  std::int64_t dy = 0, dx = 0;  // the crop's offset into the padded image, minus the padding
  bool flip = false;
  if (augment) {
    if (P > 0) {
      dy = static_cast<std::int64_t>(gen->below(static_cast<std::uint64_t>(2 * P + 1))) - P;
      dx = static_cast<std::int64_t>(gen->below(static_cast<std::uint64_t>(2 * P + 1))) - P;
    }
    if (t.hflip) flip = gen->below(2) == 1;
  }
  const std::uint8_t* src = set.image(index);
  for (std::int64_t c = 0; c < C; ++c)
    for (std::int64_t y = 0; y < H; ++y) {
      const std::int64_t sy = y + dy;
      for (std::int64_t x = 0; x < W; ++x) {
        const std::int64_t sx = (flip ? W - 1 - x : x) + dx;
        out[(c * H + y) * W + x] =
            sy < 0 || sy >= H || sx < 0 || sx >= W ? 0.0f : static_cast<float>(src[(c * H + sy) * W + sx]);
      }
    }
}

// (C, H, W) -> (C, S, S): centre padding with black, or bilinear as F.interpolate(align_corners=False).
void resize_to(const float* in, std::int64_t C, std::int64_t H, std::int64_t W, std::int64_t S, Resize mode,
               float* out) {
  if (S == H && S == W) {
    std::copy(in, in + C * H * W, out);
    return;
  }
  if (mode == Resize::pad) {
    const std::int64_t top = (S - H) / 2, left = (S - W) / 2;
    std::fill(out, out + C * S * S, 0.0f);
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t y = 0; y < H; ++y)
        std::copy(in + (c * H + y) * W, in + (c * H + y + 1) * W, out + (c * S + y + top) * S + left);
    return;
  }
  const auto source = [](std::int64_t d, std::int64_t n_in, std::int64_t n_out, std::int64_t& i0, std::int64_t& i1,
                         float& f) {
    const double s =
        std::max(0.0, (static_cast<double>(d) + 0.5) * static_cast<double>(n_in) / static_cast<double>(n_out) - 0.5);
    i0 = std::min<std::int64_t>(static_cast<std::int64_t>(s), n_in - 1);
    i1 = std::min<std::int64_t>(i0 + 1, n_in - 1);
    f = static_cast<float>(s - static_cast<double>(i0));
  };
  for (std::int64_t y = 0; y < S; ++y) {
    std::int64_t y0, y1;
    float fy;
    source(y, H, S, y0, y1, fy);
    for (std::int64_t x = 0; x < S; ++x) {
      std::int64_t x0, x1;
      float fx;
      source(x, W, S, x0, x1, fx);
      for (std::int64_t c = 0; c < C; ++c) {
        const float* p = in + c * H * W;
        const float top = p[y0 * W + x0] * (1 - fx) + p[y0 * W + x1] * fx;
        const float bottom = p[y1 * W + x0] * (1 - fx) + p[y1 * W + x1] * fx;
        out[(c * S + y) * S + x] = top * (1 - fy) + bottom * fy;
      }
    }
  }
}

std::int64_t target_size(const ImageSet& set, const ImageTransform& t) {
  const std::int64_t S = t.size > 0 ? t.size : set.height;
  if (S == set.height && S == set.width) return S;
  if (S < std::max(set.height, set.width))
    throw std::invalid_argument("image size " + std::to_string(S) + " is smaller than the data's " +
                                std::to_string(set.height) + "x" + std::to_string(set.width) + " images");
  if (t.resize == Resize::none)
    throw std::invalid_argument("image size " + std::to_string(S) + " differs from the data's " +
                                std::to_string(set.height) + "x" + std::to_string(set.width) +
                                ": choose resize = \"pad\" or \"upsample\"");
  return S;
}

}  // namespace

ImageBatch make_batch(const ImageSet& set, const std::vector<std::int64_t>& indices, const ImageTransform& t,
                      bool augment, Generator* gen) {
  if (augment && !gen) throw std::invalid_argument("make_batch: augmentation needs a generator");
  const std::int64_t C = set.channels, H = set.height, W = set.width, S = target_size(set, t);
  if (static_cast<std::int64_t>(t.stats.mean.size()) != C || static_cast<std::int64_t>(t.stats.std.size()) != C)
    throw std::invalid_argument("make_batch: channel statistics for " + std::to_string(t.stats.mean.size()) +
                                " channels, the images have " + std::to_string(C));
  const auto B = static_cast<std::int64_t>(indices.size());
  Tensor images = empty({B, C, S, S});
  std::vector<std::int64_t> labels(indices.size());
  std::vector<float> native(static_cast<std::size_t>(C * H * W));
  float* dst = images.data<float>();
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t i = indices[static_cast<std::size_t>(b)];
    if (i < 0 || i >= set.size())
      throw std::out_of_range("make_batch: image " + std::to_string(i) + " of " + std::to_string(set.size()));
    crop_and_flip(set, i, t, augment, gen, native.data());
    float* img = dst + b * C * S * S;
    resize_to(native.data(), C, H, W, S, t.resize, img);
    for (std::int64_t c = 0; c < C; ++c) {
      // x = (v / 255 - mean) / std
      const float scale = static_cast<float>(1.0 / (255.0 * t.stats.std[c]));
      const float shift = static_cast<float>(t.stats.mean[c] / t.stats.std[c]);
      for (std::int64_t k = 0; k < S * S; ++k) img[c * S * S + k] = img[c * S * S + k] * scale - shift;
    }
    labels[static_cast<std::size_t>(b)] = set.labels[static_cast<std::size_t>(i)];
  }
  return {images, from_vector(labels, {B})};
}

ImageSet resampled(const ImageSet& set, std::int64_t size) {
  ImageSet out = set;
  out.height = out.width = size;
  out.pixels.resize(static_cast<std::size_t>(set.size() * set.channels * size * size));
  std::vector<float> in(static_cast<std::size_t>(set.image_bytes())),
      resized(static_cast<std::size_t>(set.channels * size * size));
  for (std::int64_t i = 0; i < set.size(); ++i) {
    std::copy(set.image(i), set.image(i) + set.image_bytes(), in.begin());
    resize_to(in.data(), set.channels, set.height, set.width, size, Resize::upsample, resized.data());
    for (std::size_t k = 0; k < resized.size(); ++k)
      out.pixels[static_cast<std::size_t>(i) * resized.size() + k] =
          static_cast<std::uint8_t>(std::clamp(std::lround(resized[k]), 0L, 255L));
  }
  return out;
}

std::vector<std::uint8_t> resized_image(const ImageSet& set, std::int64_t index, const ImageTransform& t) {
  const std::int64_t C = set.channels, S = target_size(set, t);
  std::vector<float> native(static_cast<std::size_t>(set.image_bytes())), out(static_cast<std::size_t>(C * S * S));
  crop_and_flip(set, index, t, false, nullptr, native.data());
  resize_to(native.data(), C, set.height, set.width, S, t.resize, out.data());
  std::vector<std::uint8_t> bytes(out.size());
  for (std::size_t k = 0; k < out.size(); ++k)
    bytes[k] = static_cast<std::uint8_t>(std::clamp(std::lround(out[k]), 0L, 255L));
  return bytes;
}

}  // namespace rune::vision
