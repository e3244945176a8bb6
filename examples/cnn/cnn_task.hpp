// The CNN example's task: a ResNet of basic blocks (nn/resnet.hpp; ResNet-20 by default) classifying
// the same images as the ViT task, with the same data keys, augmentation, evaluation and reports
// (vision/image_classifier.hpp): the convolutional baseline for the ViT. Exported to ONNX as the
// ViT is (the same input, normalisation inside, metadata and output; onnx/export.hpp).
//
// Keys: data.* and train.label_smoothing (vision/image_classifier.hpp), then
//   model.width      channels of the first stage; each later stage doubles them
//   model.stages     stages; each after the first halves the image's side
//   model.blocks     basic blocks per stage (ResNet-20: 3 stages of 3, 6n + 2 = 20 layers)
//   model.zero_init_residual   each block's last batch norm starts at weight 0
#pragma once

#include <memory>

#include "nn/resnet.hpp"
#include "vision/image_classifier.hpp"

namespace rune::examples {

class CnnTask : public vision::ImageClassifierTask, public train::OnnxExporter {
 public:
  CnnTask(train::Config& config, const train::TaskContext& context);
  nn::Module& model() override { return *model_; }
  void describe(train::Checkpoint& c) const override;
  // torchvision's recipes: no weight decay on batch norms and biases
  std::vector<std::string> no_decay_patterns() const override { return {"*.bias", "*bn*", "*downsample.1.*"}; }
  const nn::ResNet& resnet() const { return *model_; }

  // ONNX: images (pixel values 0..255, data.image_size) -> logits, as the ViT's export.
  std::vector<std::string> export_onnx(const std::string& path) override;
  std::string onnx_layout() const override;

 protected:
  Tensor logits(const Tensor& images) override { return model_->forward(images); }

 private:
  // Refuses (train/memory.hpp) a model or a batch too large for this machine, before building it.
  void check_memory(const train::Config& c, const nn::ResNetOptions& o) const;

  std::shared_ptr<nn::ResNet> model_;
};

}  // namespace rune::examples
