#include "text/subword.hpp"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <stdexcept>

namespace rune::text {

namespace {
// Feeds the sentences to the trainer from memory (no temporary file).
class Sentences : public sentencepiece::SentenceIterator {
 public:
  explicit Sentences(const std::vector<std::string>& s) : s_(s) { skip_empty(); }
  bool done() const override { return at_ >= s_.size(); }
  void Next() override {
    ++at_;
    skip_empty();
  }
  const std::string& value() const override { return s_[at_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void skip_empty() {
    while (at_ < s_.size() && s_[at_].empty()) ++at_;
  }
  const std::vector<std::string>& s_;
  std::size_t at_ = 0;
};
}  // namespace

SubwordModel::SubwordModel(SubwordModel&&) noexcept = default;
SubwordModel& SubwordModel::operator=(SubwordModel&&) noexcept = default;
SubwordModel::~SubwordModel() = default;

SubwordModel SubwordModel::train(const std::vector<std::string>& sentences, const SubwordOptions& o) {
  if (o.model_type != "unigram" && o.model_type != "bpe")
    throw std::invalid_argument("subword model type '" + o.model_type + "': expected unigram or bpe");
  if (o.vocab_size < 300)
    throw std::invalid_argument("subword vocabulary of " + std::to_string(o.vocab_size) +
                                " pieces: at least 300 (4 specials and 256 byte pieces come first)");
  // Every sentence is used, in order (no sampling, no shuffling): the same sentences give the same model.
  const std::string args = "--model_type=" + o.model_type + " --vocab_size=" + std::to_string(o.vocab_size) +
                           " --character_coverage=" + std::to_string(o.character_coverage) +
                           " --normalization_rule_name=identity --byte_fallback=true --split_digits=false"
                           " --pad_id=0 --bos_id=1 --eos_id=2 --unk_id=3"
                           " --pad_piece=<pad> --bos_piece=<bos> --eos_piece=<eos> --unk_piece=<unk>"
                           " --input_sentence_size=0 --shuffle_input_sentence=false --max_sentence_length=100000"
                           " --hard_vocab_limit=true --num_threads=2 --minloglevel=2";
  Sentences it(sentences);
  std::string bytes;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &bytes);
  if (!status.ok()) {
    const std::string why = status.message();
    // SentencePiece says "Vocabulary size is too high (8000). Please set it to a value <= 5231."
    if (why.find("Vocabulary size") != std::string::npos)
      throw std::invalid_argument("subword vocabulary of " + std::to_string(o.vocab_size) +
                                  " pieces is too large for the training text: " + why);
    throw std::runtime_error("SentencePiece training failed: " + why);
  }
  return from_bytes(bytes, "the model just trained");
}

SubwordModel SubwordModel::from_bytes(const std::string& bytes, const std::string& what) {
  SubwordModel m;
  m.bytes_ = bytes;
  m.processor_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = m.processor_->LoadFromSerializedProto(bytes);
  if (!status.ok()) throw std::runtime_error(what + " is not a SentencePiece model: " + status.message());
  const char* specials[] = {"<pad>", "<bos>", "<eos>", "<unk>"};
  for (int id = 0; id < 4; ++id)
    if (m.processor_->GetPieceSize() <= id || m.processor_->IdToPiece(id) != specials[id])
      throw std::runtime_error(what + ": piece " + std::to_string(id) + " is not " + specials[id] +
                               " (a SentencePiece model not trained by Runestone)");
  return m;
}

std::int64_t SubwordModel::size() const { return processor_->GetPieceSize(); }

std::vector<std::string> SubwordModel::pieces() const {
  std::vector<std::string> out;
  out.reserve(static_cast<std::size_t>(size()));
  for (int id = 0; id < processor_->GetPieceSize(); ++id) out.push_back(processor_->IdToPiece(id));
  return out;
}

std::vector<std::string> SubwordModel::encode(const std::string& text) const {
  std::vector<std::string> out;
  const auto status = processor_->Encode(text, &out);
  if (!status.ok()) throw std::runtime_error("SentencePiece cannot encode \"" + text + "\": " + status.message());
  return out;
}

std::string SubwordModel::decode(const std::vector<std::string>& pieces) const {
  std::string out;
  const auto status = processor_->Decode(pieces, &out);
  if (!status.ok()) throw std::runtime_error("SentencePiece cannot decode: " + std::string(status.message()));
  return out;
}

std::vector<int> SubwordModel::word_of_pieces(const std::vector<std::string>& pieces) {
  static const std::string kSpace = "\xe2\x96\x81";  // U+2581, SentencePiece's word boundary
  std::vector<int> out;
  int word = -1;
  for (const std::string& p : pieces) {
    if (word < 0 || p.compare(0, kSpace.size(), kSpace) == 0) ++word;
    out.push_back(word);
  }
  return out;
}

}  // namespace rune::text
