#include "train/format.hpp"

#include <cmath>
#include <cstdio>

namespace rune::train {

namespace {

std::string formatted(const char* format, int precision, double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[512];  // "%.6f" of 1e300 is 308 digits
  std::snprintf(buf, sizeof buf, format, precision, v);
  return buf;
}

}  // namespace

std::string fixed(double v, int decimals) { return formatted("%.*f", decimals, v); }

std::string significant(double v, int digits) { return formatted("%.*g", digits, v); }

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string s;
  for (const std::string& p : parts) s += (s.empty() ? "" : separator) + p;
  return s;
}

}  // namespace rune::train
