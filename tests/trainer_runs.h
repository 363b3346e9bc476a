// trainer_runs.h - what the training program's tests share: the smallest run of
// mila/trainer.h (tiny_run), and readers of what a run leaves in its folder.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "mila/trainer.h"

namespace mila::test {

inline std::string read(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The loss columns of log.csv (step, epoch, lr and the terms; not the timing columns).
inline std::vector<std::string> loss_rows(const std::filesystem::path& log) {
  std::vector<std::string> rows;
  std::istringstream in(read(log));
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    size_t cut = line.size();
    for (int k = 0; k < 2; ++k) cut = line.rfind(',', cut - 1);  // drop seconds, frames_per_s
    rows.push_back(line.substr(0, cut));
  }
  return rows;
}

// 2 train sequences, 1 val sequence of 6 frames at 32x48; the smallest model (1.4M parameters).
inline TrainOptions tiny_run(const std::filesystem::path& cache, const std::filesystem::path& out) {
  TrainOptions o;
  o.cache = cache.string();
  o.synthetic.height = 32, o.synthetic.width = 48;
  o.synthetic.train_sequences = 2, o.synthetic.val_sequences = 1;
  o.synthetic.frames_per_sequence = 6;
  o.synthetic.annotate_first = 1, o.synthetic.annotate_stride = 2;
  o.synthetic.seed = 3;
  o.model.slow_depth = 18, o.model.fast_depth = 18;
  o.model.width = 8, o.model.C = 16, o.model.D = 8, o.model.L = 3, o.model.K = 2;
  o.steps = 4;
  o.batch = 2;
  o.lr = 1e-3;
  o.workers = 1;
  o.checkpoint_every = 2;
  o.progress = false;
  o.final_eval = false;
  o.visualize = 0;
  o.out = out.string();
  return o;
}

}  // namespace mila::test
