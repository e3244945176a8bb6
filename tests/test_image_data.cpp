// The image readers and transforms of the ViT example: CIFAR-10 binary files and IDX files (plain
// and gzipped) written here in exactly their formats and read back, every refusal naming its file,
// channel statistics, normalisation, seeded crop-and-flip augmentation, padding and bilinear resize.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "tests/helpers.hpp"
#include "tests/image_files.hpp"
#include "vision/image_data.hpp"

namespace rune::vision {
namespace {

namespace fs = std::filesystem;

fs::path scratch(const std::string& name) { return scratch_dir("images_" + name); }

TEST(ImageData, ReadsCifar10RecordsChannelMajor) {
  const fs::path dir = scratch("cifar");
  const ImageSet made = testdata::synthetic_images(17, 3, 32, 10, 5);
  testdata::write_cifar10(dir.string(), made, 6);
  const ImageSet train = read_cifar10(dir.string(), true), test = read_cifar10(dir.string(), false);
  ASSERT_EQ(train.size(), 5 * 17);
  ASSERT_EQ(test.size(), 6);
  EXPECT_EQ(train.channels, 3);
  EXPECT_EQ(train.height, 32);
  EXPECT_EQ(train.classes, testdata::cifar10_classes());
  // batch b holds the made images in order; record layout is label, R plane, G plane, B plane
  for (std::int64_t b = 0; b < 5; ++b)
    for (std::int64_t i = 0; i < 17; ++i) {
      EXPECT_EQ(train.labels[static_cast<std::size_t>(b * 17 + i)], made.labels[static_cast<std::size_t>(i)]);
      ASSERT_TRUE(std::equal(made.image(i), made.image(i) + made.image_bytes(), train.image(b * 17 + i)));
    }
  // the bytes on disk: record 1 of data_batch_1.bin starts with its label, then red pixel (0, 0)
  std::ifstream in(dir / "data_batch_1.bin", std::ios::binary);
  std::vector<char> rec(static_cast<std::size_t>(kCifarRecordBytes) * 2);
  in.read(rec.data(), static_cast<std::streamsize>(rec.size()));
  EXPECT_EQ(static_cast<std::uint8_t>(rec[kCifarRecordBytes]), made.labels[1]);
  EXPECT_EQ(static_cast<std::uint8_t>(rec[kCifarRecordBytes + 1]), made.image(1)[0]);
  EXPECT_EQ(static_cast<std::uint8_t>(rec[kCifarRecordBytes + 1 + 1024]), made.image(1)[1024]);  // green (0, 0)
  fs::remove_all(dir);
}

TEST(ImageData, RefusesBrokenCifar10FilesByName) {
  const fs::path dir = scratch("cifar_bad");
  testdata::write_cifar10(dir.string(), testdata::synthetic_images(4, 3, 32, 10, 1), 4);
  // a missing batch
  fs::remove(dir / "data_batch_3.bin");
  std::string e = error_of([&] { read_cifar10(dir.string(), true); });
  EXPECT_NE(e.find("data_batch_3.bin"), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
  testdata::write_cifar10(dir.string(), testdata::synthetic_images(4, 3, 32, 10, 1), 4);
  // truncated: a record cut short
  fs::resize_file(dir / "test_batch.bin", 4 * kCifarRecordBytes - 100);
  e = error_of([&] { read_cifar10(dir.string(), false); });
  EXPECT_NE(e.find("test_batch.bin"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  // a label outside 0..9
  testdata::write_cifar10(dir.string(), testdata::synthetic_images(4, 3, 32, 10, 1), 4);
  {
    std::fstream f(dir / "data_batch_2.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(kCifarRecordBytes * 2);
    f.put(static_cast<char>(12));
  }
  e = error_of([&] { read_cifar10(dir.string(), true); });
  EXPECT_NE(e.find("data_batch_2.bin: record 2 has label 12"), std::string::npos) << e;
  // class names: missing, or not ten
  std::ofstream(dir / "batches.meta.txt") << "airplane\nautomobile\n\n";
  e = error_of([&] { read_cifar10(dir.string(), false); });
  EXPECT_NE(e.find("batches.meta.txt: holds 2 class names"), std::string::npos) << e;
  fs::remove(dir / "batches.meta.txt");
  e = error_of([&] { read_cifar10(dir.string(), false); });
  EXPECT_NE(e.find("batches.meta.txt"), std::string::npos) << e;
  fs::remove_all(dir);
}

TEST(ImageData, ReadsIdxFilesGzippedOrNot) {
  for (const bool gz : {true, false}) {
    const fs::path dir = scratch(gz ? "idx_gz" : "idx");
    const ImageSet train = testdata::synthetic_images(23, 1, 28, 10, 2),
                   test = testdata::synthetic_images(7, 1, 28, 10, 3);
    testdata::write_idx(dir.string(), train, test, gz);
    EXPECT_EQ(fs::exists(dir / "train-images-idx3-ubyte.gz"), gz);
    const ImageSet a = read_idx(dir.string(), true, fashion_mnist_classes());
    const ImageSet b = read_idx(dir.string(), false, fashion_mnist_classes());
    EXPECT_EQ(a.size(), 23);
    EXPECT_EQ(b.size(), 7);
    EXPECT_EQ(a.channels, 1);
    EXPECT_EQ(a.height, 28);
    EXPECT_EQ(a.width, 28);
    EXPECT_EQ(a.pixels, train.pixels);
    EXPECT_EQ(a.labels, train.labels);
    EXPECT_EQ(b.pixels, test.pixels);
    EXPECT_EQ(a.classes[9], "Ankle boot");
    fs::remove_all(dir);
  }
}

TEST(ImageData, RefusesBrokenIdxFilesByName) {
  const fs::path dir = scratch("idx_bad");
  const ImageSet train = testdata::synthetic_images(5, 1, 28, 10, 2),
                 test = testdata::synthetic_images(3, 1, 28, 10, 3);
  testdata::write_idx(dir.string(), train, test, false);
  const auto error = [&](bool is_train) {
    return error_of([&] { read_idx(dir.string(), is_train, mnist_classes()); });
  };
  // missing
  fs::remove(dir / "t10k-labels-idx1-ubyte");
  std::string e = error(false);
  EXPECT_NE(e.find("t10k-labels-idx1-ubyte"), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
  // a wrong magic number (an images file where labels belong)
  fs::copy_file(dir / "t10k-images-idx3-ubyte", dir / "t10k-labels-idx1-ubyte");
  e = error(false);
  EXPECT_NE(e.find("t10k-labels-idx1-ubyte: magic number 0x00000803, expected 0x00000801"), std::string::npos) << e;
  // truncated and overlong
  testdata::write_idx(dir.string(), train, test, false);
  fs::resize_file(dir / "train-images-idx3-ubyte", 16 + 5 * 784 - 1);
  e = error(true);
  EXPECT_NE(e.find("train-images-idx3-ubyte: 3919 bytes of data where the header promises 3920 (truncated)"),
            std::string::npos)
      << e;
  testdata::write_idx(dir.string(), train, test, false);
  std::ofstream(dir / "train-labels-idx1-ubyte", std::ios::app) << 'x';
  EXPECT_NE(error(true).find("(trailing bytes)"), std::string::npos);
  // counts that differ between images and labels
  testdata::write_idx(dir.string(), train, testdata::synthetic_images(4, 1, 28, 10, 3), false);
  const ImageSet other = testdata::synthetic_images(3, 1, 28, 10, 3);
  testdata::write_idx(dir.string() + "/other", other, other, false);
  fs::copy_file(dir / "other" / "t10k-labels-idx1-ubyte", dir / "t10k-labels-idx1-ubyte",
                fs::copy_options::overwrite_existing);
  e = error(false);
  EXPECT_NE(e.find("holds 4 images but"), std::string::npos) << e;
  EXPECT_NE(e.find("holds 3 labels"), std::string::npos) << e;
  // a label past the class list
  ImageSet bad = testdata::synthetic_images(3, 1, 28, 10, 3);
  bad.labels[1] = 10;
  testdata::write_idx(dir.string(), train, bad, false);
  e = error(false);
  EXPECT_NE(e.find("t10k-labels-idx1-ubyte: label 10 of item 1 is outside the 10 classes"), std::string::npos) << e;
  // a corrupt gzip stream
  testdata::write_idx(dir.string(), train, test, true);
  fs::resize_file(dir / "train-images-idx3-ubyte.gz", fs::file_size(dir / "train-images-idx3-ubyte.gz") / 2);
  e = error(true);
  EXPECT_NE(e.find("train-images-idx3-ubyte.gz"), std::string::npos) << e;
  fs::remove_all(dir);
}

// An IDX header whose dimensions multiply past 64 bits (wrapping to the file's size) and one of
// 0-pixel images are refused naming the file and the header's dimensions.
TEST(ImageData, RefusesIdxHeadersOfImpossibleSizesByName) {
  const fs::path dir = scratch("idx_sizes");
  const ImageSet set = testdata::synthetic_images(4, 1, 8, 10, 2);
  const auto header = [](const std::vector<std::uint32_t>& dims) {  // magic 0x08NN, then each dimension
    std::string bytes;
    const auto be = [&](std::uint32_t v) {
      for (int s = 24; s >= 0; s -= 8) bytes.push_back(static_cast<char>((v >> s) & 0xFF));
    };
    be(0x0800u | static_cast<std::uint32_t>(dims.size()));
    for (const std::uint32_t d : dims) be(d);
    return bytes;
  };
  // 2^22 images of 2^21 x 2^21 pixels: 2^64 bytes, which wraps to the 0 bytes the file holds
  testdata::write_idx(dir.string(), set, set, false);
  std::ofstream(dir / "train-images-idx3-ubyte", std::ios::binary) << header({1u << 22, 1u << 21, 1u << 21});
  {
    std::ofstream labels(dir / "train-labels-idx1-ubyte", std::ios::binary);
    labels << header({1u << 22});
    labels << std::string(1u << 22, '\0');
  }
  std::string e = error_of([&] { read_idx(dir.string(), true, mnist_classes()); });
  EXPECT_NE(e.find("train-images-idx3-ubyte: the header's dimensions 4194304 x 2097152 x 2097152 promise more than "
                   "2^64 bytes (the file has 0 bytes of data)"),
            std::string::npos)
      << e;
  // images of 0 x 8 pixels
  testdata::write_idx(dir.string(), set, set, false);
  std::ofstream(dir / "t10k-images-idx3-ubyte", std::ios::binary) << header({4, 0, 8});
  e = error_of([&] { read_idx(dir.string(), false, mnist_classes()); });
  EXPECT_NE(e.find("t10k-images-idx3-ubyte: the header's images are 0 x 8 pixels"), std::string::npos) << e;
  fs::remove_all(dir);
}

TEST(ImageData, ChannelStatisticsAndNormalisation) {
  const ImageSet set = testdata::synthetic_images(9, 3, 8, 4, 7);
  const ChannelStats s = channel_stats(set);
  ASSERT_EQ(s.mean.size(), 3u);
  for (std::int64_t c = 0; c < 3; ++c) {
    double sum = 0, sq = 0, n = 0;
    for (std::int64_t i = 0; i < set.size(); ++i)
      for (std::int64_t k = 0; k < 64; ++k) {
        const double v = set.image(i)[c * 64 + k] / 255.0;
        sum += v;
        sq += v * v;
        ++n;
      }
    EXPECT_NEAR(s.mean[static_cast<std::size_t>(c)], sum / n, 1e-12);
    EXPECT_NEAR(s.std[static_cast<std::size_t>(c)], std::sqrt(sq / n - (sum / n) * (sum / n)), 1e-9);
  }
  ImageTransform t;
  t.stats = s;
  const ImageBatch b = make_batch(set, {4, 0}, t, false, nullptr);
  EXPECT_EQ(b.images.shape(), (Shape{2, 3, 8, 8}));
  EXPECT_EQ(values(b.labels),
            (std::vector<double>{static_cast<double>(set.labels[4]), static_cast<double>(set.labels[0])}));
  const std::vector<double> x = values(b.images);
  for (std::int64_t c = 0; c < 3; ++c)
    for (std::int64_t k = 0; k < 64; ++k) {
      const double expected =
          (set.image(4)[c * 64 + k] / 255.0 - s.mean[static_cast<std::size_t>(c)]) / s.std[static_cast<std::size_t>(c)];
      ASSERT_NEAR(x[static_cast<std::size_t>(c * 64 + k)], expected, 1e-5);
    }
}

// Each augmented image is the original shifted by (dy, dx) in [-P, P] (zeros shifted in) and
// maybe mirrored: find the shift that explains it.
bool explained_by_shift(const ImageSet& set, std::int64_t i, const std::vector<double>& out, const ImageTransform& t,
                        bool allow_flip, bool& flipped) {
  const std::int64_t C = set.channels, S = set.height, P = t.crop_padding;
  for (const bool flip : {false, true}) {
    if (flip && !allow_flip) continue;
    for (std::int64_t dy = -P; dy <= P; ++dy)
      for (std::int64_t dx = -P; dx <= P; ++dx) {
        bool same = true;
        for (std::int64_t c = 0; c < C && same; ++c)
          for (std::int64_t y = 0; y < S && same; ++y)
            for (std::int64_t x = 0; x < S && same; ++x) {
              const std::int64_t sy = y + dy, sx = (flip ? S - 1 - x : x) + dx;
              const double raw = sy < 0 || sy >= S || sx < 0 || sx >= S ? 0.0 : set.image(i)[(c * S + sy) * S + sx];
              const double v =
                  (raw / 255.0 - t.stats.mean[static_cast<std::size_t>(c)]) / t.stats.std[static_cast<std::size_t>(c)];
              same = std::abs(out[static_cast<std::size_t>((c * S + y) * S + x)] - v) < 1e-4;
            }
        if (same) {
          flipped = flip;
          return true;
        }
      }
  }
  return false;
}

TEST(ImageData, AugmentationIsASeededShiftAndFlip) {
  const ImageSet set = testdata::synthetic_images(16, 3, 12, 4, 11);
  ImageTransform t;
  t.stats = channel_stats(set);
  t.crop_padding = 2;
  t.hflip = true;
  std::vector<std::int64_t> all(16);
  for (std::int64_t i = 0; i < 16; ++i) all[static_cast<std::size_t>(i)] = i;
  Generator g1(5), g2(5), g3(6);
  const ImageBatch a = make_batch(set, all, t, true, &g1), b = make_batch(set, all, t, true, &g2),
                   c = make_batch(set, all, t, true, &g3);
  EXPECT_EQ(max_abs_diff(a.images, b.images), 0.0);  // the same generator state, the same batch
  EXPECT_GT(max_abs_diff(a.images, c.images), 0.1);
  const std::vector<double> x = values(a.images);
  int flips = 0, unchanged = 0;
  const std::int64_t per = 3 * 12 * 12;
  for (std::int64_t i = 0; i < 16; ++i) {
    const std::vector<double> one(x.begin() + i * per, x.begin() + (i + 1) * per);
    bool flipped = false;
    ASSERT_TRUE(explained_by_shift(set, i, one, t, true, flipped)) << "image " << i;
    flips += flipped;
    unchanged +=
        max_abs_diff(from_vector(one, {per}), reshape(make_batch(set, {i}, t, false, nullptr).images, {per})) == 0.0;
  }
  EXPECT_GT(flips, 0);
  EXPECT_LT(flips, 16);
  EXPECT_LT(unchanged, 8);
  // without hflip, never mirrored
  t.hflip = false;
  Generator g4(9);
  const std::vector<double> y = values(make_batch(set, all, t, true, &g4).images);
  for (std::int64_t i = 0; i < 16; ++i) {
    bool flipped = true;
    ASSERT_TRUE(explained_by_shift(set, i, std::vector<double>(y.begin() + i * per, y.begin() + (i + 1) * per), t,
                                   false, flipped));
    EXPECT_FALSE(flipped);
  }
}

TEST(ImageData, PadsToTheCentreAndUpsamplesBilinearly) {
  // one grey 4x4 image whose pixels are 10 * (2 y + x): a linear ramp
  ImageSet set;
  set.channels = 1;
  set.height = set.width = 4;
  set.classes = {"a"};
  set.labels = {0};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) set.pixels.push_back(static_cast<std::uint8_t>(10 * (2 * y + x)));
  ImageTransform t;
  t.stats = {{0.0}, {1.0 / 255.0}};  // normalised value = the byte
  t.size = 8;
  t.resize = Resize::pad;
  std::vector<double> x = values(make_batch(set, {0}, t, false, nullptr).images);
  for (int y = 0; y < 8; ++y)
    for (int c = 0; c < 8; ++c) {
      const bool inside = y >= 2 && y < 6 && c >= 2 && c < 6;
      EXPECT_EQ(x[static_cast<std::size_t>(y * 8 + c)], inside ? 10.0 * (2 * (y - 2) + (c - 2)) : 0.0) << y << "," << c;
    }
  // F.interpolate(bilinear, align_corners=False): source coordinate (d + 0.5) / 2 - 0.5, clamped
  // to the image; a linear ramp stays linear inside and flat past the edge pixels' centres
  t.resize = Resize::upsample;
  x = values(make_batch(set, {0}, t, false, nullptr).images);
  const auto src = [](int d) { return std::clamp((d + 0.5) / 2 - 0.5, 0.0, 3.0); };
  for (int y = 0; y < 8; ++y)
    for (int c = 0; c < 8; ++c) EXPECT_NEAR(x[static_cast<std::size_t>(y * 8 + c)], 10.0 * (2 * src(y) + src(c)), 1e-4);
  // the bytes a drawing gets, and resampling down again
  const std::vector<std::uint8_t> drawn = resized_image(set, 0, t);
  EXPECT_EQ(drawn.size(), 64u);
  EXPECT_EQ(drawn[0], 0);
  EXPECT_EQ(drawn[63], 90);
  EXPECT_EQ(resampled(resampled(set, 8), 4).pixels.size(), 16u);
  // a smaller size, or a larger one without a resize mode, is refused
  t.size = 3;
  EXPECT_NE(error_of([&] { make_batch(set, {0}, t, false, nullptr); }).find("smaller"), std::string::npos);
  t.size = 8;
  t.resize = Resize::none;
  EXPECT_NE(error_of([&] { make_batch(set, {0}, t, false, nullptr); }).find("pad"), std::string::npos);
}

}  // namespace
}  // namespace rune::vision
