#include "examples/cnn/cnn_task.hpp"

#include <string>

#include "onnx/export.hpp"
#include "train/memory.hpp"

namespace rune::examples {

CnnTask::CnnTask(train::Config& c, const train::TaskContext& context) : ImageClassifierTask(c, context) {
  const std::int64_t width =
      c.integer("model.width", 16, {1}, "channels of the first stage; each later stage doubles them");
  const std::int64_t stages =
      c.integer("model.stages", 3, {1, 8}, "stages of basic blocks; each after the first halves the image's side");
  const std::int64_t blocks = c.integer("model.blocks", 3, {1}, "basic blocks per stage (ResNet-20: 3)");
  nn::ResNetOptions o;
  o.zero_init_residual =
      c.boolean("model.zero_init_residual", false,
                "each block's last batch norm starts at weight 0 (the block starts as its shortcut)");
  if (context.describe_only) return;  // rune config: the keys are declared; no data is read
  load_data(c, context);

  o.in_chans = train_.channels;
  o.num_classes = static_cast<std::int64_t>(train_.classes.size());
  o.widths.clear();
  o.blocks.clear();
  for (std::int64_t s = 0; s < stages; ++s) {
    o.widths.push_back(width << s);
    o.blocks.push_back(blocks);
  }
  if ((transform_.size >> (stages - 1)) < 1)
    c.fail("model.stages", std::to_string(stages) + " stages halve the image's " + std::to_string(transform_.size) +
                               " pixels to nothing");
  check_memory(c, o);
  model_ = std::make_shared<nn::ResNet>(o, *context.init);
}

void CnnTask::check_memory(const train::Config& c, const nn::ResNetOptions& o) const {
  const double params = nn::parameter_count(o);
  const train::SizeKey width{"model.width", o.widths[0], 2}, blocks{"model.blocks", o.blocks[0]};
  train::check_memory(c, "the model's " + train::count_text(params) + " parameters", 4 * params, {width, blocks});
  // a batch: its images (and their normalised copy), and per convolution about 8 floats per output
  // value kept for backward (the output, the batch norm's and the ReLU's, im2col's columns); in
  // evaluation one stage's first convolution at a time
  const auto S = static_cast<double>(transform_.size);
  double per_image_all = S * S * static_cast<double>(o.widths[0]);  // conv1
  for (std::size_t s = 0; s < o.widths.size(); ++s) {
    const double side = static_cast<double>(transform_.size >> s);
    per_image_all += side * side * static_cast<double>(o.widths[s] * (2 * o.blocks[s] + 1));
  }
  per_image_all *= 8;
  const double per_image_one = 8 * S * S * static_cast<double>(o.widths[0]);
  const auto floats = [&](std::int64_t batch, double per_image) {
    const auto B = static_cast<double>(batch);
    return B * (2 * static_cast<double>(o.in_chans) * S * S + per_image);
  };
  const double train_floats = floats(batch_size_, per_image_all), eval_floats = floats(eval_batch_size_, per_image_one);
  const train::SizeKey image_size{"data.image_size", transform_.size, 2};
  train::check_memory(c, "a training batch's activations (about " + train::count_text(train_floats) + " floats)",
                      4 * train_floats,
                      {{"data.batch_size", batch_size_}, image_size, {"model.width", o.widths[0]}, blocks});
  train::check_memory(c, "an evaluation batch's activations (about " + train::count_text(eval_floats) + " floats)",
                      4 * eval_floats,
                      {{"data.eval_batch_size", eval_batch_size_}, image_size, {"model.width", o.widths[0]}});
}

void CnnTask::describe(train::Checkpoint& c) const {
  ImageClassifierTask::describe(c);  // /meta, and how pixels become the input
  const nn::ResNetOptions& o = model_->options;
  auto& a = c.architecture;
  std::string widths, blocks;
  for (std::size_t s = 0; s < o.widths.size(); ++s) {
    widths += (s ? "," : "") + std::to_string(o.widths[s]);
    blocks += (s ? "," : "") + std::to_string(o.blocks[s]);
  }
  a["model"] = std::string("resnet");
  a["widths"] = widths;  // comma-separated, one per stage
  a["blocks"] = blocks;
  a["stem"] = std::string(
      "conv1: Conv2d(in_chans, widths[0], 3, stride=1, padding=1, bias=False), bn1: BatchNorm2d, ReLU; no max-pool");
  a["block"] = std::string(
      "layer<s>.<b>: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), conv1 3x3 with stride 2 in the first block "
      "of every stage after the first (else 1), conv2 3x3 stride 1, padding 1, no biases; shortcut x, or "
      "downsample.0 (1x1 Conv2d, the block's stride, no bias) then downsample.1 (BatchNorm2d) where the shape changes");
  a["batch_norm"] = std::string("eps 1e-5, momentum 0.1; evaluation uses running_mean and running_var");
  a["head"] = std::string(
      "the mean over every position of the last stage (B, widths[-1]), then fc: Linear(widths[-1], "
      "num_classes); logits, classes in /meta/classes");
}

std::vector<std::string> CnnTask::export_onnx(const std::string& path) {
  return onnx_export::write_resnet(*model_, transform_.size, transform_.stats.mean, transform_.stats.std,
                                   onnx_metadata("cnn"), path);
}

std::string CnnTask::onnx_layout() const {
  const std::string S = std::to_string(transform_.size);
  return "graph resnet: images float (batch, " + std::to_string(model_->options.in_chans) + ", " + S + ", " + S +
         "), pixel values 0..255 -> logits float (batch, " + std::to_string(model_->options.num_classes) +
         "); class names in the metadata (classes)\n";
}

namespace {
const bool registered = train::register_task<CnnTask, train::EvalReports, train::OnnxExporter>(
    "cnn", "a ResNet of basic blocks classifying images (Fashion-MNIST, MNIST or CIFAR-10): the ViT's baseline");
}  // namespace

}  // namespace rune::examples
