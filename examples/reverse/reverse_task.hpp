// The smallest sequence-to-sequence task: reverse a random sequence of digits ("3 1 4" -> "4 1 3").
// The encoder-decoder must learn to attend from each output position to the mirrored input
// position, so its cross-attention map is an anti-diagonal. A smoke test of the whole pipeline
// and the template of the translation task. It translates too (`rune translate CKPT "3 1 4"`):
// digits separated by spaces in, the model's greedy reversal out. Its gold word alignment is exact
// (`rune align`): target digit j is source digit n - 1 - j of n.
//
// Config keys: data.digits, data.min_len, data.max_len, data.batch_size, data.batches_per_epoch,
// data.eval_size; model.d_model, model.nhead, model.num_encoder_layers, model.num_decoder_layers,
// model.dim_feedforward, model.dropout, model.activation, model.norm_first;
// train.label_smoothing.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "analysis/alignment.hpp"
#include "analysis/head_analysis.hpp"
#include "nn/seq2seq.hpp"
#include "train/task.hpp"

namespace rune::examples {

class ReverseTask : public train::Task,
                    public train::Translator,
                    public analysis::HeadAnalysisSource,
                    public analysis::AlignmentSource {
 public:
  ReverseTask(train::Config& config, const train::TaskContext& context);
  nn::Module& model() override { return *model_; }
  std::int64_t batches_per_epoch() const override { return batches_per_epoch_; }
  train::BatchLoss train_batch(std::int64_t epoch, std::int64_t index) override;
  bool shards_batches() const override { return true; }
  std::map<std::string, double> evaluate(const std::string& split) override;
  std::string primary_metric() const override { return "exact_match"; }
  bool higher_is_better() const override { return true; }
  std::string items_name() const override { return "tokens"; }
  void describe(train::Checkpoint& c) const override;
  std::int64_t prepare_analysis(const std::string& split, std::int64_t batch_size, std::int64_t limit) override;
  analysis::AnalysisBatch analysis_batch(std::int64_t index) override;
  // Every sequence of the split ("val" or "test") has gold links, one per digit: (n - 1 - j, j).
  std::int64_t prepare_alignment(const std::string& split, std::int64_t limit) override;
  // Sequence `index` ("pair <index>") with its reversal forced through the decoder; the attention
  // holds the cross layers only. Words are the digits; the source has no special token, the
  // decoder's last row predicts <eos>.
  analysis::AlignmentExample alignment_example(std::int64_t index) override;

  // Greedy reversals of digit sequences ("3 1 4": digits of data.digits separated by ASCII
  // whitespace, the first data.max_len read); a token that is not a digit is refused by name.
  // Notes: a sequence longer than the model reads, a reversal cut without <eos>.
  std::vector<std::string> translate(const std::vector<std::string>& sources, std::vector<std::string>* notes) override;
  // log P(target | source) under the model (teacher-forced, <eos> included), per pair.
  std::vector<double> log_probability(const std::vector<std::pair<std::string, std::string>>& pairs,
                                      std::vector<std::string>* notes) override;

 private:
  struct Batch {
    Tensor src, tgt_in, tgt_out;  // (B, S), (B, T), (B, T) int64, pad = 0
  };
  Batch make_batch(Generator& g, std::int64_t size) const;
  Batch split_batch(const std::string& split) const;  // evaluate()'s examples of the split
  // Sources as the model reads them (digits, no <eos>) and targets framed as in training.
  Batch encode(const std::vector<std::pair<std::string, std::string>>& pairs) const;
  std::vector<std::int64_t> token_ids(const std::string& text) const;  // the first max_len digits
  // Into notes (if any), when text holds more digits than token_ids() reads.
  void note_length(std::vector<std::string>* notes, std::size_t number, const std::string& text) const;
  std::vector<std::string> vocabulary() const;  // <pad> <bos> <eos> 0 1 ...

  std::uint64_t seed_;
  std::int64_t digits_, min_len_, max_len_, batch_size_, batches_per_epoch_, eval_size_;
  double label_smoothing_;
  std::shared_ptr<nn::Seq2SeqTransformer> model_;
  Batch analysis_;  // prepare_analysis()'s examples
  std::int64_t analysis_size_ = 0, analysis_batch_size_ = 1;
  Batch alignment_;  // prepare_alignment()'s examples
  std::int64_t alignment_size_ = 0;
};

}  // namespace rune::examples
