// progress.cpp - see progress.h.
#include "mila/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace mila {

std::string clock_text(double s) {
  char buf[32];
  const int64_t t = int64_t(std::max(0.0, s) + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(t / 3600), (long long)(t / 60 % 60), (long long)(t % 60));
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", (long long)(t / 60), (long long)(t % 60));
  return buf;
}

ProgressLine::ProgressLine(int64_t first, int64_t total, bool on)
    : first_(first), total_(total), on_(on), tty_(isatty(STDOUT_FILENO) != 0) {}

void ProgressLine::update(int64_t step, const std::vector<std::string>& names, const std::vector<double>& values,
                          double fps, double elapsed) {
  if (!on_) return;
  const int64_t done = step + 1;
  const int64_t every = std::max<int64_t>(1, total_ / 50);
  if (!tty_ && done % every != 0 && done != total_) return;
  const double left = elapsed / double(done - first_) * double(total_ - done);
  const int width = 24, filled = int(width * done / std::max<int64_t>(total_, 1));
  std::string line = "[";
  line.append(size_t(filled), '=').append(size_t(width - filled), ' ');
  line += "] " + std::to_string(done) + "/" + std::to_string(total_);
  for (size_t i = 0; i < names.size(); ++i) {
    char buf[48];
    std::snprintf(buf, sizeof buf, " %s %.3f", names[i].c_str(), values[i]);
    line += buf;
  }
  char tail[96];
  std::snprintf(tail, sizeof tail, " | %.1f frames/s | %s left", fps, clock_text(left).c_str());
  line += tail;
  if (tty_) std::printf("\r%s\033[K", line.c_str());
  else std::printf("%s\n", line.c_str());
  if (tty_ && done == total_) std::printf("\n");
  std::fflush(stdout);
}

void ProgressLine::break_line() {
  if (on_ && tty_) std::printf("\n");
}

}  // namespace mila
