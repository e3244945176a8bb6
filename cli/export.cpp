// rune export CKPT --onnx FILE [--set key=value ...]: the checkpoint's model as standard ONNX
// (opset 17), through any task that can export (train::OnnxExporter). Each model is checked by
// the ONNX checker before it is written; stdout names the files written and their layout.
#include <cstdio>
#include <filesystem>

#include "cli/command.hpp"

namespace rune::cli {

namespace {

struct ExportRequest {
  std::string checkpoint, onnx;
  std::vector<std::string> sets;
};

int export_model(const ExportRequest& r) {
  // the ViT reads its data folder to rebuild its task (the normalisation comes from the checkpoint)
  const std::unique_ptr<LoadedTask> loaded = load_task(r.checkpoint, r.sets, /*load_data=*/false);
  train::OnnxExporter& exporter = train::capability<train::OnnxExporter>(*loaded->task, "checkpoint " + r.checkpoint);
  const std::filesystem::path folder = std::filesystem::path(r.onnx).parent_path();
  if (!folder.empty()) std::filesystem::create_directories(folder);
  for (const std::string& path : exporter.export_onnx(r.onnx)) std::printf("wrote %s\n", path.c_str());
  std::printf("%s", exporter.onnx_layout().c_str());
  return 0;
}

}  // namespace

Command add_export(CLI::App& app) {
  auto r = std::make_shared<ExportRequest>();
  CLI::App* c = app.add_subcommand(
      "export",
      "Write a checkpoint's model as standard ONNX (opset 17), checked by the ONNX checker before it is written");
  add_checkpoint_argument(*c, r->checkpoint);
  c->add_option("--onnx", r->onnx, "The ONNX file to write (a model of several graphs: one file each, named from it)")
      ->required();
  c->add_option("--set", r->sets, "Override a key of the checkpoint's config (data.dir=..., for a moved data set)");
  c->footer(R"(Layouts (docs/onnx.md: the node snippets that run them; "batch" and the lengths are dynamic):
  vit          FILE: images float (batch, C, S, S), pixel values 0..255 at the model's size
               -> logits float (batch, classes); normalised inside as in training
  translation  FILE without .onnx + "-encoder.onnx": src int64 (batch, source_length), each row
                 `tokens <eos>` padded with pad_id -> memory float (batch, source_length, d_model),
                 src_padding_mask bool (batch, source_length)
               FILE without .onnx + "-decoder.onnx", one step of decoding: token int64 (batch, 1),
                 position int64 (1), memory, src_padding_mask, past_key_<l> and past_value_<l> float
                 (batch, heads, past_length, head_dim) per decoder layer l (past_length 0 at the first
                 step, whose token is bos_id) -> logits and log_probs float (batch, vocabulary),
                 present_key_<l> and present_value_<l> (batch, heads, past_length + 1, head_dim)
               Vocabularies, special ids and the tokenization are in each model's metadata_props.)");
  return {c, [=] { return export_model(*r); }};
}

}  // namespace rune::cli
