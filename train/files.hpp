// The one atomic file writer, and durations as a person reads them.
//
// Every file Runestone writes (checkpoints, configs, logs, reports, PNGs) goes through
// write_atomically: the content is written to "<path>.tmp" beside the target, every write and the
// flush are checked, the file is fsync'ed, and only then renamed over `path`. A crash, a full disk
// or a failed write leaves the previous file at `path` as it was, and no temporary behind. The one
// file that grows instead, the metrics log, is appended to a whole line at a time
// (train/metrics_log.hpp); it is created, and cut back on a resume, through write_file.
#pragma once

#include <functional>
#include <string>

namespace rune::train {

// Calls write(tmp) to produce the file at `tmp` (a library that writes files itself: HDF5,
// cairo), then fsyncs and renames it to `path`. If write throws, or the file cannot be synced or
// renamed, the temporary is removed and std::runtime_error names `path` (`what` says what the
// file is: "checkpoint", "plot"; the message starts with it).
void write_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& write,
                      const std::string& what = "file");

// `text` (any bytes) as the whole content of `path`, atomically as above; `what` as above.
void write_file(const std::string& path, const std::string& text, const std::string& what = "file");

// "m:ss" under an hour, "h:mm:ss" from an hour; negative durations are 0:00.
std::string duration(double seconds);

}  // namespace rune::train
