// rune attention CKPT SENTENCE | --image INDEX|PNG [--out DIR]
#include <cstdio>

#include "analysis/attention_maps.hpp"
#include "cli/command.hpp"
#include "report/attention_report.hpp"
#include "train/files.hpp"

namespace rune::cli {

namespace {

struct AttentionRequest {
  std::string checkpoint, sentence, image, out_dir = ".";
};

int attention(const AttentionRequest& r) {
  if (r.image.empty() && r.sentence.empty()) throw std::invalid_argument("attention needs a sentence or --image");
  // a sentence needs no data; an image may be one of the test split's
  const std::unique_ptr<LoadedTask> loaded = load_task(r.checkpoint, {}, /*load_data=*/!r.image.empty());
  const std::string what = "checkpoint " + r.checkpoint;
  if (!r.image.empty()) {
    auto& source = train::capability<analysis::ImageAttentionSource>(*loaded->task, what);
    train::FileTransaction files;  // the PNGs and CSV replace the previous ones together, or none
    const std::vector<std::string> out =
        report::write_image_attention(source.image_attention(r.image), r.image, r.out_dir);
    files.commit();
    std::printf("%s\nwrote %s, %s and %s\n", out[0].c_str(), out[1].c_str(), out[2].c_str(), out[3].c_str());
    return 0;
  }
  auto& source = train::capability<analysis::TextAttentionSource>(*loaded->task, what);
  const analysis::TokenAttention maps = source.attention_maps(r.sentence);
  train::FileTransaction files;
  const std::vector<std::string> out = report::write_token_attention(maps, r.sentence, r.out_dir);
  files.commit();
  std::printf("%s -> %s\nwrote %s and %s\n", r.sentence.c_str(), maps.output.c_str(), out[0].c_str(), out[1].c_str());
  return 0;
}

}  // namespace

Command add_attention(CLI::App& app) {
  auto r = std::make_shared<AttentionRequest>();
  CLI::App* c = app.add_subcommand("attention", "Draw every attention head of a checkpoint on a sentence or an image");
  add_checkpoint_argument(*c, r->checkpoint);
  auto* sentence = c->add_option("sentence", r->sentence, "The source sentence (tasks over text)");
  auto* image = c->add_option("--image", r->image, "A PNG file, or the index of a test-split image (image tasks)");
  sentence->excludes(image);
  c->add_option("--out", r->out_dir, "Folder for the PNGs and the weights as CSV");
  return {c, [r] { return attention(*r); }};
}

}  // namespace rune::cli
