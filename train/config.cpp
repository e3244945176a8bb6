#include "train/config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
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
  // keys set() gave a bare word that is no TOML value, kept as a string: the parser's reason
  std::map<std::string, std::string> bare_words;
  // unused_here(): key -> the switch and the values under which the key is read
  std::map<std::string, std::pair<std::string, std::vector<std::string>>> unused_here;
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

// A value outside its range, without the sentinel bounds of a range open on one side:
// "0 is outside [1, 512]", "0 is too small: must be at least 1", "2 is too large: must be below 1".
std::string out_of_range(const std::string& v, const std::string& lo, const std::string& hi, bool has_lo, bool has_hi,
                         bool hi_open, bool too_small) {
  if (has_lo && has_hi) return v + " is outside [" + lo + ", " + hi + (hi_open ? ")" : "]");
  if (too_small) return v + " is too small: must be at least " + lo;
  return v + " is too large: must be " + (hi_open ? "below " : "at most ") + hi;
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
  Config c = parse(ss.str(), path);
  if (c.given_keys().empty())
    throw ConfigError(
        "config " + path +
        " sets no key; name at least the task (task.name = \"translation\"); rune config lists every key");
  return c;
}

const std::string& Config::origin() const { return impl_->origin; }

std::string Config::where(const std::string& key) const {
  const toml::node* n = find(impl_->table, key);
  return n && n->source().begin.line > 0 ? impl_->origin + ":" + std::to_string(n->source().begin.line)
                                         : impl_->origin + (n ? " (--set)" : " (default)");
}

void Config::fail(const std::string& key, const std::string& message) const {
  throw ConfigError(where(key) + ": " + key + ": " + message);
}

void Config::wrong_type(const std::string& key, const std::string& expected) const {
  const toml::node* n = find(impl_->table, key);
  const auto bare = impl_->bare_words.find(key);
  if (n->is_string() && bare != impl_->bare_words.end()) {
    // a bare word of --set that no TOML value parses: say what is wrong with it
    const std::string& word = n->as_string()->get();
    std::string reason = bare->second;
    if (reason.find("not representable in 64 bits") != std::string::npos)
      fail(key, word + ": the integer does not fit in 64 bits");
    if (!word.empty() && !std::isalpha(static_cast<unsigned char>(word.front()))) {
      const std::string prefix = "Error while parsing ";
      if (reason.compare(0, prefix.size(), prefix) == 0) reason = reason.substr(prefix.size());
      fail(key, word + " is not a TOML value (" + reason + ")");
    }
    fail(key, "expected " + expected + ", got the word '" + word + "' (a string)");
  }
  fail(key, "expected " + expected + ", got " + type_name(*n));
}

bool Config::has(const std::string& key) const { return find(impl_->table, key) != nullptr; }

void Config::set(const std::string& assignment) {
  const std::size_t eq = assignment.find('=');
  const std::string key = eq == std::string::npos ? "" : assignment.substr(0, eq);
  if (key.empty() || key.front() == '.' || key.back() == '.' || key.find("..") != std::string::npos)
    throw ConfigError("--set " + assignment + ": expected section.key=value");
  const std::string value = assignment.substr(eq + 1);
  toml::table parsed;
  impl_->bare_words.erase(key);
  try {
    parsed = toml::parse("v = " + value);
  } catch (const toml::parse_error& e) {
    parsed.insert_or_assign("v", value);  // a bare word: a string
    impl_->bare_words[key] = std::string(e.description());
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
    if (!n->is_integer()) wrong_type(key, "an integer");
    v = n->as_integer()->get();
  }
  if (v < min || v > max)
    fail(key,
         out_of_range(std::to_string(v), std::to_string(min), std::to_string(max), has_min, has_max, false, v < min));
  record(impl_->resolved, key, v);
  return v;
}

double Config::number(const std::string& key, const Default<double>& fallback, NumberRange range,
                      const std::string& description) {
  const double min = range.min, max = range.max;
  const bool max_open = range.max_open;
  // infinite or the largest double: no bound on that side
  const bool has_min = min > -std::numeric_limits<double>::max(), has_max = max < std::numeric_limits<double>::max();
  declare(impl_->declared, impl_->declarations,
          {key,
           "float",
           toml_float(fallback.value),
           fallback.rule,
           range_text(format_number(min), format_number(max), has_min, has_max, max_open),
           {},
           description});
  double v = fallback.value;
  if (const toml::node* n = find(impl_->table, key)) {
    if (n->is_integer())
      v = static_cast<double>(n->as_integer()->get());
    else if (n->is_floating_point())
      v = n->as_floating_point()->get();
    else
      wrong_type(key, "a number");
  }
  if (!std::isfinite(v)) fail(key, format_number(v) + " is not a finite number");
  if (v < min || v > max || (max_open && v >= max))
    fail(key,
         out_of_range(format_number(v), format_number(min), format_number(max), has_min, has_max, max_open, v < min));
  record(impl_->resolved, key, v);
  return v;
}

bool Config::boolean(const std::string& key, const Default<bool>& fallback, const std::string& description) {
  declare(impl_->declared, impl_->declarations,
          {key, "boolean", fallback.value ? "true" : "false", fallback.rule, "", {}, description});
  bool v = fallback.value;
  if (const toml::node* n = find(impl_->table, key)) {
    if (!n->is_boolean()) wrong_type(key, "true or false");
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
    if (!a) wrong_type(key, "an array of strings");
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

// A value read as TOML shows it: "tsv" quoted, 3, true.
std::string value_text(const toml::node* n) {
  if (!n) return "unset";
  if (const auto* s = n->as_string()) return quoted(s->get());
  std::ostringstream os;
  n->visit([&](auto&& v) {
    if constexpr (toml::is_value<decltype(v)>) os << v;
  });
  return os.str();
}

// One line per key of `given` (key, line; 0 for --set) that no read declared: the condition under
// which it is read (unused_here()), or the closest declared name when one is close.
std::string unknown_keys(const std::vector<std::pair<std::string, int>>& given, const std::set<std::string>& declared,
                         const std::map<std::string, std::pair<std::string, std::vector<std::string>>>& unused,
                         const toml::table& resolved, const std::string& origin) {
  std::string problems;
  for (const auto& [key, line] : given) {
    if (declared.count(key)) continue;
    const std::string at = origin + (line > 0 ? ":" + std::to_string(line) : " (--set)") + ": ";
    if (const auto u = unused.find(key); u != unused.end()) {
      const auto& [switch_key, values] = u->second;
      std::string when;
      for (const std::string& v : values) when += (when.empty() ? "" : " or ") + quoted(v);
      problems += "\n  " + at + key + " is read only when " + switch_key + " = " + when + " (here " +
                  value_text(find(resolved, switch_key)) + ")";
      continue;
    }
    std::string best;
    std::size_t best_distance = 4;  // suggest only close names
    for (const std::string& d : declared) {
      const std::size_t dist = edit_distance(key, d);
      if (dist < best_distance) best_distance = dist, best = d;
    }
    problems += "\n  " + at + "unknown key " + key + (best.empty() ? "" : " (did you mean " + best + "?)");
  }
  return problems;
}

}  // namespace

void Config::check_all_used() const {
  std::vector<std::pair<std::string, int>> given;
  leaves(impl_->table, "", given);
  const std::string problems = unknown_keys(given, impl_->declared, impl_->unused_here, impl_->resolved, impl_->origin);
  if (!problems.empty()) throw ConfigError("config " + impl_->origin + " has keys this run does not read:" + problems);
}

void Config::check_overrides_used() const {
  std::vector<std::pair<std::string, int>> given;
  for (const std::string& key : impl_->overrides) given.emplace_back(key, 0);
  const std::string problems = unknown_keys(given, impl_->declared, impl_->unused_here, impl_->resolved, impl_->origin);
  if (!problems.empty()) throw ConfigError("--set names keys this command does not read:" + problems);
}

void Config::unused_here(const std::vector<std::string>& keys, const std::string& switch_key,
                         const std::vector<std::string>& values) {
  for (const std::string& key : keys) impl_->unused_here[key] = {switch_key, values};
}

std::vector<std::string> Config::given_keys() const {
  std::vector<std::pair<std::string, int>> given;
  leaves(impl_->table, "", given);
  std::vector<std::string> keys;
  for (const auto& [key, line] : given) keys.push_back(key);
  return keys;
}

namespace {

// The shortest text that reads back as the same double, as TOML writes a float: 0.6 (not
// toml++'s 0.59999999999999998), 2.0, 1e-9.
std::string shortest_float(double v) {
  if (!std::isfinite(v)) return toml_float(v);
  std::string text;
  for (int digits = 1; digits <= 17; ++digits) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    text = buf;
    if (std::strtod(buf, nullptr) == v) break;
  }
  if (const std::size_t e = text.find('e'); e != std::string::npos) {  // 1e-09 -> 1e-9, 1e+20 -> 1e20
    std::string exponent = text.substr(e + 1), sign;
    if (exponent[0] == '-' || exponent[0] == '+') sign = exponent[0] == '-' ? "-" : "", exponent.erase(0, 1);
    exponent.erase(0, std::min(exponent.find_first_not_of('0'), exponent.size() - 1));
    return text.substr(0, e + 1) + sign + exponent;
  }
  return text.find('.') == std::string::npos ? text + ".0" : text;  // still a float
}

// A value as given_values() shows it: strings in double quotes, arrays as [a, b].
std::string flat_text(const toml::node& n) {
  if (const auto* f = n.as_floating_point()) return shortest_float(f->get());
  if (const toml::array* a = n.as_array()) {
    std::string out;
    for (const toml::node& e : *a) out += (out.empty() ? "" : ", ") + flat_text(e);
    return "[" + out + "]";
  }
  if (n.is_table()) {
    std::ostringstream os;
    os << *n.as_table();
    return os.str();
  }
  return value_text(&n);
}

}  // namespace

std::vector<std::pair<std::string, std::string>> Config::given_values() const {
  std::vector<std::pair<std::string, int>> given;
  leaves(impl_->table, "", given);
  std::vector<std::pair<std::string, std::string>> values;
  for (const auto& [key, line] : given) values.emplace_back(key, flat_text(*find(impl_->table, key)));
  std::sort(values.begin(), values.end());
  return values;
}

const std::vector<KeyInfo>& Config::declarations() const { return impl_->declarations; }

std::string Config::resolved() const {
  std::ostringstream os;
  os << impl_->resolved << "\n";
  return os.str();
}

}  // namespace rune::train
