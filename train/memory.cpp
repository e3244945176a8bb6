#include "train/memory.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace rune::train {

namespace {

const char* const kUnits[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
constexpr int kLastUnit = 6;

// The unit a byte count is shown in: the largest whose value is at least 1.
int unit_of(double bytes) {
  int u = 0;
  while (u < kLastUnit && bytes >= std::ldexp(1.0, 10 * (u + 1))) ++u;
  return u;
}

// printf's %.Ng without the exponent's "+" and leading zeros: 5.6e19, 1.2e-7.
std::string short_g(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  std::string s = buf;
  const std::size_t e = s.find('e');
  if (e == std::string::npos) return s;
  std::size_t d = e + 1;
  const bool negative = s[d] == '-';
  if (s[d] == '-' || s[d] == '+') ++d;
  while (d + 1 < s.size() && s[d] == '0') ++d;
  return s.substr(0, e + 1) + (negative ? "-" : "") + s.substr(d);
}

// A whole number with thousands separators: 219,043,332,096.
std::string grouped(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f", v);
  std::string digits = buf, out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// The value in a unit: three significant digits, whole numbers from 100 up.
std::string in_unit(double bytes, int unit) {
  const double v = bytes / std::ldexp(1.0, 10 * unit);
  char buf[32];
  if (v < 100) return short_g(v, 3) + " " + kUnits[unit];
  if (v < 1e6) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return std::string(buf) + " " + kUnits[unit];
  }
  return short_g(v, 3) + " " + kUnits[unit];
}

}  // namespace

std::string bytes_text(double bytes) { return in_unit(bytes, unit_of(bytes)); }

std::string count_text(double n) { return n < 1e9 ? grouped(n) : short_g(n, 2); }

MemoryLimit available_memory() {
  MemoryLimit m;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  m.bytes = pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page)
                                  : std::numeric_limits<double>::infinity();
  m.text = "this machine has " + bytes_text(m.bytes);
  const std::pair<int, const char*> limits[] = {{RLIMIT_AS, "ulimit -v"}, {RLIMIT_DATA, "ulimit -d"}};
  for (const auto& [resource, name] : limits) {
    rlimit r{};
    if (::getrlimit(resource, &r) == 0 && r.rlim_cur != RLIM_INFINITY && static_cast<double>(r.rlim_cur) < m.bytes) {
      m.bytes = static_cast<double>(r.rlim_cur);
      m.text = "this process may use " + bytes_text(m.bytes) + " (" + name + ")";
    }
  }
  return m;
}

void check_memory(const Config& c, const std::string& what, double bytes, const std::vector<SizeKey>& keys,
                  const MemoryLimit& limit) {
  if (!(bytes > limit.bytes)) return;
  // the keys to blame: those the config gives (a default is rarely the culprit), the largest
  // first, as many as account for the excess
  const auto weight = [](const SizeKey& k) {
    return k.growth > 0 ? k.growth : std::pow(static_cast<double>(k.value), k.power);
  };
  std::vector<SizeKey> blamed;
  for (const SizeKey& k : keys)
    if (weight(k) > 1 && c.has(k.key)) blamed.push_back(k);
  if (blamed.empty())
    for (const SizeKey& k : keys)
      if (weight(k) > 1) blamed.push_back(k);
  std::stable_sort(blamed.begin(), blamed.end(),
                   [&](const SizeKey& a, const SizeKey& b) { return weight(a) > weight(b); });
  std::size_t named = 0;
  for (double covered = 1; named < blamed.size() && covered < bytes / limit.bytes; ++named)
    covered *= weight(blamed[named]);
  blamed.resize(named);

  std::string where = c.origin(), names;
  bool one_place = !blamed.empty();
  for (const SizeKey& k : blamed) one_place = one_place && c.where(k.key) == c.where(blamed.front().key);
  for (const SizeKey& k : blamed) {
    names += (names.empty() ? "" : ", ") + k.key + " = " + std::to_string(k.value);
    if (!one_place) {  // "numbers.toml:21" -> " (line 21)", "numbers.toml (--set)" -> " (--set)"
      const std::string at = c.where(k.key).substr(c.origin().size());
      names += at.front() == ':' ? " (line " + at.substr(1) + ")" : at;
    }
  }
  if (one_place) where = c.where(blamed.front().key);
  // the need also in the limit's unit, when that is smaller: "204 EiB (219,043,332,096 GiB)"
  const int unit = unit_of(bytes), limit_unit = unit_of(limit.bytes);
  const double in_limit_unit = bytes / std::ldexp(1.0, 10 * limit_unit);
  const std::string also =
      unit > limit_unit && in_limit_unit < 1e15 ? " (" + grouped(in_limit_unit) + " " + kUnits[limit_unit] + ")" : "";
  throw ConfigError(where + ": " + (names.empty() ? "" : names + ": ") + what + " would need " + bytes_text(bytes) +
                    also + "; " + limit.text);
}

double activation_floats(double batch, double length, double width, double heads, double layers,
                         bool attention_weights) {
  return layers * batch * length * (8 * width + (attention_weights ? heads * length : 0.0));
}

}  // namespace rune::train
