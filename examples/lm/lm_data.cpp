#include "examples/lm/lm_data.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <stdexcept>

#include "text/bible.hpp"
#include "text/utf8.hpp"

namespace rune::examples {

namespace {
const std::string kSpace = "\xe2\x96\x81";  // U+2581, SentencePiece's word boundary

// The characters of the text a piece stands for: a byte piece "<0xE2>" one if its byte starts a
// character, any other its code points, "▁" being a space.
std::uint8_t piece_chars(const std::string& piece) {
  if (piece.size() == 6 && piece.compare(0, 3, "<0x") == 0 && piece.back() == '>')
    return text::is_continuation_byte(static_cast<unsigned char>(std::stoi(piece.substr(3, 2), nullptr, 16))) ? 0 : 1;
  return static_cast<std::uint8_t>(std::min<std::int64_t>(255, text::code_points(piece)));
}
}  // namespace

LmSplits bible_documents(const std::string& module, const std::string& sword_path) {
  LmSplits s;
  for (const text::Verse& v : text::read_sword_module(module, sword_path)) {
    text::BibleSplit split;
    try {
      split = text::bible_split(v.book);
    } catch (const std::invalid_argument&) {
      continue;  // a deuterocanonical book: not one of the 66
    }
    Document d{v.book + " " + std::to_string(v.chapter) + ":" + std::to_string(v.verse), v.text};
    (split == text::BibleSplit::train ? s.train
     : split == text::BibleSplit::val ? s.val
                                      : s.test)
        .push_back(std::move(d));
  }
  if (s.train.empty() || s.val.empty() || s.test.empty())
    throw std::runtime_error("the SWORD module " + module + " lacks the books of a split (" +
                             std::to_string(s.train.size()) + " training, " + std::to_string(s.val.size()) +
                             " validation, " + std::to_string(s.test.size()) + " test verses)");
  return s;
}

std::vector<Document> read_documents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("text file " + path + " cannot be read");
  std::vector<Document> out;
  std::int64_t line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    const auto first = line.find_first_not_of(" \t\r\v\f");
    if (first == std::string::npos) continue;
    const auto last = line.find_last_not_of(" \t\r\v\f");
    out.push_back({path + ":" + std::to_string(line_number), line.substr(first, last - first + 1)});
  }
  if (out.empty()) throw std::runtime_error("text file " + path + " holds no text");
  return out;
}

LmTokenizer LmTokenizer::characters(const std::vector<Document>& train) {
  std::vector<std::vector<std::string>> texts;
  texts.reserve(train.size());
  for (const Document& d : train) texts.push_back(text::tokenize(d.text, text::Tokenization::character));
  LmTokenizer t;
  t.vocab_ = text::Vocabulary::build(texts, 1);
  return t;
}

LmTokenizer LmTokenizer::subwords(text::SubwordModel model) {
  LmTokenizer t;
  t.vocab_ = text::Vocabulary(model.pieces());
  t.subwords_.emplace(std::move(model));
  return t;
}

LmTokenizer LmTokenizer::from_vocabulary(const std::vector<std::string>& tokens) {
  LmTokenizer t;
  t.vocab_ = text::Vocabulary(tokens);
  return t;
}

std::vector<std::int64_t> LmTokenizer::encode(const std::string& text, std::vector<std::uint8_t>* chars) const {
  std::vector<std::int64_t> ids;
  if (!subwords_) {
    for (const std::string& c : text::tokenize(text, text::Tokenization::character)) {
      ids.push_back(vocab_.id(c));
      if (chars) chars->push_back(1);
    }
    return ids;
  }
  const std::vector<std::string> pieces = subwords_->encode(text);
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    ids.push_back(vocab_.id(pieces[i]));
    if (!chars) continue;
    std::uint8_t n = piece_chars(pieces[i]);
    // the space SentencePiece puts before the text's first word is not in the text
    if (i == 0 && n > 0 && pieces[i].compare(0, kSpace.size(), kSpace) == 0) --n;
    chars->push_back(n);
  }
  return ids;
}

std::string LmTokenizer::decode(const std::vector<std::int64_t>& ids) const {
  std::string out;
  std::vector<std::string> pieces;  // of the current document (subwords)
  const auto flush = [&] {
    if (!pieces.empty()) out += subwords_->decode(pieces);
    pieces.clear();
  };
  for (const std::int64_t id : ids) {
    if (id == text::Vocabulary::eos) {
      flush();
      out += '\n';
    } else if (id == text::Vocabulary::pad || id == text::Vocabulary::bos) {
      continue;
    } else if (id == text::Vocabulary::unk && !subwords_) {
      out += "\xef\xbf\xbd";
    } else if (subwords_) {
      pieces.push_back(vocab_.token(id));
    } else {
      out += vocab_.token(id);
    }
  }
  flush();
  return out;
}

TokenStream make_stream(const std::vector<Document>& documents, const LmTokenizer& tokenizer) {
  TokenStream s;
  s.ids.push_back(text::Vocabulary::eos);
  s.chars.push_back(1);
  for (const Document& d : documents) {
    const std::vector<std::int64_t> ids = tokenizer.encode(d.text, &s.chars);
    s.ids.insert(s.ids.end(), ids.begin(), ids.end());
    s.unknown += std::count(ids.begin(), ids.end(), text::Vocabulary::unk);
    s.ids.push_back(text::Vocabulary::eos);
    s.chars.push_back(1);
  }
  return s;
}

}  // namespace rune::examples
