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
#include <vector>

namespace rune::train {

// Calls write(tmp) to produce the file at `tmp` (a library that writes files itself: HDF5,
// cairo), then fsyncs and renames it to `path`. If write throws, or the file cannot be synced or
// renamed, the temporary is removed and std::runtime_error names `path` (`what` says what the
// file is: "checkpoint", "plot"; the message starts with it).
void write_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& write,
                      const std::string& what = "file");

// Files written together, all or none (a command's report: a PNG and its CSV). While one is open
// on this thread, write_atomically writes and syncs each temporary but renames none; commit()
// renames them all. Destroyed without commit() (a write failed, say), it removes its
// temporaries: every file that was there before is left as it was.
class FileTransaction {
 public:
  FileTransaction();
  ~FileTransaction();
  FileTransaction(const FileTransaction&) = delete;
  FileTransaction& operator=(const FileTransaction&) = delete;
  // Renames every temporary over its target; std::runtime_error names one that fails.
  void commit();

 private:
  friend void write_atomically(const std::string&, const std::function<void(const std::string&)>&, const std::string&);
  struct Pending {
    std::string tmp, path, what;
  };
  std::vector<Pending> pending_;  // written and synced, not yet renamed
  FileTransaction* outer_;
};

// Removes the temporaries ("*.tmp") that writes killed half-way left in `folder` (not below it).
// Only for a folder no other process writes to: a run's own folder, say.
void remove_temporaries(const std::string& folder);

// `text` (any bytes) as the whole content of `path`, atomically as above; `what` as above.
void write_file(const std::string& path, const std::string& text, const std::string& what = "file");

// "m:ss" under an hour, "h:mm:ss" from an hour; negative durations are 0:00.
std::string duration(double seconds);

}  // namespace rune::train
