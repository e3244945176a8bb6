// The language model's text: documents (Bible verses, or the lines of plain text files) in three
// splits, the tokenizer (UTF-8 characters or SentencePiece subwords, text/tokens.hpp and
// text/subword.hpp) and the token stream a split becomes.
//
// A split's stream is <eos>, then each document's tokens followed by <eos>: the model learns where a
// verse ends, and a prompt starts after an <eos> as every training verse does. <eos> reads as a
// newline. Each token also counts the characters (code points) of the text it stands for, so that
// bits per character compare character and subword models on the same text: a character is one,
// <eos> one (the newline), a subword its code points (the word boundary "▁" a space, except the
// verse's first, which SentencePiece adds), a byte piece one for the byte that starts a character.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "text/subword.hpp"
#include "text/tokens.hpp"

namespace rune::examples {

struct Document {
  std::string name;  // "Gen 1:1", or "file.txt:12"
  std::string text;  // one line, no newline
};

struct LmSplits {
  std::vector<Document> train, val, test;
};

// The verses of a SWORD module (text/bible.hpp) in the 66 books, split by whole books as the
// translation task splits them (text::bible_split: validation Joshua and Romans, test Acts).
LmSplits bible_documents(const std::string& module, const std::string& sword_path);

// Every line of a UTF-8 text file that holds more than whitespace, trimmed, named "path:line".
// A file that cannot be read, or holds no such line: std::runtime_error naming it.
std::vector<Document> read_documents(const std::string& path);

class LmTokenizer {
 public:
  // Characters of the training documents, by decreasing frequency after the four specials.
  static LmTokenizer characters(const std::vector<Document>& train);
  static LmTokenizer subwords(text::SubwordModel model);
  // As a checkpoint stores it: the vocabulary (characters), or the SentencePiece model's bytes.
  static LmTokenizer from_vocabulary(const std::vector<std::string>& tokens);

  bool is_subword() const { return subwords_.has_value(); }
  const text::Vocabulary& vocabulary() const { return vocab_; }
  const text::SubwordModel& subword_model() const { return *subwords_; }
  std::int64_t size() const { return vocab_.size(); }

  // A document's ids (no <eos>), and per id the characters it stands for (into chars, if given).
  std::vector<std::int64_t> encode(const std::string& text, std::vector<std::uint8_t>* chars = nullptr) const;
  // Ids back to text: <eos> a newline, <pad> and <bos> nothing, <unk> U+FFFD.
  std::string decode(const std::vector<std::int64_t>& ids) const;

 private:
  text::Vocabulary vocab_;
  std::optional<text::SubwordModel> subwords_;
};

struct TokenStream {
  std::vector<std::int64_t> ids;    // <eos> d0 <eos> d1 <eos> ...
  std::vector<std::uint8_t> chars;  // per id, the characters it stands for
  std::int64_t unknown = 0;         // ids that are <unk> (characters training never saw)
};
TokenStream make_stream(const std::vector<Document>& documents, const LmTokenizer& tokenizer);

}  // namespace rune::examples
