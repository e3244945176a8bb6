// CSV files (RFC 4180) as every report writes them: a header line, then one line per row, each a
// fixed number of comma-separated fields. Lines end with "\n" (RFC 4180 says CRLF; every reader of
// these files, Python's csv, pandas and R, accepts both). A text field is written in double quotes,
// each quote inside doubled, when it holds a comma, a quote, CR or LF, or when it is made with
// CsvField::quoted (a column of free text, tokens or class names, quoted on every row alike).
// Numbers: integers in full; a double with nine significant digits (train::significant: a float32
// reads back exactly), or CsvField::fixed(v, decimals); non-finite values are nan, inf and -inf.
//
//   Csv csv({"module", "head", "js_divergence"});
//   csv.row({"encoder.layers.0.self_attn", 1, CsvField::fixed(0.25, 6)});
//   csv.write(dir + "/redundancy.csv");  // atomically (train::write_file)
#pragma once

#include <cstddef>
#include <string>
#include <type_traits>
#include <vector>

namespace rune::report {

class CsvField {
 public:
  CsvField(const std::string& text);  // quoted only where it must be
  CsvField(const char* text);
  template <class I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>, int> = 0>
  CsvField(I v) : encoded_(std::to_string(v)) {}
  CsvField(bool) = delete;  // say 1 / 0 or "yes" / "no"
  CsvField(double v);       // nine significant digits

  static CsvField quoted(const std::string& text);  // always in quotes
  static CsvField fixed(double v, int decimals);    // printf's %.*f
  static CsvField empty() { return CsvField(std::string()); }

  // The field as it stands in the file.
  const std::string& encoded() const { return encoded_; }

 private:
  struct Raw {};
  CsvField(Raw, std::string encoded) : encoded_(std::move(encoded)) {}
  std::string encoded_;
};

class Csv {
 public:
  explicit Csv(const std::vector<CsvField>& header);
  // One row; std::invalid_argument if it has another number of fields than the header.
  void row(const std::vector<CsvField>& fields);
  // The whole file so far.
  const std::string& text() const { return text_; }
  std::size_t rows() const { return rows_; }
  // text() as the file `path`, atomically; std::runtime_error naming the file if it fails.
  void write(const std::string& path) const;

 private:
  void line(const std::vector<CsvField>& fields);
  std::size_t columns_;
  std::size_t rows_ = 0;
  std::string text_;
};

}  // namespace rune::report
