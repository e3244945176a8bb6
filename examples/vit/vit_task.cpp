#include "examples/vit/vit_task.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "analysis/attention_recorder.hpp"
#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "onnx/export.hpp"
#include "report/csv.hpp"
#include "report/plot.hpp"
#include "train/distributed.hpp"
#include "train/memory.hpp"

namespace rune::examples {
namespace fs = std::filesystem;

namespace {

// Fisher-Yates with our Generator: the same order on every standard library.
void shuffle(std::vector<std::int64_t>& v, Generator& g) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[g.below(i)]);
}

std::vector<std::int64_t> iota(std::int64_t n) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

}  // namespace

ViTTask::ViTTask(train::Config& c, const train::TaskContext& context) : seed_(context.seed) {
  dataset_ =
      c.string("data.dataset", "fashion_mnist", {"fashion_mnist", "mnist", "cifar10"},
               "the images: Fashion-MNIST or MNIST (IDX files, gzipped or not) or CIFAR-10 (its binary version)");
  const bool cifar = dataset_ == "cifar10";
  const std::string dir = c.string("data.dir",
                                   {dataset_ == "fashion_mnist" ? "/usr/share/datasets/fashion-mnist" : "",
                                    "\"/usr/share/datasets/fashion-mnist\" for fashion_mnist, none otherwise"},
                                   "the data set's folder (Debian's dataset-fashion-mnist installs Fashion-MNIST)");
  const std::int64_t val_size =
      c.integer("data.val_size", 5000, {1}, "training images held out for validation (chosen by the seed)");
  batch_size_ = c.integer("data.batch_size", 128, {1}, "images per training batch");
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
  nn::VisionTransformerOptions o;
  o.patch_size =
      c.integer("model.patch_size", 4, {1}, "side of the square patches in pixels; must divide the image size");
  o.embed_dim = c.integer("model.embed_dim", 128, {1},
                          "width of the model: the patch embedding and every layer's input and output");
  o.depth = c.integer("model.depth", 6, {1}, "encoder layers");
  o.num_heads = c.integer("model.num_heads", 8, {1}, "attention heads per layer; must divide model.embed_dim");
  o.mlp_dim =
      c.integer("model.mlp_dim", {4 * o.embed_dim, "4 * model.embed_dim"}, {1}, "hidden width of each layer's MLP");
  o.dropout = c.number("model.dropout", 0.0, {0.0, 1.0, true},
                       "dropout rate on the attention weights, the residual branches and the embedded patches");
  o.pool = nn::pool_from_name(c.string("model.pool", "cls", {"cls", "mean"},
                                       "what the classifier reads: the class token, or the mean of the patch tokens"));
  if (context.describe_only) return;  // rune config: the keys are declared; no data is read
  if (dir.empty()) c.fail("data.dir", "data.dataset = \"" + dataset_ + "\" needs the folder of its files");

  ImageSet all;
  try {
    all = cifar ? read_cifar10(dir, true)
                : read_idx(dir, true, dataset_ == "mnist" ? mnist_classes() : fashion_mnist_classes());
    test_ = cifar ? read_cifar10(dir, false) : read_idx(dir, false, all.classes);
  } catch (const std::runtime_error& e) {
    c.fail("data.dir", e.what());
  }
  if (test_.height != all.height || test_.width != all.width)
    c.fail("data.dir", test_.origin + ": the test images are " + std::to_string(test_.height) + "x" +
                           std::to_string(test_.width) + " pixels, the training images (" + all.origin + ") " +
                           std::to_string(all.height) + "x" + std::to_string(all.width));
  if (val_size >= all.size())
    c.fail("data.val_size",
           std::to_string(val_size) + " leaves no training images of the " + std::to_string(all.size()) + " in " + dir);
  // a seeded split of the training files: the last val_size of a shuffled order are validation
  std::vector<std::int64_t> order = iota(all.size());
  Generator split_gen(seed_ * 31 + 5);
  shuffle(order, split_gen);
  const auto cut = order.end() - val_size;
  std::vector<std::int64_t> train_idx(order.begin(), cut), val_idx(cut, order.end());
  std::sort(train_idx.begin(), train_idx.end());
  std::sort(val_idx.begin(), val_idx.end());
  train_ = all.subset(train_idx);
  val_ = all.subset(val_idx);
  if (train_.size() < batch_size_)
    c.fail("data.batch_size",
           std::to_string(batch_size_) + " is more than the " + std::to_string(train_.size()) + " training images");
  batches_per_epoch_ = train_.size() / batch_size_;  // the last partial batch is dropped, as drop_last
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
                               " channels, the images of " + dir + " " + std::to_string(train_.channels));
    if (from->meta_strings.at("classes").size() != train_.classes.size())
      throw std::runtime_error("the checkpoint has " + std::to_string(from->meta_strings.at("classes").size()) +
                               " classes, the data in " + dir + " " + std::to_string(train_.classes.size()));
    transform_.stats.mean = mean;
    transform_.stats.std = sd;
    train_.classes = from->meta_strings.at("classes");
  }
  if (transform_.size == 0) transform_.size = train_.height;
  if (train_.height != train_.width) c.fail("data.dir", "images of " + dir + " are not square");
  if (transform_.size != train_.height && transform_.resize == Resize::none)
    c.fail("data.resize", "data.image_size = " + std::to_string(transform_.size) + " differs from the data's " +
                              std::to_string(train_.height) + ": choose \"pad\" or \"upsample\"");
  if (transform_.size < train_.height)
    c.fail("data.image_size",
           std::to_string(transform_.size) + " is smaller than the data's " + std::to_string(train_.height));

  o.image_size = transform_.size;
  o.in_chans = train_.channels;
  o.num_classes = static_cast<std::int64_t>(train_.classes.size());
  o.pos_dropout = o.dropout;
  o.dropout_generator = context.dropout;
  if (o.image_size % o.patch_size != 0)
    c.fail("model.patch_size",
           std::to_string(o.patch_size) + " does not divide the image size " + std::to_string(o.image_size));
  if (o.embed_dim % o.num_heads != 0)
    c.fail("model.num_heads",
           std::to_string(o.num_heads) + " does not divide model.embed_dim " + std::to_string(o.embed_dim));
  check_memory(c, o);
  model_ = std::make_shared<nn::VisionTransformer>(o, *context.init);
}

void ViTTask::check_memory(const train::Config& c, const nn::VisionTransformerOptions& o) const {
  const double params = nn::parameter_count(o);
  const auto S = static_cast<double>(o.image_size), grid = static_cast<double>(o.grid());
  const train::SizeKey image_size{"data.image_size", o.image_size, 2},
      patch_size{"model.patch_size", o.patch_size, 1, grid * grid};
  train::check_memory(c, "the model's " + train::count_text(params) + " parameters", 4 * params,
                      {{"model.embed_dim", o.embed_dim, 2},
                       {"model.mlp_dim", o.mlp_dim},
                       {"model.depth", o.depth},
                       image_size,
                       patch_size});
  // a batch: its images (and their normalised copy), and the encoder's activations; in evaluation
  // (no backward) one layer's at a time
  const auto floats = [&](std::int64_t batch, std::int64_t layers) {
    const auto B = static_cast<double>(batch);
    return 2 * B * static_cast<double>(o.in_chans) * S * S +
           train::activation_floats(B, 1 + grid * grid, static_cast<double>(o.embed_dim),
                                    static_cast<double>(o.num_heads), static_cast<double>(layers));
  };
  const double train_floats = floats(batch_size_, o.depth), eval_floats = floats(eval_batch_size_, 1);
  train::check_memory(c, "a training batch's activations (about " + train::count_text(train_floats) + " floats)",
                      4 * train_floats,
                      {{"data.batch_size", batch_size_},
                       image_size,
                       patch_size,
                       {"model.embed_dim", o.embed_dim},
                       {"model.depth", o.depth},
                       {"model.num_heads", o.num_heads}});
  train::check_memory(
      c, "an evaluation batch's activations (about " + train::count_text(eval_floats) + " floats)", 4 * eval_floats,
      {{"data.eval_batch_size", eval_batch_size_}, image_size, patch_size, {"model.embed_dim", o.embed_dim}});
}

ViTTask::~ViTTask() {
  if (next_.valid()) next_.wait();
}

const ImageSet& ViTTask::split(const std::string& name) const {
  if (name == "train") return train_;
  if (name == "val") return val_;
  if (name == "test") return test_;
  throw std::invalid_argument("split '" + name + "' is not one of train, val, test");
}

ImageBatch ViTTask::prepare(std::int64_t epoch, std::int64_t index) const {
  // the epoch's order and each batch's augmentation are functions of (seed, epoch, index) only
  std::vector<std::int64_t> order = iota(train_.size());
  Generator order_gen(seed_ * 1000003ULL + static_cast<std::uint64_t>(epoch) * 7919ULL + 17);
  shuffle(order, order_gen);
  const auto first = order.begin() + index * batch_size_;
  const std::vector<std::int64_t> indices(first, first + batch_size_);
  Generator augment_gen(seed_ * 1000003ULL + static_cast<std::uint64_t>(epoch) * 7919ULL +
                        static_cast<std::uint64_t>(index) * 104729ULL + 29);
  return make_batch(train_, indices, transform_, true, &augment_gen);
}

train::BatchLoss ViTTask::train_batch(std::int64_t epoch, std::int64_t index) {
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
  model_->train();
  const Tensor logits = model_->forward(images);  // (B, K)
  CrossEntropyOptions ce;
  ce.label_smoothing = label_smoothing_;
  return {cross_entropy(logits, labels, ce), static_cast<double>(end - begin)};
}

std::map<std::string, double> ViTTask::evaluate(const std::string& name) {
  const ImageSet& set = split(name);
  NoGradGuard no_grad;
  model_->eval();
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
    const std::vector<std::int64_t> indices = [&] {
      std::vector<std::int64_t> v = iota(std::min(eval_batch_size_, last - start));
      for (auto& i : v) i += start;
      return v;
    }();
    const ImageBatch batch = make_batch(set, indices, transform_, false, nullptr);
    const Tensor logits = model_->forward(batch.images).contiguous();  // (B, K)
    logits_.insert(logits_.end(), logits.data<float>(), logits.data<float>() + logits.numel());
    loss += cross_entropy(logits, batch.labels, sum).item();
    const Tensor predicted = argmax(logits, 1);
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

std::int64_t ViTTask::prepare_analysis(const std::string& name, std::int64_t batch_size, std::int64_t limit) {
  analysis_set_ = &split(name);
  analysis_size_ = limit > 0 ? std::min(limit, analysis_set_->size()) : analysis_set_->size();
  analysis_batch_size_ = batch_size;
  return analysis_size_;
}

analysis::AnalysisBatch ViTTask::analysis_batch(std::int64_t index) {
  const std::int64_t start = index * analysis_batch_size_, end = std::min(analysis_size_, start + analysis_batch_size_);
  if (!analysis_set_ || index < 0 || start >= end)
    throw std::out_of_range("ViTTask::analysis_batch: no batch " + std::to_string(index));
  std::vector<std::int64_t> indices = iota(end - start);
  for (auto& i : indices) i += start;
  const ImageBatch batch = make_batch(*analysis_set_, indices, transform_, false, nullptr);
  CrossEntropyOptions none;
  none.reduction = Reduction::none;
  const std::int64_t tokens = 1 + model_->options.grid() * model_->options.grid();
  return {cross_entropy(model_->forward(batch.images), batch.labels, none), [tokens](const std::string&, std::int64_t) {
            return std::pair<std::int64_t, std::int64_t>{tokens, tokens};
          }};
}

void ViTTask::describe(train::Checkpoint& c) const {
  c.meta_strings["classes"] = train_.classes;
  c.meta_numbers["mean"] = transform_.stats.mean;
  c.meta_numbers["std"] = transform_.stats.std;
  c.meta_numbers["image_size"] = {static_cast<double>(transform_.size)};
  // every fact from the model's options and its encoder layers' (nn/vit.cpp builds those)
  const nn::VisionTransformerOptions& o = model_->options;
  const nn::TransformerLayerOptions& layer = (*model_->encoder->layers)[0].options;
  auto& a = c.architecture;
  const auto flag = [](bool b) { return std::int64_t{b}; };
  a["model"] = std::string("vision_transformer");
  a["image_size"] = o.image_size;
  a["patch_size"] = o.patch_size;
  a["grid"] = o.grid();
  a["in_chans"] = o.in_chans;
  a["num_classes"] = o.num_classes;
  a["embed_dim"] = o.embed_dim;
  a["depth"] = static_cast<std::int64_t>(model_->encoder->layers->size());
  a["num_heads"] = layer.nhead;
  a["mlp_dim"] = layer.dim_feedforward;
  a["activation"] = nn::activation_name(layer.activation);  // gelu: the exact (erf) form
  a["norm_first"] = flag(layer.norm_first);
  a["layer_norm_eps"] = layer.layer_norm_eps;
  a["bias"] = flag(layer.bias);
  a["encoder_final_norm"] = flag(model_->encoder->norm != nullptr);
  a["patch_embedding"] = std::string(
      "patch_embed.proj: Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size), its output "
      "(B, embed_dim, grid, grid) flattened to (B, grid * grid, embed_dim), patches row by row");
  a["class_token"] = std::string("cls_token (1, 1, embed_dim), put before the patches");
  a["pos_embed"] = std::string(
      "(1, 1 + grid * grid, embed_dim): row 0 the class token's, then the patches row by row; added to "
      "[cls_token; patches] before the encoder");
  a["pool"] = nn::pool_name(o.pool);
  a["pooling"] =
      std::string(o.pool == nn::ViTPool::cls ? "the class token's row of the encoder's (final-normed) output"
                                             : "the mean of the patch rows of the encoder's (final-normed) output");
  a["head"] = std::string("head: Linear(embed_dim, num_classes) on the pooled row; logits, classes in /meta/classes");
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

std::vector<std::string> ViTTask::load_parameters(const train::Checkpoint& c, const std::string& path) {
  std::vector<std::string> notes;
  train::Checkpoint adapted = c;
  const std::int64_t grid = model_->options.grid();
  for (auto& [name, t] : adapted.params) {
    if (name != "pos_embed" || t.shape() == model_->pos_embed.shape()) continue;
    // (1, 1 + g*g, C) from a model of another image size: resize its patch grid to ours
    const std::int64_t n = t.dim() == 3 ? t.size(1) - 1 : -1;
    const auto old_grid =
        static_cast<std::int64_t>(std::lround(std::sqrt(static_cast<double>(std::max<std::int64_t>(n, 0)))));
    if (n == 0)
      throw std::runtime_error(path + ": pos_embed " + shape_str(t.shape()) +
                               " holds the class token's row alone, no patch positions to resize to a " +
                               std::to_string(grid) + "x" + std::to_string(grid) + " patch grid");
    if (t.dim() != 3 || old_grid * old_grid != n || t.size(2) != model_->options.embed_dim)
      throw std::runtime_error(path + ": pos_embed " + shape_str(t.shape()) + " is not a square patch grid of width " +
                               std::to_string(model_->options.embed_dim));
    NoGradGuard no_grad;
    const Shape before = t.shape();
    t = nn::resize_pos_embed(t, old_grid, old_grid, grid, grid);
    notes.push_back("pos_embed " + shape_str(before) + " -> " + shape_str(t.shape()) + ": patch grid " +
                    std::to_string(old_grid) + "x" + std::to_string(old_grid) + " resized bicubically to " +
                    std::to_string(grid) + "x" + std::to_string(grid) + ", class-token row kept");
  }
  train::load_parameters(*model_, adapted, path);
  return notes;
}

std::vector<std::string> ViTTask::write_reports(const std::string& name, const std::string& dir) {
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
    for (std::int64_t c : counts[static_cast<std::size_t>(y)]) row.emplace_back(c);
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

void ViTTask::write_predictions(const std::string& path) const {
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

analysis::ImageAttention ViTTask::image_attention(const std::string& file_or_index) {
  analysis::ImageAttention a;
  a.classes = train_.classes;
  a.channels = train_.channels;
  a.size = transform_.size;
  a.grid = model_->options.grid();
  ImageSet one;  // the image as a one-item set, so it goes through the same transform
  const bool is_index = !file_or_index.empty() && std::all_of(file_or_index.begin(), file_or_index.end(), ::isdigit);
  if (is_index) {
    const std::int64_t i = std::stoll(file_or_index);
    if (i >= test_.size())
      throw std::out_of_range("image index " + file_or_index + " is past the " + std::to_string(test_.size()) +
                              " images of the test split");
    one = test_.subset({i});
    a.label = one.labels[0];
  } else {
    // a PNG of any size becomes the data's channels at the data's native size
    int h = 0, w = 0;
    std::vector<std::uint8_t> pixels = report::read_png(file_or_index, static_cast<int>(train_.channels), h, w);
    one.channels = train_.channels;
    one.height = h;
    one.width = w;
    one.pixels = std::move(pixels);
    one.labels = {0};
    one.classes = train_.classes;
    if (h != w)
      throw std::invalid_argument(file_or_index + ": a " + std::to_string(w) + "x" + std::to_string(h) +
                                  " image is not square");
    if (h != train_.height) one = resampled(one, train_.height);
  }
  a.image = resized_image(one, 0, transform_);
  NoGradGuard no_grad;
  model_->eval();
  const ImageBatch batch = make_batch(one, {0}, transform_, false, nullptr);
  const analysis::AttentionRecorder recorder(*model_);
  const Tensor logits = model_->forward(batch.images);  // (1, K)
  for (std::size_t l = 0; l < model_->encoder->layers->size(); ++l) {
    const Tensor& w = recorder.weights("encoder.layers." + std::to_string(l) + ".self_attn");  // (1, H, T, T)
    a.layers.push_back(reshape(w, {w.size(1), w.size(2), w.size(3)}).contiguous());
  }
  const Tensor p = softmax(logits, -1);
  a.predicted = argmax(logits, 1).data<std::int64_t>()[0];
  a.confidence = p.contiguous().data<float>()[a.predicted];
  const std::vector<double> r = analysis::attention_rollout(a.layers);
  const std::int64_t T = 1 + a.grid * a.grid;
  a.rollout.assign(r.begin() + 1, r.begin() + T);  // row 0 (the class token), patch columns
  return a;
}

std::vector<std::string> ViTTask::export_onnx(const std::string& path) {
  // JSON values, so that a caller parses them as they are (a class name may hold a comma)
  const onnx_export::Metadata metadata{
      {"rune.task", "vit"},
      {"dataset", dataset_},
      {"classes", nlohmann::json(train_.classes).dump()},
      {"image_size", std::to_string(transform_.size)},
      {"in_chans", std::to_string(model_->options.in_chans)},
      {"mean", nlohmann::json(transform_.stats.mean).dump()},
      {"std", nlohmann::json(transform_.stats.std).dump()},
      {"resize", transform_.resize == Resize::none  ? "none"
                 : transform_.resize == Resize::pad ? "pad"
                                                    : "upsample"},
      {"input",
       "images float (batch, in_chans, image_size, image_size): pixel values 0..255, channels first, "
       "resized to image_size as `resize` says; normalised inside the graph"}};
  return onnx_export::write_vit(*model_, transform_.stats.mean, transform_.stats.std, metadata, path);
}

std::string ViTTask::onnx_layout() const {
  const nn::VisionTransformerOptions& o = model_->options;
  const std::string S = std::to_string(o.image_size);
  return "graph vit: images float (batch, " + std::to_string(o.in_chans) + ", " + S + ", " + S +
         "), pixel values 0..255 -> logits float (batch, " + std::to_string(o.num_classes) +
         "); class names in the metadata (classes)\n";
}

namespace {
const bool registered = train::register_task<ViTTask, train::EvalReports, analysis::HeadAnalysisSource,
                                             analysis::ImageAttentionSource, train::OnnxExporter>(
    "vit", "a Vision Transformer classifying images (Fashion-MNIST, MNIST or CIFAR-10)");
}  // namespace

}  // namespace rune::examples
