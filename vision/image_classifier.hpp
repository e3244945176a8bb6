// What every image-classification task shares, whatever its model (the ViT, the ResNet): the
// data keys and their loading (a seeded validation split of the training files, the per-channel
// statistics, a checkpoint's own statistics and class names when rebuilt from one), augmented
// training batches that a second thread prepares while the model trains, label-smoothed
// cross-entropy, top-1 accuracy, the confusion matrix (CSV and PNG) and per-example predictions.
// A task derives from it and supplies the model and its logits.
//
// Legend: B batch, C channels, S the model's (square) input size, K classes.
//
// Keys (read by the constructor, in this order, before the model's):
//   data.dataset        fashion_mnist | mnist | cifar10 (IDX files for the first two)
//   data.dir            the data set's folder (fashion_mnist: Debian's /usr/share/datasets/fashion-mnist)
//   data.val_size       training images held out for validation (chosen by the seed)
//   data.batch_size, data.eval_batch_size
//   data.image_size     the model's input size (0: the data's own); larger sizes need data.resize
//   data.resize         none | pad (centre, black) | upsample (bilinear)
//   data.crop_padding   training: random crop from the image padded by this many pixels (0: off)
//   data.hflip          training: random horizontal flip (default on for CIFAR-10 only)
//   train.label_smoothing
#pragma once

#include <future>
#include <map>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"
#include "train/task.hpp"
#include "vision/image_data.hpp"

namespace rune::vision {

class ImageClassifierTask : public train::Task, public train::EvalReports {
 public:
  ~ImageClassifierTask() override;

  std::int64_t batches_per_epoch() const override { return batches_per_epoch_; }
  train::BatchLoss train_batch(std::int64_t epoch, std::int64_t index) override;
  bool shards_batches() const override { return true; }
  bool shards_evaluation() const override { return true; }
  std::map<std::string, double> evaluate(const std::string& split) override;  // loss, accuracy
  std::string primary_metric() const override { return "accuracy"; }
  bool higher_is_better() const override { return true; }
  std::string items_name() const override { return "images"; }
  // /meta: classes, mean, std, image_size; the architecture's facts about the input (how pixels
  // become the model's input), to which a task adds its model's
  void describe(train::Checkpoint& c) const override;
  // confusion-<split>.csv and confusion-<split>.png
  std::vector<std::string> write_reports(const std::string& split, const std::string& dir) override;
  // "index,label,predicted,logit_0,...,logit_<K-1>" lines with a header, in the split's order (the
  // logits with nine significant digits: float32 reads back exactly)
  void write_predictions(const std::string& path) const override;

  const ImageSet& split(const std::string& name) const;  // "train", "val" or "test"
  const ImageTransform& transform() const { return transform_; }

 protected:
  // Reads the data keys (only); the task then reads its model's and calls load_data.
  ImageClassifierTask(train::Config& c, const train::TaskContext& context);
  // Reads the images, splits off validation, sets the transform's size and statistics (the
  // checkpoint's when rebuilt from one); every problem goes to c.fail naming its key.
  void load_data(train::Config& c, const train::TaskContext& context);
  // The model's logits (B, K) for normalised images (B, C, S, S), in the mode the model is in.
  virtual Tensor logits(const Tensor& images) = 0;
  // What an exported classifier's ONNX model says of its input and output (metadata_props, JSON
  // values, so that a caller parses them as they are: a class name may hold a comma): rune.task =
  // `task`, dataset, classes, image_size, in_chans, mean, std, resize and input.
  std::map<std::string, std::string> onnx_metadata(const std::string& task) const;

  std::uint64_t seed_;
  std::string dataset_;
  std::int64_t batch_size_ = 0, eval_batch_size_ = 0, batches_per_epoch_ = 0;
  std::int64_t pass_batches_ = 0;  // whole batches in one pass over the training images
  double label_smoothing_ = 0;
  ImageSet train_, val_, test_;
  ImageTransform transform_;

 private:
  ImageBatch prepare(std::int64_t epoch, std::int64_t index) const;

  std::string dir_;
  std::int64_t val_size_ = 0;
  std::int64_t train_size_ = 0;  // 0: every image not held out
  // the next training batch, prepared on another thread
  std::future<ImageBatch> next_;
  std::int64_t next_epoch_ = -1, next_index_ = -1;
  // the last evaluate()'s split, predictions and labels
  std::string evaluated_;
  std::vector<std::int64_t> predictions_, labels_;
  std::vector<float> logits_;  // (N, K), row-major
};

// 0, 1, ..., n - 1
std::vector<std::int64_t> iota(std::int64_t n);

}  // namespace rune::vision
