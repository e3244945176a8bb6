// UTF-8 helpers shared by the text readers and scorers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace rune::text {

inline bool is_continuation_byte(unsigned char c) { return (c & 0xC0) == 0x80; }

// The bytes of the UTF-8 sequence a lead byte starts: 1 for ASCII and for a byte that starts
// none (a stray continuation byte stands alone).
inline std::size_t utf8_sequence_length(unsigned char lead) {
  return lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 1;
}

// Code points of a UTF-8 string (its bytes that are not continuation bytes).
inline std::int64_t code_points(const std::string& s) {
  std::int64_t n = 0;
  for (const char c : s) n += !is_continuation_byte(static_cast<unsigned char>(c));
  return n;
}

// Appends code point `cp` (at most U+10FFFF) to `out` as UTF-8.
inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace rune::text
