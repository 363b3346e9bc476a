// memory.cpp - see memory.h, which states every term computed here.
#include "mila/memory.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "mila/cost.h"

namespace mila {
namespace {

constexpr double kFloatBytes = 4;

// The last frame's heads for one task with c channels, in elements per image.
double head_elements(const Config& cfg, double F, double n, double frame_pixels, double c) {
  const double slots = cfg.multi_frame ? 3 : 2;
  const double ila = cfg.attention ? 2 * (2 * F * n + F * double(cfg.C)) : 0;
  return ila + slots * F * double(cfg.C) + (3 * 512 + 3 * 256) * F + c * F + 8 * c * frame_pixels;
}

double attention_span(const Config& cfg, double F) { return cfg.L == 0 ? F : double(cfg.L * cfg.L); }

void check_size(const char* who, int64_t height, int64_t width) {
  if (height <= 0 || width <= 0)
    throw std::invalid_argument(std::string(who) + ": frame size must be positive, got " + std::to_string(height) + "x" +
                                std::to_string(width));
}

}  // namespace

std::string bytes_text(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024 && u < 6) bytes /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

std::string MemoryEstimate::str() const {
  std::string out = bytes_text(total()) + " (parameters " + bytes_text(parameters);
  if (gradients > 0) out += ", gradients " + bytes_text(gradients);
  if (optimizer > 0) out += ", optimizer " + bytes_text(optimizer);
  out += ", activations " + bytes_text(activations);
  if (data > 0) out += ", data " + bytes_text(data);
  return out + ")";
}

MemoryEstimate estimate_training_memory(const Config& cfg, const TrainingShape& s) {
  check_size("estimate_training_memory", s.height, s.width);
  if (s.batch < 1 || s.clip_length < 1)
    throw std::invalid_argument("estimate_training_memory: batch and clip length must be positive");
  const double P = double(parameter_count(cfg, /*with_training_extras=*/true));  // validates cfg
  const MapSize map = feature_size(s.height, s.width);
  const double F = double(map.height) * double(map.width), pixels = double(s.height) * double(s.width);
  const double C = double(cfg.C), D = double(cfg.D), T = double(s.clip_length), B = double(s.batch);
  const double blocks = cfg.task_specific ? double(cfg.tasks.size()) : 1;
  const double slow = resnet_activations(cfg.slow_depth, cfg.width, s.height, s.width).total;
  const double fast = resnet_activations(cfg.fast_depth, cfg.width, s.height, s.width).total;

  double clip = 3 * slow + (T - 1) * 3 * fast;         // every frame's encoder
  clip += T * (3 * F * C + blocks * F * (2 * C + 2 * D));  // necks, SE, keys
  for (const TaskSpec& t : cfg.tasks) clip += head_elements(cfg, F, attention_span(cfg, F), pixels, double(t.channels));
  if (cfg.mimic) clip += 3 * fast + 3 * F * C + 3 * F * C;  // the extra pass, its neck, the discriminator

  MemoryEstimate m;
  m.parameters = m.gradients = kFloatBytes * P;
  m.optimizer = kFloatBytes * P * double(s.optimizer_states);
  m.activations = kFloatBytes * B * clip * 1.25;
  const double frames = kFloatBytes * B * T * 3 * pixels, labels = B * pixels * 24;
  m.data = double(s.batches_in_flight) * (frames + labels) + double(s.workers) * 2.25 * frames;
  return m;
}

MemoryEstimate estimate_streaming_memory(const Config& cfg, int64_t height, int64_t width) {
  check_size("estimate_streaming_memory", height, width);
  const double P = double(parameter_count(cfg));
  const MapSize map = feature_size(height, width);
  const double F = double(map.height) * double(map.width), pixels = double(height) * double(width);
  const double C = double(cfg.C), D = double(cfg.D);
  const double blocks = cfg.task_specific ? double(cfg.tasks.size()) : 1;
  const double largest = std::max(resnet_activations(cfg.slow_depth, cfg.width, height, width).largest,
                                  resnet_activations(cfg.fast_depth, cfg.width, height, width).largest);
  double heads = 0, outputs = 0;
  for (const TaskSpec& t : cfg.tasks) {
    heads = std::max(heads, head_elements(cfg, F, attention_span(cfg, F), pixels, double(t.channels)));
    outputs += double(t.channels) * pixels;
  }
  MemoryEstimate m;
  m.parameters = kFloatBytes * P;
  m.activations = kFloatBytes * (4 * largest + 3 * blocks * F * (C + D) + 3 * F * C + heads + outputs);
  m.data = (1 + 2 * kFloatBytes) * 3 * pixels;  // the decoded frame, as floats, normalized
  return m;
}

int64_t available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream in(line.substr(13));
    int64_t kib = 0;
    if (in >> kib && kib > 0) return kib * 1024;
  }
  const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? int64_t(pages) * int64_t(page) : 0;
}

}  // namespace mila
