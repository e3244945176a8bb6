// Test data for the ViT example: synthetic labelled images whose class a small model can learn,
// written in CIFAR-10's binary format and in IDX files, byte for byte as the real data sets are.
#pragma once

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/random.hpp"
#include "vision/image_data.hpp"

namespace rune::vision::testdata {

inline const std::vector<std::string>& cifar10_classes() {
  static const std::vector<std::string> names{"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};
  return names;
}

// n images (C, S, S) with labels in 0..K-1: noise, plus a bright band of rows whose position
// gives the class (the class is learnable from a few patches).
inline ImageSet synthetic_images(std::int64_t n, std::int64_t C, std::int64_t S, std::int64_t K, std::uint64_t seed) {
  ImageSet set;
  set.channels = C;
  set.height = set.width = S;
  for (std::int64_t k = 0; k < K; ++k) set.classes.push_back("class " + std::to_string(k));
  Generator g(seed);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto label = static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(K)));
    set.labels.push_back(static_cast<std::uint8_t>(label));
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t y = 0; y < S; ++y)
        for (std::int64_t x = 0; x < S; ++x) {
          const bool band = y * K / S == label;
          set.pixels.push_back(static_cast<std::uint8_t>(g.below(60) + (band ? 170 : 0)));
        }
  }
  return set;
}

// A CIFAR-10 folder: `set` (3 x 32 x 32) as each of data_batch_1..5.bin, its first `test`
// images as test_batch.bin, and batches.meta.txt with the 10 class names and a blank line.
inline void write_cifar10(const std::string& dir, const ImageSet& set, std::int64_t test) {
  if (set.channels != 3 || set.height != 32 || set.width != 32)
    throw std::invalid_argument("write_cifar10: not 3x32x32");
  std::filesystem::create_directories(dir);
  const auto write = [&](const std::string& name, std::int64_t count) {
    std::ofstream out(std::filesystem::path(dir) / name, std::ios::binary | std::ios::trunc);
    for (std::int64_t i = 0; i < count; ++i) {
      out.put(static_cast<char>(set.labels[static_cast<std::size_t>(i)]));
      out.write(reinterpret_cast<const char*>(set.image(i)), set.image_bytes());
    }
  };
  for (int b = 1; b <= 5; ++b) write("data_batch_" + std::to_string(b) + ".bin", set.size());
  write("test_batch.bin", test);
  std::ofstream meta(std::filesystem::path(dir) / "batches.meta.txt");
  for (const std::string& name : cifar10_classes()) meta << name << "\n";
  meta << "\n";
}

// An IDX folder: train-/t10k- images (magic 0x803) and labels (magic 0x801), gzipped or not.
inline void write_idx(const std::string& dir, const ImageSet& train, const ImageSet& test, bool gz) {
  std::filesystem::create_directories(dir);
  const auto put = [&](const std::string& name, const std::vector<std::int64_t>& dims,
                       const std::vector<std::uint8_t>& body) {
    std::string bytes;
    const auto be = [&](std::uint32_t v) {
      for (int s = 24; s >= 0; s -= 8) bytes.push_back(static_cast<char>((v >> s) & 0xFF));
    };
    be(0x0800u | static_cast<std::uint32_t>(dims.size()));
    for (std::int64_t d : dims) be(static_cast<std::uint32_t>(d));
    bytes.append(body.begin(), body.end());
    const std::filesystem::path plain = std::filesystem::path(dir) / name, zipped = plain.string() + ".gz";
    std::filesystem::remove(plain);
    std::filesystem::remove(zipped);
    if (gz) {
      gzFile f = gzopen(zipped.c_str(), "wb");
      gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
      gzclose(f);
    } else {
      std::ofstream(plain, std::ios::binary) << bytes;
    }
  };
  for (const auto& [prefix, set] : {std::pair<std::string, const ImageSet*>{"train", &train}, {"t10k", &test}}) {
    put(prefix + "-images-idx3-ubyte", {set->size(), set->height, set->width}, set->pixels);
    put(prefix + "-labels-idx1-ubyte", {set->size()}, set->labels);
  }
}

// The tasks' small test data: 480 training and 120 test 12x12 grey images of 4 classes, gzipped
// IDX files in `dir`.
inline void write_small_idx(const std::string& dir) {
  write_idx(dir, synthetic_images(480, 1, 12, 4, 1), synthetic_images(120, 1, 12, 4, 2), true);
}

}  // namespace rune::vision::testdata
