// What the rune subcommands share for their output: text files written atomically and durations
// as a person reads them.
#pragma once

#include <string>

namespace rune::cli {

// Writes `text` to path.tmp, then renames it to `path`: a reader never sees half a file. Throws
// std::runtime_error naming the file when it cannot be written.
void write_file(const std::string& path, const std::string& text);

// "m:ss" under an hour, "h:mm:ss" from an hour; negative durations are 0:00.
std::string duration(double seconds);

}  // namespace rune::cli
