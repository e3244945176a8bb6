#include "report/csv.hpp"

#include <stdexcept>

#include "train/files.hpp"
#include "train/format.hpp"

namespace rune::report {

namespace {

std::string in_quotes(const std::string& s) {
  std::string q = "\"";
  for (char ch : s) {
    if (ch == '"') q += '"';
    q += ch;
  }
  return q + '"';
}

}  // namespace

CsvField::CsvField(const std::string& text)
    : encoded_(text.find_first_of(",\"\r\n") == std::string::npos ? text : in_quotes(text)) {}

CsvField::CsvField(const char* text) : CsvField(std::string(text)) {}

CsvField::CsvField(double v) : encoded_(train::significant(v)) {}

CsvField CsvField::quoted(const std::string& text) { return CsvField(Raw{}, in_quotes(text)); }

CsvField CsvField::fixed(double v, int decimals) { return CsvField(Raw{}, train::fixed(v, decimals)); }

Csv::Csv(const std::vector<CsvField>& header) : columns_(header.size()) {
  if (header.empty()) throw std::invalid_argument("Csv: a header of no columns");
  line(header);
}

void Csv::row(const std::vector<CsvField>& fields) {
  if (fields.size() != columns_)
    throw std::invalid_argument("Csv: a row of " + std::to_string(fields.size()) + " fields under a header of " +
                                std::to_string(columns_) + " columns");
  line(fields);
  ++rows_;
}

void Csv::line(const std::vector<CsvField>& fields) {
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) text_ += ',';
    text_ += fields[i].encoded();
  }
  text_ += '\n';
}

void Csv::write(const std::string& path) const { train::write_file(path, text_); }

}  // namespace rune::report
