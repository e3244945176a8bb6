// The ViT example's task: a VisionTransformer classifying images (Fashion-MNIST, MNIST or
// CIFAR-10), trained with label-smoothed cross-entropy on augmented batches that a second thread
// prepares while the model trains; scored by top-1 accuracy, with a confusion matrix and
// per-example predictions; the attention of the class token over an image's patches; and the
// model as ONNX.
//
// Keys:
//   data.dataset        fashion_mnist | mnist | cifar10 (IDX files for the first two)
//   data.dir            the data set's folder (fashion_mnist: Debian's /usr/share/datasets/fashion-mnist)
//   data.val_size       training images held out for validation (chosen by the seed)
//   data.batch_size, data.eval_batch_size
//   data.image_size     the model's input size (0: the data's own); larger sizes need data.resize
//   data.resize         none | pad (centre, black) | upsample (bilinear)
//   data.crop_padding   training: random crop from the image padded by this many pixels (0: off)
//   data.hflip          training: random horizontal flip (default on for CIFAR-10 only)
//   model.patch_size, model.embed_dim, model.depth, model.num_heads, model.mlp_dim,
//   model.dropout, model.pool (cls | mean)
//   train.label_smoothing
#pragma once

#include <future>
#include <memory>
#include <vector>

#include "analysis/attention_maps.hpp"
#include "analysis/head_analysis.hpp"
#include "examples/vit/image_data.hpp"
#include "nn/vit.hpp"
#include "train/task.hpp"

namespace rune::examples {

class ViTTask : public train::Task,
                public train::EvalReports,
                public analysis::HeadAnalysisSource,
                public analysis::ImageAttentionSource,
                public train::OnnxExporter {
 public:
  ViTTask(train::Config& config, const train::TaskContext& context);
  ~ViTTask() override;
  nn::Module& model() override { return *model_; }
  std::int64_t batches_per_epoch() const override { return batches_per_epoch_; }
  train::BatchLoss train_batch(std::int64_t epoch, std::int64_t index) override;
  bool shards_batches() const override { return true; }
  bool shards_evaluation() const override { return true; }
  std::map<std::string, double> evaluate(const std::string& split) override;  // loss, accuracy
  std::string primary_metric() const override { return "accuracy"; }
  bool higher_is_better() const override { return true; }
  std::string items_name() const override { return "images"; }
  void describe(train::Checkpoint& c) const override;
  // timm's split: no decay for biases, norms, the position embedding and the class token
  std::vector<std::string> no_decay_patterns() const override {
    return {"*.bias", "*_bias", "*norm*", "pos_embed", "cls_token"};
  }
  // A checkpoint of another image size loads with its position embedding resized (bicubic over
  // the patch grid, class-token row kept); every other parameter loads strictly.
  std::vector<std::string> load_parameters(const train::Checkpoint& c, const std::string& path) override;
  // confusion-<split>.csv and confusion-<split>.png
  std::vector<std::string> write_reports(const std::string& split, const std::string& dir) override;
  // "index,label,predicted,logit_0,...,logit_<K-1>" lines with a header, in the split's order (the
  // logits with nine significant digits: float32 reads back exactly)
  void write_predictions(const std::string& path) const override;
  // Head analysis: every block's (1 + N, 1 + N) attention is valid (no padding).
  std::int64_t prepare_analysis(const std::string& split, std::int64_t batch_size, std::int64_t limit) override;
  analysis::AnalysisBatch analysis_batch(std::int64_t index) override;

  // ONNX: images (pixel values 0..255, the model's size) -> logits, normalised inside as in
  // training; class names, mean and std in the metadata (onnx/export.hpp).
  std::vector<std::string> export_onnx(const std::string& path) override;
  std::string onnx_layout() const override;

  const nn::VisionTransformer& vit() const { return *model_; }
  const ImageSet& split(const std::string& name) const;  // "train", "val" or "test"
  const ImageTransform& transform() const { return transform_; }

  // The class token's attention over one image: an index into the test split, or a PNG file.
  analysis::ImageAttention image_attention(const std::string& file_or_index) override;

 private:
  ImageBatch prepare(std::int64_t epoch, std::int64_t index) const;
  // Refuses (train/memory.hpp) a model or a batch too large for this machine, before building it.
  void check_memory(const train::Config& c, const nn::VisionTransformerOptions& o) const;

  std::uint64_t seed_;
  std::string dataset_;
  std::int64_t batch_size_, eval_batch_size_, batches_per_epoch_;
  double label_smoothing_;
  ImageSet train_, val_, test_;
  ImageTransform transform_;
  std::shared_ptr<nn::VisionTransformer> model_;
  // the next training batch, prepared on another thread
  std::future<ImageBatch> next_;
  std::int64_t next_epoch_ = -1, next_index_ = -1;
  // the last evaluate()'s split, predictions and labels
  std::string evaluated_;
  std::vector<std::int64_t> predictions_, labels_;
  std::vector<float> logits_;  // (N, K), row-major
  // prepare_analysis()'s split, examples and batch size
  const ImageSet* analysis_set_ = nullptr;
  std::int64_t analysis_size_ = 0, analysis_batch_size_ = 1;
};

}  // namespace rune::examples
