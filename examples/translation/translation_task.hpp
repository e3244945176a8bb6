// The translation example's task: an encoder-decoder Transformer trained with teacher forcing and
// label-smoothed cross-entropy on length-bucketed, padded batches, scored by greedy decoding with
// the KV cache (exact match, token accuracy, corpus BLEU-4).
//
// Data (data.source): "numbers", English number words to French ones for 0..999,999, drawn with
// a uniform number of digits and split by number (test numbers never appear in training), a
// fraction of each batch (data.rare_fraction) drawn from the rare classes (corpus.hpp) instead,
// half of each of which is held out; "tsv", a source<TAB>target file split by line; or "bible",
// English to Spanish verses of two SWORD modules with Strong's-number word alignments, split by
// whole books (text/bible.hpp). Keys: data.source, data.path, data.tokenization (word | char |
// sentencepiece), data.min_freq, data.vocab_size and data.subword_model (sentencepiece),
// data.max_len, data.batch_size, data.batches_per_epoch (numbers), data.eval_size (numbers),
// data.split_permille (numbers), data.rare_fraction (numbers), data.val_fraction and
// data.test_fraction (tsv), data.cache, data.source_module, data.target_module and data.sword_path
// (bible); model.* (read_transformer_options, and model.positions and model.tie_output);
// train.label_smoothing; decode.beam (1: greedy), decode.val_beam (validation's) and
// decode.length_penalty for beam search.
//
// Splits: val and test; the numbers add domain (every number 0..999,999, training numbers
// included) and rare (the held-out halves of the rare classes, never trained on).
//
// Real text (tsv, bible) is also scored as sacreBLEU scores it (sacrebleu: 13a tokens, exp
// smoothing; chrf), and the best checkpoint is the one with the highest sacrebleu.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "analysis/alignment.hpp"
#include "analysis/attention_maps.hpp"
#include "analysis/head_analysis.hpp"
#include "examples/translation/corpus.hpp"
#include "nn/seq2seq.hpp"
#include "text/subword.hpp"
#include "train/task.hpp"

namespace rune::examples {

class TranslationTask : public train::Task,
                        public train::Translator,
                        public train::EvalReports,
                        public analysis::HeadAnalysisSource,
                        public analysis::TextAttentionSource,
                        public analysis::AlignmentSource,
                        public train::OnnxExporter {
 public:
  TranslationTask(train::Config& config, const train::TaskContext& context);
  nn::Module& model() override { return *model_; }
  std::int64_t batches_per_epoch() const override { return batches_per_epoch_; }
  train::BatchLoss train_batch(std::int64_t epoch, std::int64_t index) override;
  bool shards_batches() const override { return true; }
  bool shards_evaluation() const override { return true; }
  std::map<std::string, double> evaluate(const std::string& split) override;
  std::vector<std::string> splits() const override;
  // The numbers of a split (data.source = numbers): val's and test's as drawn, domain's
  // 0..999,999, rare's the held-out ones (ascending).
  std::vector<std::int64_t> split_numbers(const std::string& split) const;
  std::string primary_metric() const override { return source_ == "numbers" ? "exact_match" : "sacrebleu"; }
  bool higher_is_better() const override { return true; }
  std::string items_name() const override { return "tokens"; }
  void describe(train::Checkpoint& c) const override;
  // After evaluate(split): the numbers' errors-<split>.csv, every example translated wrong; real
  // text's translations-<split>.csv, every example. The first few also on stderr.
  std::vector<std::string> write_reports(const std::string& split, const std::string& dir) override;
  // Every example of the split evaluated last: index, (number, training: 1 for a number training
  // may draw,) source, reference, translation, exact.
  void write_predictions(const std::string& path) const override;
  std::int64_t prepare_analysis(const std::string& split, std::int64_t batch_size, std::int64_t limit) override;
  analysis::AnalysisBatch analysis_batch(std::int64_t index) override;

  // Translations of source sentences (greedy, or beam search with decode.beam > 1), detokenized,
  // of at most data.max_len tokens. Notes: a source's words missing from the source vocabulary, a
  // source longer than the model reads, a translation that reached data.max_len without <eos>.
  std::vector<std::string> translate(const std::vector<std::string>& sources, std::vector<std::string>* notes) override;
  // log P(target | source) under the model (teacher-forced, <eos> included), per pair. Notes: the
  // words either vocabulary lacks, and a side longer than the model reads.
  std::vector<double> log_probability(const std::vector<std::pair<std::string, std::string>>& pairs,
                                      std::vector<std::string>* notes) override;

  // ONNX: an encoder graph and a decoder-step graph with the self-attention cache as inputs and
  // outputs (onnx/export.hpp), the vocabularies, special ids and tokenization in their metadata.
  std::vector<std::string> export_onnx(const std::string& path) override;
  std::string onnx_layout() const override;

  // The attention of the model translating one sentence: its translation, then a teacher-forced
  // pass over it recording every attention module's per-head weights.
  analysis::TokenAttention attention_maps(const std::string& sentence) override;

  // The split's pairs with gold word links (Bible verses), each with the cross-attention of its
  // reference translation forced through the decoder.
  std::int64_t prepare_alignment(const std::string& split, std::int64_t limit) override;
  analysis::AlignmentExample alignment_example(std::int64_t index) override;

 private:
  struct Batch {
    Tensor src, tgt_in, tgt_out;  // (B, S), (B, T), (B, T) int64, pad = 0
  };
  Batch encode(const std::vector<Pair>& pairs) const;
  // The tokens of a source or target text (words, characters or the side's subword pieces), and
  // target tokens back to text.
  std::vector<std::string> tokens(const std::string& text, bool source) const;
  std::string detokenize(const std::vector<std::string>& tokens) const;
  // Every attention map of the model reading `source` and teacher-forced on `target`.
  analysis::TokenAttention forced_attention(const std::string& source, const std::string& target);
  // Notes on how the model reads one text of sentence `number` (from 1), a source or a target: the
  // words `vocab` lacks (read as <unk>) and the tokens beyond data.max_len (ignored).
  void note_reading(std::vector<std::string>& notes, std::size_t number, const std::string& text, bool source) const;
  // A split's examples: numbers, whose pairs are made as they are read, or stored pairs (tsv).
  struct Examples {
    std::vector<std::int64_t> numbers;
    std::vector<Pair> pairs;
    std::size_t size() const { return numbers.empty() ? pairs.size() : numbers.size(); }
    Pair pair(std::size_t i) const { return numbers.empty() ? pairs[i] : number_pair(numbers[i]); }
  };
  Examples examples(const std::string& split) const;
  // The examples of the split evaluated last, all or the wrong ones, as a CSV file.
  void write_examples(const std::string& path, bool wrong_only) const;
  void prepare_epoch(std::int64_t epoch);
  // translate() with a beam of `beam` (1: greedy).
  std::vector<std::string> decode_texts(const std::vector<std::string>& sources, std::vector<std::string>* notes,
                                        std::int64_t beam);

  std::uint64_t seed_;
  std::string source_;
  Tokenization tokenization_;
  std::int64_t max_len_, batch_size_, batches_per_epoch_, eval_size_, permille_;
  double label_smoothing_, length_penalty_, rare_fraction_ = 0;
  std::int64_t beam_, val_beam_;
  std::vector<Pair> train_, val_, test_;                  // tsv, bible: the splits; numbers: val and test only
  std::vector<std::int64_t> val_numbers_, test_numbers_;  // numbers: those of val_ and test_
  std::shared_ptr<const NumberSplits> numbers_;           // numbers: every split of them
  // The split evaluate() saw last, and its wrong translations by index (a right one is its reference).
  std::string evaluated_;
  std::vector<std::pair<std::size_t, std::string>> wrong_;
  Vocabulary src_vocab_, tgt_vocab_;
  std::shared_ptr<nn::Seq2SeqTransformer> model_;
  std::int64_t prepared_epoch_ = -1;
  std::vector<std::vector<Pair>> epoch_batches_;
  std::vector<std::vector<Pair>> analysis_;                        // prepare_analysis()'s chunks of a split
  std::optional<text::SubwordModel> src_subwords_, tgt_subwords_;  // data.tokenization = sentencepiece
  std::vector<const Pair*> aligned_;                               // prepare_alignment()'s pairs
};

}  // namespace rune::examples
