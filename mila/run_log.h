// run_log.h - what a training run writes as it goes (mila/trainer.h): log.csv, a row per step
// with every loss term, and loss.svg, the curves drawn from it; and the text-file primitives
// every file of the run's folder is written with.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "mila/config.h"
#include "mila/durable_io.h"

namespace mila {

// Writes text to path through a temporary file, fsync and a rename (never half a file);
// throws WriteError naming the file and the cause (mila/durable_io.h).
void write_text_atomic(const std::filesystem::path& path, const std::string& text);
std::string read_text(const std::filesystem::path& path);

// Losses are float32: 9 significant digits print every float exactly, so two runs that
// computed the same bits log the same text (what the resume test compares).
std::string exact_text(double v);

// The loss terms of a run of `cfg`, in log order: total, each task, and l1 and disc with mimic.
std::vector<std::string> loss_columns(const Config& cfg);

// log.csv: the header "step,epoch,lr,<loss columns>,seconds,frames_per_s", then a row per step.
class RunLog {
 public:
  // Opens `path` for a run of `cfg` that starts at first_step: a new log gets its header; an
  // existing one (a resumed run) keeps the rows of steps < first_step, since the run rewrites
  // what follows, and must have this run's header.
  RunLog(const std::filesystem::path& path, const Config& cfg, int64_t first_step);

  const std::vector<std::string>& columns() const { return columns_; }
  // One step's row, as one write of the whole line (a failure throws WriteError); `losses`
  // in the order of columns().
  void append(int64_t step, int64_t epoch, double lr, const std::vector<double>& losses, double seconds, double frames_per_s);
  // fsync: the rows so far are on disk (before a checkpoint that follows them is).
  void sync() { file_->sync(); }
  // The curves of every row so far as an SVG.
  void write_plot(const std::filesystem::path& path) const;

 private:
  struct Row {
    int64_t step = 0;
    std::vector<double> losses;
  };
  std::vector<std::string> columns_;
  std::vector<Row> rows_;  // the kept rows and those appended since: what the plot draws
  std::optional<AppendFile> file_;
};

}  // namespace mila
