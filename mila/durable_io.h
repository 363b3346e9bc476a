// durable_io.h - the file writes a training run cannot afford to lose or get wrong: every call
// checks its result and throws WriteError naming the file and the cause ("No space left on
// device"), and what must survive a crash is flushed to disk (fsync) before the call returns.
//
// Note [crash points]
// A crash test must be able to stop the program between any two of the calls that change
// what is on disk, as a power cut or the OOM killer would. Each such call here (an open that
// creates, write, fsync, rename, unlink, mkdir, rmdir) first passes crash_point(); the
// checkpoint code (mila/run_checkpoint.h) passes one around the writes it hands to other
// layers. With MILA_CRASH_AT=n in the environment, the n-th crash point of the process
// raises SIGKILL: no destructor runs and no buffer is flushed. Without it a crash point is a
// counter increment. tests/test_resume.cpp kills train_nyu at every point in turn.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mila {

// A write, flush, rename or removal that failed; what() names the file and the cause.
struct WriteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Note [crash points]: kills the process when this is the MILA_CRASH_AT-th call.
void crash_point();
// How many crash points this process has passed (what MILA_CRASH_AT counts).
int64_t crash_points_passed();

// Creates or truncates path, writes bytes and fsyncs it. Not atomic by itself: for a new
// file in a folder that is renamed into place whole, or through replace_file_durably.
void write_file_durably(const std::filesystem::path& path, std::string_view bytes);
// Replaces path as a whole: a temporary sibling written durably, renamed over it, the folder
// synced. A crash leaves the old contents or the new, never a mix.
void replace_file_durably(const std::filesystem::path& path, std::string_view bytes);
// fsync of a folder: the entries created, renamed or removed in it are on disk.
void sync_directory(const std::filesystem::path& dir);
void make_directory(const std::filesystem::path& dir);
// rename(2): atomic within one file system; `to` must not be a non-empty folder.
void rename_path(const std::filesystem::path& from, const std::filesystem::path& to);
// Removes a file or a folder with everything under it, one unlink or rmdir at a time.
void remove_tree(const std::filesystem::path& path);

// A file that grows by whole lines (log.csv, eval.jsonl): each append is one write(2) of the
// complete line to a file opened O_APPEND, so a crash cuts the file between lines, never
// inside one, and a failed write is reported at the step that made it.
class AppendFile {
 public:
  explicit AppendFile(std::filesystem::path path);
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  void append(std::string_view line);  // line ends with '\n'
  void sync();                         // fsync: the lines so far are on disk
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

}  // namespace mila
