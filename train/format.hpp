// Numbers as text, the same way in every file and line Runestone writes (CSV, Markdown, JSON-free
// printouts): a fixed number of decimals for what a person reads and compares, nine significant
// digits for what a program reads back (enough to round-trip a float32 exactly).
// Non-finite values are "nan", "inf" and "-inf" (never glibc's "-nan").
#pragma once

#include <string>
#include <vector>

namespace rune::train {

// printf's "%.*f": fixed(0.5, 3) == "0.500".
std::string fixed(double v, int decimals);

// printf's "%.*g": significant(0.1f) == "0.100000001", significant(3.0) == "3".
std::string significant(double v, int digits = 9);

// The parts with `separator` between them: join({"a", "b"}, ", ") == "a, b".
std::string join(const std::vector<std::string>& parts, const std::string& separator);

}  // namespace rune::train
