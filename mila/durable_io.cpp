// durable_io.cpp - see durable_io.h. Plain POSIX calls rather than streams: a stream hides
// which write failed, and buffers what a crash should find either written or not.
#include "mila/durable_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <vector>

namespace fs = std::filesystem;

namespace mila {
namespace {

std::atomic<int64_t> g_crash_points{0};

// MILA_CRASH_AT, read once; 0 (never) when unset or not a positive number.
int64_t crash_target() {
  static const int64_t target = [] {
    const char* text = std::getenv("MILA_CRASH_AT");
    if (!text || !*text) return int64_t(0);
    char* end = nullptr;
    const long long n = std::strtoll(text, &end, 10);
    return *end == '\0' && n > 0 ? int64_t(n) : int64_t(0);
  }();
  return target;
}

[[noreturn]] void fail(const std::string& what, const fs::path& path, int error) {
  throw WriteError("cannot " + what + " " + path.string() + ": " + std::strerror(error));
}

// write(2) until every byte is written: a regular file takes it in one call unless the disk
// fills, and then the next call reports why.
void write_all(int fd, std::string_view bytes, const fs::path& path) {
  while (!bytes.empty()) {
    crash_point();
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("write", path, n < 0 ? errno : EIO);
    bytes.remove_prefix(size_t(n));
  }
}

void fsync_fd(int fd, const fs::path& path) {
  crash_point();
  if (::fsync(fd) != 0) fail("flush to disk", path, errno);
}

int open_for_writing(const fs::path& path, int flags) {
  crash_point();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
  if (fd < 0) fail("create", path, errno);
  return fd;
}

}  // namespace

void crash_point() {
  const int64_t n = ++g_crash_points;
  if (n == crash_target()) ::raise(SIGKILL);
}

int64_t crash_points_passed() { return g_crash_points.load(); }

void write_file_durably(const fs::path& path, std::string_view bytes) {
  const int fd = open_for_writing(path, O_TRUNC);
  try {
    write_all(fd, bytes, path);
    fsync_fd(fd, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) fail("close", path, errno);
}

void replace_file_durably(const fs::path& path, std::string_view bytes) {
  const fs::path tmp = path.string() + ".tmp";
  try {
    write_file_durably(tmp, bytes);
    rename_path(tmp, path);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  sync_directory(path.has_parent_path() ? path.parent_path() : fs::path("."));
}

void sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("open folder", dir, errno);
  crash_point();
  // EINVAL: a file system that cannot sync folders (some network ones) already keeps them.
  const bool ok = ::fsync(fd) == 0 || errno == EINVAL;
  const int error = errno;
  ::close(fd);
  if (!ok) fail("flush to disk the folder", dir, error);
}

void make_directory(const fs::path& dir) {
  crash_point();
  if (::mkdir(dir.c_str(), 0755) != 0) fail("create the folder", dir, errno);
}

void rename_path(const fs::path& from, const fs::path& to) {
  crash_point();
  if (::rename(from.c_str(), to.c_str()) != 0) fail("rename " + from.string() + " to", to, errno);
}

void remove_tree(const fs::path& path) {
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(path, ec);
  if (ec || !fs::exists(status)) return;
  if (fs::is_directory(status)) {
    std::vector<fs::path> entries;
    for (const fs::directory_entry& e : fs::directory_iterator(path)) entries.push_back(e.path());
    for (const fs::path& e : entries) remove_tree(e);
    crash_point();
    if (::rmdir(path.c_str()) != 0) fail("remove the folder", path, errno);
  } else {
    crash_point();
    if (::unlink(path.c_str()) != 0) fail("remove", path, errno);
  }
}

AppendFile::AppendFile(fs::path path) : path_(std::move(path)), fd_(open_for_writing(path_, O_APPEND)) {}

AppendFile::~AppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

void AppendFile::append(std::string_view line) { write_all(fd_, line, path_); }

void AppendFile::sync() { fsync_fd(fd_, path_); }

}  // namespace mila
