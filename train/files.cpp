#include "train/files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace rune::train {

namespace {

std::runtime_error failure(const std::string& what, const std::string& path, const std::string& why) {
  return std::runtime_error(what + " " + path + ": " + why);
}

// Flushes the file's data to the disk, so that the rename cannot make an empty file the target.
void sync(const std::string& tmp, const std::string& what, const std::string& path) {
  const int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd < 0) throw failure(what, path, "cannot reopen " + tmp + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw failure(what, path, "syncing " + tmp + " failed: " + std::strerror(err));
}

thread_local FileTransaction* current_transaction = nullptr;

}  // namespace

FileTransaction::FileTransaction() : outer_(current_transaction) { current_transaction = this; }

FileTransaction::~FileTransaction() {
  current_transaction = outer_;
  for (const Pending& p : pending_) {
    std::error_code ignored;
    std::filesystem::remove(p.tmp, ignored);  // not committed: the previous files stay
  }
}

void FileTransaction::commit() {
  for (const Pending& p : pending_) {
    std::error_code ec;
    std::filesystem::rename(p.tmp, p.path, ec);
    if (ec) throw failure(p.what, p.path, "renaming " + p.tmp + " failed: " + ec.message());
  }
  pending_.clear();
}

void remove_temporaries(const std::string& folder) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec))
    if (entry.path().extension() == ".tmp") {
      std::error_code ignored;
      std::filesystem::remove(entry.path(), ignored);
    }
}

void write_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& write,
                      const std::string& what) {
  const std::string tmp = path + ".tmp";
  try {
    write(tmp);
    sync(tmp, what, path);
    if (FileTransaction* t = current_transaction) {  // renamed with the others, at its commit()
      for (const auto& pending : t->pending_)
        if (pending.tmp == tmp) return;
      t->pending_.push_back({tmp, path, what});
      return;
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) throw failure(what, path, "renaming " + tmp + " failed: " + ec.message());
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);  // the previous file at `path` is untouched
    throw;
  }
}

void write_file(const std::string& path, const std::string& text, const std::string& what) {
  write_atomically(
      path,
      [&](const std::string& tmp) {
        std::FILE* f = std::fopen(tmp.c_str(), "wb");
        if (!f) throw failure(what, path, "cannot create " + tmp + ": " + std::strerror(errno));
        const std::size_t wrote = std::fwrite(text.data(), 1, text.size(), f);
        const int err = errno;
        const bool flushed = std::fflush(f) == 0;
        const bool closed = std::fclose(f) == 0;
        if (wrote != text.size() || !flushed || !closed)
          throw failure(what, path, "writing " + tmp + " failed: " + std::strerror(wrote != text.size() ? err : errno));
      },
      what);
}

std::string duration(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

}  // namespace rune::train
