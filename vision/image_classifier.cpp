#include "vision/image_classifier.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include <nlohmann/json.hpp>

#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "report/csv.hpp"
#include "report/plot.hpp"
#include "train/distributed.hpp"

namespace rune::vision {
namespace fs = std::filesystem;

namespace {

// Fisher-Yates with our Generator: the same order on every standard library.
void shuffle(std::vector<std::int64_t>& v, Generator& g) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[g.below(i)]);
}

}  // namespace

std::vector<std::int64_t> iota(std::int64_t n) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

ImageClassifierTask::ImageClassifierTask(train::Config& c, const train::TaskContext& context) : seed_(context.seed) {
  dataset_ =
      c.string("data.dataset", "fashion_mnist", {"fashion_mnist", "mnist", "cifar10"},
               "the images: Fashion-MNIST or MNIST (IDX files, gzipped or not) or CIFAR-10 (its binary version)");
  const bool cifar = dataset_ == "cifar10";
  dir_ = c.string("data.dir",
                  {dataset_ == "fashion_mnist" ? "/usr/share/datasets/fashion-mnist" : "",
                   "\"/usr/share/datasets/fashion-mnist\" for fashion_mnist, none otherwise"},
                  "the data set's folder (Debian's dataset-fashion-mnist installs Fashion-MNIST)");
  val_size_ = c.integer("data.val_size", 5000, {1}, "training images held out for validation (chosen by the seed)");
  train_size_ = c.integer("data.train_size", 0, {0},
                          "training images used, a subset of those not held out chosen by the seed and nested "
                          "(a smaller size's images are among a larger one's); 0: all of them");
  batch_size_ = c.integer("data.batch_size", 128, {1}, "images per training batch");
  batches_per_epoch_ = c.integer("data.batches_per_epoch", 0, {0},
                                 "training batches per epoch (0: one pass, training images / batch_size); passes "
                                 "continue across epochs, so a run's steps need not depend on data.train_size");
  eval_batch_size_ = c.integer("data.eval_batch_size", 500, {1}, "images per batch in evaluation");
  transform_.size = c.integer("data.image_size", 0, {0},
                              "the model's input size in pixels (0: the data's own); larger sizes need data.resize");
  transform_.resize = resize_from_name(
      c.string("data.resize", "none", {"none", "pad", "upsample"},
               "how images grow to data.image_size: not at all, padded (centred on black) or upsampled (bilinear)"));
  transform_.crop_padding =
      c.integer("data.crop_padding", {cifar ? 4 : 2, "4 for cifar10, 2 otherwise"}, {0, 64},
                "training augmentation: random crops of the image padded by this many pixels (0: off)");
  transform_.hflip = c.boolean("data.hflip", {cifar, "true for cifar10, false otherwise"},
                               "training augmentation: random horizontal flips");
  label_smoothing_ =
      c.number("train.label_smoothing", 0.1, {0.0, 1.0, true}, "label smoothing of the cross-entropy loss");
}

void ImageClassifierTask::load_data(train::Config& c, const train::TaskContext& context) {
  const bool cifar = dataset_ == "cifar10";
  if (dir_.empty()) c.fail("data.dir", "data.dataset = \"" + dataset_ + "\" needs the folder of its files");
  ImageSet all;
  try {
    all = cifar ? read_cifar10(dir_, true)
                : read_idx(dir_, true, dataset_ == "mnist" ? mnist_classes() : fashion_mnist_classes());
    test_ = cifar ? read_cifar10(dir_, false) : read_idx(dir_, false, all.classes);
  } catch (const std::runtime_error& e) {
    c.fail("data.dir", e.what());
  }
  if (test_.height != all.height || test_.width != all.width)
    c.fail("data.dir", test_.origin + ": the test images are " + std::to_string(test_.height) + "x" +
                           std::to_string(test_.width) + " pixels, the training images (" + all.origin + ") " +
                           std::to_string(all.height) + "x" + std::to_string(all.width));
  if (val_size_ >= all.size())
    c.fail("data.val_size", std::to_string(val_size_) + " leaves no training images of the " +
                                std::to_string(all.size()) + " in " + dir_);
  if (train_size_ > all.size() - val_size_)
    c.fail("data.train_size", std::to_string(train_size_) + " is more than the " +
                                  std::to_string(all.size() - val_size_) + " images of " + dir_ +
                                  " left for training beside data.val_size = " + std::to_string(val_size_));
  // a seeded split of the training files: the last val_size of a shuffled order are validation, the
  // first train_size training (so the validation images do not depend on train_size, and a smaller
  // training set is a part of a larger one)
  std::vector<std::int64_t> order = iota(all.size());
  Generator split_gen(seed_ * 31 + 5);
  shuffle(order, split_gen);
  const auto cut = order.end() - val_size_;
  const auto train_end = train_size_ > 0 ? order.begin() + train_size_ : cut;
  std::vector<std::int64_t> train_idx(order.begin(), train_end), val_idx(cut, order.end());
  std::sort(train_idx.begin(), train_idx.end());
  std::sort(val_idx.begin(), val_idx.end());
  train_ = all.subset(train_idx);
  val_ = all.subset(val_idx);
  if (train_.size() < batch_size_)
    c.fail("data.batch_size",
           std::to_string(batch_size_) + " is more than the " + std::to_string(train_.size()) + " training images");
  pass_batches_ = train_.size() / batch_size_;                      // the last partial batch is dropped, as drop_last
  if (batches_per_epoch_ == 0) batches_per_epoch_ = pass_batches_;  // data.batches_per_epoch = 0: a pass
  transform_.stats = channel_stats(train_);
  if (const train::Checkpoint* from = context.checkpoint) {
    // rebuilt from a checkpoint: normalised and named as in training, whatever the data holds now
    const auto has = [&](const char* key) { return from->meta_numbers.count(key) > 0; };
    if (!has("mean") || !has("std") || !from->meta_strings.count("classes"))
      throw std::runtime_error("the checkpoint holds no /meta/mean, /meta/std or /meta/classes");
    const std::vector<double>& mean = from->meta_numbers.at("mean");
    const std::vector<double>& sd = from->meta_numbers.at("std");
    if (mean.size() != static_cast<std::size_t>(train_.channels) || sd.size() != mean.size())
      throw std::runtime_error("the checkpoint's /meta/mean and /meta/std have " + std::to_string(mean.size()) +
                               " channels, the images of " + dir_ + " " + std::to_string(train_.channels));
    if (from->meta_strings.at("classes").size() != train_.classes.size())
      throw std::runtime_error("the checkpoint has " + std::to_string(from->meta_strings.at("classes").size()) +
                               " classes, the data in " + dir_ + " " + std::to_string(train_.classes.size()));
    transform_.stats.mean = mean;
    transform_.stats.std = sd;
    train_.classes = from->meta_strings.at("classes");
  }
  if (transform_.size == 0) transform_.size = train_.height;
  if (train_.height != train_.width) c.fail("data.dir", "images of " + dir_ + " are not square");
  if (transform_.size != train_.height && transform_.resize == Resize::none)
    c.fail("data.resize", "data.image_size = " + std::to_string(transform_.size) + " differs from the data's " +
                              std::to_string(train_.height) + ": choose \"pad\" or \"upsample\"");
  if (transform_.size < train_.height)
    c.fail("data.image_size",
           std::to_string(transform_.size) + " is smaller than the data's " + std::to_string(train_.height));
}

ImageClassifierTask::~ImageClassifierTask() {
  if (next_.valid()) next_.wait();
}

const ImageSet& ImageClassifierTask::split(const std::string& name) const {
  if (name == "train") return train_;
  if (name == "val") return val_;
  if (name == "test") return test_;
  throw std::invalid_argument("split '" + name + "' is not one of train, val, test");
}

ImageBatch ImageClassifierTask::prepare(std::int64_t epoch, std::int64_t index) const {
  // the batch's place in the stream of passes over the training images, each in its own order
  // (with one pass an epoch, the pass is the epoch and the place the index)
  const std::int64_t n = epoch * batches_per_epoch_ + index, pass = n / pass_batches_, place = n % pass_batches_;
  // the pass's order and each batch's augmentation are functions of (seed, pass, place) only
  std::vector<std::int64_t> order = iota(train_.size());
  Generator order_gen(seed_ * 1000003ULL + static_cast<std::uint64_t>(pass) * 7919ULL + 17);
  shuffle(order, order_gen);
  const auto first = order.begin() + place * batch_size_;
  const std::vector<std::int64_t> indices(first, first + batch_size_);
  Generator augment_gen(seed_ * 1000003ULL + static_cast<std::uint64_t>(pass) * 7919ULL +
                        static_cast<std::uint64_t>(place) * 104729ULL + 29);
  return make_batch(train_, indices, transform_, true, &augment_gen);
}

train::BatchLoss ImageClassifierTask::train_batch(std::int64_t epoch, std::int64_t index) {
  ImageBatch batch;
  if (next_.valid() && next_epoch_ == epoch && next_index_ == index) {
    batch = next_.get();
  } else {
    if (next_.valid()) next_.wait();  // a batch nobody asked for (after a resume, say)
    next_ = {};
    batch = prepare(epoch, index);
  }
  // the next batch in training order, prepared while this one trains
  next_epoch_ = index + 1 < batches_per_epoch_ ? epoch : epoch + 1;
  next_index_ = index + 1 < batches_per_epoch_ ? index + 1 : 0;
  next_ = std::async(std::launch::async, [this, e = next_epoch_, i = next_index_] { return prepare(e, i); });

  // data-parallel: this rank's rows of the batch (the whole batch is prepared, so that each
  // image's augmentation is the one a single process draws)
  const auto [begin, end] = shard().rows(batch_size_);
  if (begin == end) return {};  // more ranks than the batch has images
  const Tensor images = batch.images.slice(0, begin, end), labels = batch.labels.slice(0, begin, end);
  model().train();
  const Tensor out = logits(images);  // (B, K)
  CrossEntropyOptions ce;
  ce.label_smoothing = label_smoothing_;
  return {cross_entropy(out, labels, ce), static_cast<double>(end - begin)};
}

std::map<std::string, double> ImageClassifierTask::evaluate(const std::string& name) {
  const ImageSet& set = split(name);
  NoGradGuard no_grad;
  model().eval();
  predictions_.clear();
  labels_.clear();
  logits_.clear();
  double loss = 0;
  std::int64_t correct = 0;
  CrossEntropyOptions sum;
  sum.reduction = Reduction::sum;
  // data-parallel validation: this rank's images [first, last) (all of them on one rank; the
  // per-image lists below hold only these), the sums reduced with the other ranks
  const auto [first, last] = shard().rows(set.size());
  for (std::int64_t start = first; start < last; start += eval_batch_size_) {
    std::vector<std::int64_t> indices = iota(std::min(eval_batch_size_, last - start));
    for (auto& i : indices) i += start;
    const ImageBatch batch = make_batch(set, indices, transform_, false, nullptr);
    const Tensor out = logits(batch.images).contiguous();  // (B, K)
    logits_.insert(logits_.end(), out.data<float>(), out.data<float>() + out.numel());
    loss += cross_entropy(out, batch.labels, sum).item();
    const Tensor predicted = argmax(out, 1);
    for (std::size_t b = 0; b < indices.size(); ++b) {
      const std::int64_t p = predicted.data<std::int64_t>()[b], y = batch.labels.data<std::int64_t>()[b];
      predictions_.push_back(p);
      labels_.push_back(y);
      correct += p == y;
    }
  }
  if (shard().ranks > 1) {
    double sums[2] = {loss, static_cast<double>(correct)};
    train::Communicator::world().allreduce_sum(sums, 2);
    loss = sums[0];
    correct = static_cast<std::int64_t>(sums[1]);
  }
  evaluated_ = name;
  const auto n = static_cast<double>(set.size());
  return {{"loss", loss / n}, {"accuracy", static_cast<double>(correct) / n}};
}

void ImageClassifierTask::describe(train::Checkpoint& c) const {
  c.meta_strings["classes"] = train_.classes;
  c.meta_numbers["mean"] = transform_.stats.mean;
  c.meta_numbers["std"] = transform_.stats.std;
  c.meta_numbers["image_size"] = {static_cast<double>(transform_.size)};
  auto& a = c.architecture;
  a["image_size"] = transform_.size;
  a["in_chans"] = train_.channels;
  a["num_classes"] = static_cast<std::int64_t>(train_.classes.size());
  a["classes"] = std::string("classes");  // keys of /meta
  a["normalization_mean"] = std::string("mean");
  a["normalization_std"] = std::string("std");
  a["input"] = std::string(
      "images (B, in_chans, image_size, image_size), rows top to bottom (CIFAR-10: channels R, G, B); pixel "
      "v in 0..255 -> (v / 255 - mean[c]) / std[c], after the resize");
  a["native_image_size"] = train_.height;
  a["resize"] = std::string(transform_.resize == Resize::pad        ? "pad"
                            : transform_.resize == Resize::upsample ? "upsample"
                                                                    : "none");
  a["resize_rule"] = std::string(
      "from native_image_size to image_size when they differ: pad centres the image on black (v = 0, top and left "
      "(image_size - native_image_size) / 2 rounded down); upsample is bilinear, align_corners = false");
}

std::map<std::string, std::string> ImageClassifierTask::onnx_metadata(const std::string& task) const {
  return {{"rune.task", task},
          {"dataset", dataset_},
          {"classes", nlohmann::json(train_.classes).dump()},
          {"image_size", std::to_string(transform_.size)},
          {"in_chans", std::to_string(train_.channels)},
          {"mean", nlohmann::json(transform_.stats.mean).dump()},
          {"std", nlohmann::json(transform_.stats.std).dump()},
          {"resize", transform_.resize == Resize::none  ? "none"
                     : transform_.resize == Resize::pad ? "pad"
                                                        : "upsample"},
          {"input",
           "images float (batch, in_chans, image_size, image_size): pixel values 0..255, channels first, "
           "resized to image_size as `resize` says; normalised inside the graph"}};
}

std::vector<std::string> ImageClassifierTask::write_reports(const std::string& name, const std::string& dir) {
  if (evaluated_ != name) evaluate(name);
  const auto K = static_cast<std::int64_t>(train_.classes.size());
  std::vector<std::vector<std::int64_t>> counts(static_cast<std::size_t>(K),
                                                std::vector<std::int64_t>(static_cast<std::size_t>(K), 0));
  for (std::size_t i = 0; i < labels_.size(); ++i)
    ++counts[static_cast<std::size_t>(labels_[i])][static_cast<std::size_t>(predictions_[i])];
  // a row per true label, a column per prediction; class names quoted on both axes
  std::vector<report::CsvField> header{"label\\predicted"};
  for (const std::string& cls : train_.classes) header.push_back(report::CsvField::quoted(cls));
  report::Csv csv(header);
  for (std::int64_t y = 0; y < K; ++y) {
    std::vector<report::CsvField> row{report::CsvField::quoted(train_.classes[static_cast<std::size_t>(y)])};
    for (std::int64_t n : counts[static_cast<std::size_t>(y)]) row.emplace_back(n);
    csv.row(row);
  }
  const std::string base = (fs::path(dir) / ("confusion-" + name)).string();
  csv.write(base + ".csv");
  std::int64_t correct = 0;
  for (std::int64_t k = 0; k < K; ++k) correct += counts[static_cast<std::size_t>(k)][static_cast<std::size_t>(k)];
  char title[160];
  std::snprintf(title, sizeof title, "%s %s split: top-1 %.2f%% of %zu", dataset_.c_str(), name.c_str(),
                100.0 * static_cast<double>(correct) / static_cast<double>(labels_.size()), labels_.size());
  report::plot_confusion(base + ".png", title, train_.classes, counts);
  return {base + ".csv", base + ".png"};
}

void ImageClassifierTask::write_predictions(const std::string& path) const {
  if (evaluated_.empty()) throw std::runtime_error("write_predictions: no split was evaluated");
  const std::size_t K = train_.classes.size();
  std::vector<report::CsvField> header{"index", "label", "predicted"};
  for (std::size_t k = 0; k < K; ++k) header.emplace_back("logit_" + std::to_string(k));
  report::Csv csv(header);
  for (std::size_t i = 0; i < labels_.size(); ++i) {
    std::vector<report::CsvField> row{i, labels_[i], predictions_[i]};
    for (std::size_t k = 0; k < K; ++k) row.emplace_back(static_cast<double>(logits_[i * K + k]));
    csv.row(row);
  }
  csv.write(path);
}

}  // namespace rune::vision
