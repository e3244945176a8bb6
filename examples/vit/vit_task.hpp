// The ViT example's task: a VisionTransformer classifying images (Fashion-MNIST, MNIST or
// CIFAR-10). The data, training batches, evaluation and reports are every image classifier's
// (vision/image_classifier.hpp, whose keys come first); this adds the model, the head analysis,
// the attention of the class token over an image's patches, and the model as ONNX.
//
// Keys: data.* and train.label_smoothing (vision/image_classifier.hpp), then
//   model.patch_size, model.embed_dim, model.depth, model.num_heads, model.mlp_dim,
//   model.dropout, model.pool (cls | mean)
#pragma once

#include <memory>
#include <vector>

#include "analysis/attention_maps.hpp"
#include "analysis/head_analysis.hpp"
#include "nn/vit.hpp"
#include "vision/image_classifier.hpp"

namespace rune::examples {

class ViTTask : public vision::ImageClassifierTask,
                public analysis::HeadAnalysisSource,
                public analysis::ImageAttentionSource,
                public train::OnnxExporter {
 public:
  ViTTask(train::Config& config, const train::TaskContext& context);
  nn::Module& model() override { return *model_; }
  void describe(train::Checkpoint& c) const override;
  // timm's split: no decay for biases, norms, the position embedding and the class token
  std::vector<std::string> no_decay_patterns() const override {
    return {"*.bias", "*_bias", "*norm*", "pos_embed", "cls_token"};
  }
  // A checkpoint of another image size loads with its position embedding resized (bicubic over
  // the patch grid, class-token row kept); every other parameter loads strictly.
  std::vector<std::string> load_parameters(const train::Checkpoint& c, const std::string& path) override;
  // Head analysis: every block's (1 + N, 1 + N) attention is valid (no padding).
  std::int64_t prepare_analysis(const std::string& split, std::int64_t batch_size, std::int64_t limit) override;
  analysis::AnalysisBatch analysis_batch(std::int64_t index) override;

  // ONNX: images (pixel values 0..255, the model's size) -> logits, normalised inside as in
  // training; class names, mean and std in the metadata (onnx/export.hpp).
  std::vector<std::string> export_onnx(const std::string& path) override;
  std::string onnx_layout() const override;

  const nn::VisionTransformer& vit() const { return *model_; }

  // The class token's attention over one image: an index into the test split, or a PNG file.
  analysis::ImageAttention image_attention(const std::string& file_or_index) override;

 protected:
  Tensor logits(const Tensor& images) override { return model_->forward(images); }

 private:
  // Refuses (train/memory.hpp) a model or a batch too large for this machine, before building it.
  void check_memory(const train::Config& c, const nn::VisionTransformerOptions& o) const;

  std::shared_ptr<nn::VisionTransformer> model_;
  // prepare_analysis()'s split, examples and batch size
  const vision::ImageSet* analysis_set_ = nullptr;
  std::int64_t analysis_size_ = 0, analysis_batch_size_ = 1;
};

}  // namespace rune::examples
