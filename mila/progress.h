// progress.h - the training progress line: a bar, the step, each loss term, the speed and
// the time left; redrawn in place on a terminal, a line per ~2% of the run otherwise (a log
// file stays short).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mila {

// Seconds as m:ss or h:mm:ss.
std::string clock_text(double seconds);

class ProgressLine {
 public:
  // A run of steps [first, total); `on` false: prints nothing.
  ProgressLine(int64_t first, int64_t total, bool on);
  // After step `step`, `elapsed` seconds into the run.
  void update(int64_t step, const std::vector<std::string>& names, const std::vector<double>& values, double frames_per_s,
              double elapsed);
  // Before other output on a terminal: end the progress line.
  void break_line();

 private:
  int64_t first_, total_;
  bool on_, tty_;
};

}  // namespace mila
