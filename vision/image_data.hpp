// Image data sets as bytes: CIFAR-10's binary files and IDX files (MNIST, Fashion-MNIST), and the
// transforms that turn them into normalised float batches (per-channel statistics, random crop
// with padding, horizontal flip, padding or upsampling to the model's size).
//
// Legend: N images, C channels, H x W pixels, S the model's (square) input size, B batch.
//
// CIFAR-10 (https://www.cs.toronto.edu/~kriz/cifar.html, "binary version"): data_batch_1.bin ..
// data_batch_5.bin (training), test_batch.bin (test), each a sequence of 3,073-byte records:
// 1 label byte (0..9), then 1,024 red, 1,024 green and 1,024 blue bytes, rows top to bottom;
// batches.meta.txt holds the 10 class names, one per line.
// IDX (http://yann.lecun.com/exdb/mnist/): train-images-idx3-ubyte, train-labels-idx1-ubyte,
// t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally gzipped (.gz). Big-endian
// header: magic 0x00000803 (images: count, rows, columns) or 0x00000801 (labels: count).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"

namespace rune::vision {

struct ImageSet {
  std::int64_t channels = 0, height = 0, width = 0;
  std::vector<std::uint8_t> pixels;  // (N, C, H, W)
  std::vector<std::uint8_t> labels;  // (N)
  std::vector<std::string> classes;  // class names, labels index them
  std::string origin;                // the images' file (IDX) or folder (CIFAR-10), for messages

  std::int64_t size() const { return static_cast<std::int64_t>(labels.size()); }
  std::int64_t image_bytes() const { return channels * height * width; }
  const std::uint8_t* image(std::int64_t i) const { return pixels.data() + i * image_bytes(); }
  // The images at `indices`, in that order, as a new set (same classes).
  ImageSet subset(const std::vector<std::int64_t>& indices) const;
};

inline constexpr std::int64_t kCifarRecordBytes = 1 + 3 * 32 * 32;

// The training (data_batch_1..5.bin) or test (test_batch.bin) split of a CIFAR-10 folder, with
// its class names. Throws std::runtime_error naming the file: missing, a size that is not a
// whole number of records, a label outside the class list, a class list without 10 names.
ImageSet read_cifar10(const std::string& folder, bool train);

// The training (train-*) or test (t10k-*) split of an IDX folder, gzipped or not; `classes`
// names the labels (every label must index it). Throws naming the file: missing, a bad magic
// number, a truncated or overlong body, image and label counts that differ, a label out of range.
ImageSet read_idx(const std::string& folder, bool train, const std::vector<std::string>& classes);

// Class names of the data sets the IDX reader is used for.
const std::vector<std::string>& fashion_mnist_classes();
const std::vector<std::string>& mnist_classes();

// Per-channel mean and standard deviation of the pixels scaled to [0, 1] (population std).
struct ChannelStats {
  std::vector<double> mean, std;
};
ChannelStats channel_stats(const ImageSet& set);

// How a set's images become model inputs.
enum class Resize { none, pad, upsample };  // to S: none (S is the native size), centre-pad, bilinear
struct ImageTransform {
  std::int64_t size = 0;          // S, the model's input size (0: the native size)
  Resize resize = Resize::none;   // for S larger than the native size
  ChannelStats stats;             // from the training split
  std::int64_t crop_padding = 0;  // training: random crop of the native size from the image padded by this
  bool hflip = false;             // training: flip horizontally with probability 1/2
};
Resize resize_from_name(const std::string& name);  // "none", "pad", "upsample"

// A batch of `indices` of `set` as (B, C, S, S) float32, normalised; with `augment`, each image
// draws its crop and flip from `gen` (the same generator state gives the same batch). Labels as
// int64 (B).
struct ImageBatch {
  Tensor images, labels;
};
ImageBatch make_batch(const ImageSet& set, const std::vector<std::int64_t>& indices, const ImageTransform& transform,
                      bool augment, Generator* gen);

// Every image resampled bilinearly to size x size, up or down (images from elsewhere: a PNG).
ImageSet resampled(const ImageSet& set, std::int64_t size);

// One image as the model sees it before normalisation: RGB or grey bytes (C, S, S) after the
// transform's resize, for drawing.
std::vector<std::uint8_t> resized_image(const ImageSet& set, std::int64_t index, const ImageTransform& transform);

}  // namespace rune::vision
