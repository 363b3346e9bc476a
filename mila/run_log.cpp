// run_log.cpp - see run_log.h.
#include "mila/run_log.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace mila {
namespace {

std::string log_header(const std::vector<std::string>& columns) {
  std::string h = "step,epoch,lr";
  for (const std::string& c : columns) h += "," + c;
  return h + ",seconds,frames_per_s\n";
}

}  // namespace

void write_text_atomic(const fs::path& path, const std::string& text) { replace_file_durably(path, text); }

std::string read_text(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("train_nyu: cannot read " + path.string());
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string exact_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::vector<std::string> loss_columns(const Config& cfg) {
  std::vector<std::string> cols = {"total"};
  for (const TaskSpec& t : cfg.tasks) cols.push_back(t.name());
  if (cfg.mimic) cols.insert(cols.end(), {"l1", "disc"});
  return cols;
}

RunLog::RunLog(const fs::path& path, const Config& cfg, int64_t first_step) : columns_(loss_columns(cfg)) {
  const std::string header = log_header(columns_);
  if (!fs::exists(path)) {
    write_text_atomic(path, header);
  } else {
    std::istringstream in(read_text(path));
    std::string line, kept = header;
    std::getline(in, line);
    if (line + "\n" != header) throw std::runtime_error("train_nyu: " + path.string() + " has another header: '" + line + "'");
    for (int64_t line_number = 2; std::getline(in, line); ++line_number) {
      if (line.empty()) continue;
      std::vector<std::string> cells;
      std::stringstream ls(line);
      for (std::string c; std::getline(ls, c, ',');) cells.push_back(c);
      if (cells.size() != 3 + columns_.size() + 2) continue;  // a row cut by an interruption
      // A number, all of the cell: std::stoll/stod alone would name neither the file nor the cell.
      const auto number = [&](const std::string& cell) {
        size_t used = 0;
        double v = 0;
        try {
          v = std::stod(cell, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != cell.size())
          throw std::runtime_error("train_nyu: " + path.string() + " line " + std::to_string(line_number) + ": '" +
                                   cell + "' is not a number (the log is damaged; move it aside to resume)");
        return v;
      };
      const double step_value = number(cells[0]);
      if (step_value != std::floor(step_value) || step_value < 0)
        throw std::runtime_error("train_nyu: " + path.string() + " line " + std::to_string(line_number) + ": step '" +
                                 cells[0] + "' is not a step number (the log is damaged; move it aside to resume)");
      const auto step = int64_t(step_value);
      if (step >= first_step) break;
      Row r{step, {}};
      for (size_t i = 0; i < columns_.size(); ++i) r.losses.push_back(number(cells[3 + i]));
      rows_.push_back(r);
      kept += line + "\n";
    }
    write_text_atomic(path, kept);
  }
  file_.emplace(path);
}

void RunLog::append(int64_t step, int64_t epoch, double lr, const std::vector<double>& losses, double seconds,
                    double frames_per_s) {
  std::ostringstream line;
  line << step << "," << epoch << "," << exact_text(lr);
  for (double v : losses) line << "," << exact_text(v);
  line << "," << exact_text(seconds) << "," << exact_text(frames_per_s) << "\n";
  file_->append(line.str());
  rows_.push_back({step, losses});
}

// One polyline per term on a log scale (the terms differ by orders of magnitude), steps on x.
// Hand-written: a plot library is not worth a dependency.
void RunLog::write_plot(const fs::path& path) const {
  const double W = 820, H = 440, left = 60, right = 120, top = 20, bottom = 40;
  double lo = 1e300, hi = -1e300;
  int64_t s_max = 1;
  for (const Row& r : rows_) {
    s_max = std::max(s_max, r.step);
    for (double v : r.losses)
      if (v > 0 && std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (!(lo < hi)) lo = 1e-3, hi = 10;
  const double l0 = std::floor(std::log10(lo)), l1 = std::ceil(std::log10(hi));
  auto X = [&](double s) { return left + (W - left - right) * s / double(s_max); };
  auto Y = [&](double v) { return top + (H - top - bottom) * (l1 - std::log10(std::max(v, lo))) / std::max(l1 - l0, 1.0); };
  static const char* colours[] = {"#000000", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"};
  std::ostringstream svg;
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' font-size='12'>\n"
      << "<rect width='100%' height='100%' fill='white'/>\n";
  for (double e = l0; e <= l1; ++e)
    svg << "<line x1='" << left << "' x2='" << W - right << "' y1='" << Y(std::pow(10, e)) << "' y2='" << Y(std::pow(10, e))
        << "' stroke='#ddd'/><text x='5' y='" << Y(std::pow(10, e)) + 4 << "'>1e" << int(e) << "</text>\n";
  svg << "<text x='" << (W - right) / 2 << "' y='" << H - 8 << "'>step (0 .. " << s_max << ")</text>\n";
  // Long runs: at most ~800 points per curve (every k-th row) so the file stays small.
  const size_t stride = std::max<size_t>(1, rows_.size() / 800);
  for (size_t c = 0; c < columns_.size(); ++c) {
    svg << "<polyline fill='none' stroke-width='1.2' stroke='" << colours[c % 8] << "' points='";
    for (size_t i = 0; i < rows_.size(); i += stride)
      if (std::isfinite(rows_[i].losses[c]) && rows_[i].losses[c] > 0) svg << X(double(rows_[i].step)) << "," << Y(rows_[i].losses[c]) << " ";
    svg << "'/>\n<text x='" << W - right + 8 << "' y='" << top + 16 * (c + 1) << "' fill='" << colours[c % 8] << "'>" << columns_[c]
        << "</text>\n";
  }
  svg << "</svg>\n";
  write_text_atomic(path, svg.str());
}

}  // namespace mila
