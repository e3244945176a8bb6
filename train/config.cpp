#include "train/config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace rune::train {

struct Config::Impl {
  toml::table table;     // what was given (file, then set())
  toml::table resolved;  // what was read, with the values used
  std::string origin;
  std::set<std::string> declared;      // every key read, given or not
  std::vector<KeyInfo> declarations;   // the same, in the order first read, as rune config shows them
  std::vector<std::string> overrides;  // the keys given by set(), in order
};

namespace {

std::vector<std::string> split_key(const std::string& key) {
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string part; std::getline(ss, part, '.');) parts.push_back(part);
  return parts;
}

// The node at a dotted key, or null.
const toml::node* find(const toml::table& t, const std::string& key) {
  const toml::node* node = &t;
  for (const std::string& part : split_key(key)) {
    const toml::table* tbl = node->as_table();
    if (!tbl) return nullptr;
    node = tbl->get(part);
    if (!node) return nullptr;
  }
  return node;
}

// The table that holds `key`'s last part, created along the way.
toml::table& parent_of(toml::table& root, const std::string& key, std::string& leaf) {
  std::vector<std::string> parts = split_key(key);
  leaf = parts.back();
  parts.pop_back();
  toml::table* t = &root;
  for (const std::string& part : parts) {
    toml::node* n = t->get(part);
    if (!n || !n->is_table()) {
      t->insert_or_assign(part, toml::table{});
      n = t->get(part);
    }
    t = n->as_table();
  }
  return *t;
}

template <class V>
void record(toml::table& resolved, const std::string& key, V&& value) {
  std::string leaf;
  parent_of(resolved, key, leaf).insert_or_assign(leaf, std::forward<V>(value));
}

// Every leaf (non-table) key under t, dotted, with its line.
void leaves(const toml::table& t, const std::string& prefix, std::vector<std::pair<std::string, int>>& out) {
  for (auto&& [k, v] : t) {
    const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const toml::table* sub = v.as_table())
      leaves(*sub, key, out);
    else
      out.emplace_back(key, static_cast<int>(v.source().begin.line));
  }
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date or time";
  }
}

std::string format_number(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// A float as TOML writes it: 0.1, 1.0, 1e-9 (not 1, which would be an integer, nor 1e-09).
std::string toml_float(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == std::floor(v) && std::abs(v) < 1e15) return std::to_string(static_cast<long long>(v)) + ".0";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  std::string s = buf;
  const std::size_t e = s.find('e');
  if (e != std::string::npos) {  // 1e-09 -> 1e-9, 1e+20 -> 1e20
    std::size_t digits = e + 1;
    std::string sign;
    if (s[digits] == '-' || s[digits] == '+') {
      if (s[digits] == '-') sign = "-";
      ++digits;
    }
    while (digits + 1 < s.size() && s[digits] == '0') ++digits;
    s = s.substr(0, e + 1) + sign + s.substr(digits);
  }
  return s;
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) out += ch == '"' || ch == '\\' ? std::string("\\") + ch : std::string(1, ch);
  return out + "\"";
}

std::string range_text(const std::string& lo, const std::string& hi, bool has_lo, bool has_hi, bool hi_open) {
  if (has_lo && has_hi) return "[" + lo + ", " + hi + (hi_open ? ")" : "]");
  if (has_lo) return ">= " + lo;
  if (has_hi) return (hi_open ? "< " : "<= ") + hi;
  return "";
}

void declare(std::set<std::string>& declared, std::vector<KeyInfo>& declarations, KeyInfo info) {
  if (!declared.insert(info.key).second) return;
  declarations.push_back(std::move(info));
}

}  // namespace

Config::Config(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Config::Config(Config&&) noexcept = default;
Config& Config::operator=(Config&&) noexcept = default;
Config::~Config() = default;

Config Config::parse(const std::string& text, const std::string& origin) {
  auto impl = std::make_unique<Impl>();
  impl->origin = origin;
  try {
    impl->table = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    throw ConfigError(origin + ":" + std::to_string(e.source().begin.line) + ":" +
                      std::to_string(e.source().begin.column) + ": " + std::string(e.description()));
  }
  return Config(std::move(impl));
}

Config Config::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError("config " + path + " cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path);
}

const std::string& Config::origin() const { return impl_->origin; }

void Config::fail(const std::string& key, const std::string& message) const {
  const toml::node* n = find(impl_->table, key);
  const std::string where = n && n->source().begin.line > 0
                                ? impl_->origin + ":" + std::to_string(n->source().begin.line)
                                : impl_->origin + (n ? " (--set)" : " (default)");
  throw ConfigError(where + ": " + key + ": " + message);
}

bool Config::has(const std::string& key) const { return find(impl_->table, key) != nullptr; }

void Config::set(const std::string& assignment) {
  const std::size_t eq = assignment.find('=');
  const std::string key = eq == std::string::npos ? "" : assignment.substr(0, eq);
  if (key.empty() || key.front() == '.' || key.back() == '.' || key.find("..") != std::string::npos)
    throw ConfigError("--set " + assignment + ": expected section.key=value");
  const std::string value = assignment.substr(eq + 1);
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    parsed.insert_or_assign("v", value);  // a bare word: a string
  }
  std::string leaf;
  toml::table& parent = parent_of(impl_->table, key, leaf);
  impl_->overrides.push_back(key);
  // a value set on the command line carries no file line (errors say "--set")
  if (const toml::node* n = parsed.get("v"); n->is_table())
    parent.insert_or_assign(leaf, *n->as_table());
  else if (const toml::array* a = n->as_array())
    parent.insert_or_assign(leaf, *a);
  else
    n->visit([&](auto&& v) {
      if constexpr (toml::is_value<decltype(v)>) parent.insert_or_assign(leaf, *v);
    });
}

std::int64_t Config::integer(const std::string& key, const Default<std::int64_t>& fallback, IntRange range,
                             const std::string& description) {
  const std::int64_t min = range.min, max = range.max;
  const bool has_min = min != std::numeric_limits<std::int64_t>::min();
  const bool has_max = max != std::numeric_limits<std::int64_t>::max();
  declare(impl_->declared, impl_->declarations,
          {key,
           "integer",
           std::to_string(fallback.value),
           fallback.rule,
           range_text(std::to_string(min), std::to_string(max), has_min, has_max, false),
           {},
           description});
  std::int64_t v = fallback.value;
  if (const toml::node* n = find(impl_->table, key)) {
    if (!n->is_integer()) fail(key, "expected an integer, got " + type_name(*n));
    v = n->as_integer()->get();
  }
  if (v < min || v > max)
    fail(key, std::to_string(v) + " is outside [" +
                  (min == std::numeric_limits<std::int64_t>::min() ? "-inf" : std::to_string(min)) + ", " +
                  (max == std::numeric_limits<std::int64_t>::max() ? "inf" : std::to_string(max)) + "]");
  record(impl_->resolved, key, v);
  return v;
}

double Config::number(const std::string& key, const Default<double>& fallback, NumberRange range,
                      const std::string& description) {
  const double min = range.min, max = range.max;
  const bool max_open = range.max_open;
  declare(impl_->declared, impl_->declarations,
          {key,
           "float",
           toml_float(fallback.value),
           fallback.rule,
           range_text(format_number(min), format_number(max), std::isfinite(min), std::isfinite(max), max_open),
           {},
           description});
  double v = fallback.value;
  if (const toml::node* n = find(impl_->table, key)) {
    if (n->is_integer())
      v = static_cast<double>(n->as_integer()->get());
    else if (n->is_floating_point())
      v = n->as_floating_point()->get();
    else
      fail(key, "expected a number, got " + type_name(*n));
  }
  if (!std::isfinite(v) || v < min || v > max || (max_open && v >= max))
    fail(key,
         format_number(v) + " is outside [" + format_number(min) + ", " + format_number(max) + (max_open ? ")" : "]"));
  record(impl_->resolved, key, v);
  return v;
}

bool Config::boolean(const std::string& key, const Default<bool>& fallback, const std::string& description) {
  declare(impl_->declared, impl_->declarations,
          {key, "boolean", fallback.value ? "true" : "false", fallback.rule, "", {}, description});
  bool v = fallback.value;
  if (const toml::node* n = find(impl_->table, key)) {
    if (!n->is_boolean()) fail(key, "expected true or false, got " + type_name(*n));
    v = n->as_boolean()->get();
  }
  record(impl_->resolved, key, v);
  return v;
}

std::string Config::string(const std::string& key, const Default<std::string>& fallback,
                           const std::string& description) {
  return string(key, fallback, {}, description);
}

std::string Config::string(const std::string& key, const Default<std::string>& fallback,
                           const std::vector<std::string>& choices, const std::string& description) {
  declare(impl_->declared, impl_->declarations,
          {key, "string", quoted(fallback.value), fallback.rule, "", choices, description});
  std::string v = fallback.value;
  if (const toml::node* n = find(impl_->table, key)) {
    if (!n->is_string()) fail(key, "expected a string, got " + type_name(*n));
    v = n->as_string()->get();
  }
  if (!choices.empty() && std::find(choices.begin(), choices.end(), v) == choices.end()) {
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
    fail(key, "'" + v + "' is not one of " + list);
  }
  record(impl_->resolved, key, v);
  return v;
}

std::vector<std::string> Config::strings(const std::string& key, const std::vector<std::string>& fallback,
                                         const std::string& description) {
  std::string shown;
  for (const std::string& f : fallback) shown += (shown.empty() ? "" : ", ") + quoted(f);
  declare(impl_->declared, impl_->declarations, {key, "strings", "[" + shown + "]", "", "", {}, description});
  std::vector<std::string> v = fallback;
  if (const toml::node* n = find(impl_->table, key)) {
    const toml::array* a = n->as_array();
    if (!a) fail(key, "expected an array of strings, got " + type_name(*n));
    v.clear();
    for (const toml::node& e : *a) {
      if (!e.is_string()) fail(key, "expected an array of strings, found " + type_name(e) + " in it");
      v.push_back(e.as_string()->get());
    }
  }
  toml::array out;
  for (const auto& s : v) out.push_back(s);
  record(impl_->resolved, key, std::move(out));
  return v;
}

namespace {

// One line per key of `given` (key, line; 0 for --set) that no read declared, with the closest
// declared name when one is close.
std::string unknown_keys(const std::vector<std::pair<std::string, int>>& given, const std::set<std::string>& declared,
                         const std::string& origin) {
  std::string problems;
  for (const auto& [key, line] : given) {
    if (declared.count(key)) continue;
    std::string best;
    std::size_t best_distance = 4;  // suggest only close names
    for (const std::string& d : declared) {
      const std::size_t dist = edit_distance(key, d);
      if (dist < best_distance) best_distance = dist, best = d;
    }
    problems += "\n  " + origin + (line > 0 ? ":" + std::to_string(line) : " (--set)") + ": unknown key " + key +
                (best.empty() ? "" : " (did you mean " + best + "?)");
  }
  return problems;
}

}  // namespace

void Config::check_all_used() const {
  std::vector<std::pair<std::string, int>> given;
  leaves(impl_->table, "", given);
  const std::string problems = unknown_keys(given, impl_->declared, impl_->origin);
  if (!problems.empty())
    throw ConfigError("config " + impl_->origin + " has keys this program does not know:" + problems);
}

void Config::check_overrides_used() const {
  std::vector<std::pair<std::string, int>> given;
  for (const std::string& key : impl_->overrides) given.emplace_back(key, 0);
  const std::string problems = unknown_keys(given, impl_->declared, impl_->origin);
  if (!problems.empty()) throw ConfigError("--set names keys this command does not read:" + problems);
}

std::vector<std::string> Config::given_keys() const {
  std::vector<std::pair<std::string, int>> given;
  leaves(impl_->table, "", given);
  std::vector<std::string> keys;
  for (const auto& [key, line] : given) keys.push_back(key);
  return keys;
}

const std::vector<KeyInfo>& Config::declarations() const { return impl_->declarations; }

std::string Config::resolved() const {
  std::ostringstream os;
  os << impl_->resolved << "\n";
  return os.str();
}

}  // namespace rune::train
