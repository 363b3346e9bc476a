// synthetic_scene.cpp - random rooms, furniture and camera paths for the synthetic dataset,
// and writing the set to disk in the NYUv2-video layout (SPEC 5). The ray caster itself is
// in synthetic.cpp.
//
// Everything random comes from one Generator per sequence, seeded by
// synthetic_sequence_seed(config, split, index), and is drawn in a fixed order; so a
// sequence is a pure function of (config, split, index), and adding sequences to a split
// does not change the ones already there.
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "data/image_io.h"
#include "data/synthetic.h"

namespace mila::data {

namespace fs = std::filesystem;

namespace {

constexpr double kPi = 3.14159265358979323846;
double radians(double deg) { return deg * kPi / 180.0; }

// Draws from a Generator in a fixed order.
struct Draw {
  Generator gen;
  explicit Draw(uint64_t seed) : gen(seed) {}
  double uniform(double lo, double hi) { return lo + (hi - lo) * gen.next_uniform(); }
  int64_t integer(int64_t lo, int64_t hi) {  // inclusive
    return lo + int64_t(gen.next_bits() % uint64_t(hi - lo + 1));
  }
  bool chance(double p) { return gen.next_uniform() < p; }
  uint64_t bits() { return gen.next_bits(); }
};

// A colour from hue (0..1), saturation and value, in linear [0, 1] RGB.
Vec3 hsv(double h, double s, double v) {
  h = (h - std::floor(h)) * 6;
  const int i = int(h) % 6;
  const double f = h - std::floor(h);
  const double p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  switch (i) {
    case 0: return {v, t, p};
    case 1: return {q, v, p};
    case 2: return {p, v, t};
    case 3: return {p, q, v};
    case 4: return {t, p, v};
    default: return {v, p, q};
  }
}

Material random_material(Draw& r, double hue, double sat_lo, double sat_hi, double val_lo, double val_hi) {
  Material m;
  const double s = r.uniform(sat_lo, sat_hi), v = r.uniform(val_lo, val_hi);
  m.colour_a = hsv(hue, s, v);
  // The second colour: a darker or lighter, slightly shifted variant, or a contrasting hue.
  m.colour_b = r.chance(0.3) ? hsv(hue + 0.5, s, v * 0.8) : hsv(hue + r.uniform(-0.05, 0.05), s, v * r.uniform(0.45, 0.75));
  const int64_t p = r.integer(0, 3);
  m.pattern = p == 0 ? Pattern::Plain : (p == 1 ? Pattern::Checker : (p == 2 ? Pattern::Stripes : Pattern::Noise));
  m.scale = r.uniform(0.08, 0.4);
  m.noise_seed = r.bits();
  return m;
}

// A floor position (x, z) for an object whose footprint is the circle of radius rho around
// it: inside the walls, more than 0.5 m from every camera position, clear of earlier
// footprints. Records the footprint; false after 60 tries (the object is then left out).
struct Footprint {
  double x, z, rho;
};
bool place(Draw& r, const Room& room, double rho, const std::vector<Vec3>& path, std::vector<Footprint>& taken,
           double& x, double& z) {
  for (int attempt = 0; attempt < 60; ++attempt) {
    x = r.uniform(-room.half_x + rho + 0.05, room.half_x - rho - 0.05);
    z = r.uniform(-room.half_z + rho + 0.05, room.half_z - rho - 0.05);
    bool ok = true;
    for (const Vec3& c : path) ok = ok && std::hypot(c.x - x, c.z - z) > rho + 0.5;
    for (const Footprint& f : taken) ok = ok && std::hypot(f.x - x, f.z - z) > rho + f.rho + 0.05;
    if (ok) {
      taken.push_back({x, z, rho});
      return true;
    }
  }
  return false;
}

// A thin panel against wall `w` (0: x = -hx, 1: x = +hx, 2: z = -hz, 3: z = +hz), centred at
// `along` on the wall and at height `cy`, half width hw, half height hh, thickness 2 * ht.
Object wall_panel(const Room& room, int w, double along, double cy, double hw, double hh, double ht, int64_t cls, Material m) {
  Object o;
  o.kind = Primitive::Box;
  o.cls = cls;
  o.material = m;
  if (w < 2) {
    o.centre = {w == 0 ? -room.half_x + ht : room.half_x - ht, cy, along};
    o.half = {ht, hh, hw};
  } else {
    o.centre = {along, cy, w == 2 ? -room.half_z + ht : room.half_z - ht};
    o.half = {hw, hh, ht};
  }
  return o;
}

}  // namespace

uint64_t synthetic_sequence_seed(const SyntheticConfig& config, const std::string& split, int64_t index) {
  uint64_t tag = 1469598103934665603ull;  // FNV-1a of the split's name
  for (char c : split) tag = (tag ^ uint64_t(uint8_t(c))) * 1099511628211ull;
  return Generator(Generator(config.seed).bits(tag)).bits(uint64_t(index));
}

bool synthetic_is_annotated(const SyntheticConfig& config, int64_t frame) {
  return frame >= config.annotate_first && (frame - config.annotate_first) % config.annotate_stride == 0;
}

SyntheticSequence make_synthetic_sequence(const SyntheticConfig& config, uint64_t sequence_seed) {
  Draw r(sequence_seed);
  SyntheticSequence seq;
  Scene& scene = seq.scene;
  Room& room = scene.room;

  // ---- the room ----
  room.half_x = r.uniform(2.0, 3.5);
  room.half_z = r.uniform(2.0, 3.5);
  room.height = r.uniform(2.5, 3.0);
  room.floor = random_material(r, r.uniform(0.05, 0.12), 0.3, 0.7, 0.35, 0.7);  // browns: wood, carpet
  room.wall = random_material(r, r.uniform(0, 1), 0.05, 0.3, 0.7, 0.95);        // pale paint
  room.wall.scale = r.uniform(0.3, 0.8);
  room.ceiling = random_material(r, r.uniform(0, 1), 0.0, 0.08, 0.85, 0.98);  // nearly white
  room.ceiling.pattern = r.chance(0.5) ? Pattern::Plain : Pattern::Noise;

  // ---- the camera path: a smooth drift and turn, with gentle bobbing ----
  const int64_t F = config.frames_per_sequence;
  const double span = double(std::max<int64_t>(F - 1, 1)) / 19.0;  // the config's speeds are per 19 steps
  const double margin = 0.9;
  const double x0 = r.uniform(-room.half_x + margin, room.half_x - margin);
  const double z0 = r.uniform(-room.half_z + margin, room.half_z - margin);
  const double heading = r.uniform(0, 2 * kPi), dist = config.travel_m * span * r.uniform(0.6, 1.2);
  const double x1 = std::clamp(x0 + dist * std::cos(heading), -room.half_x + margin, room.half_x - margin);
  const double z1 = std::clamp(z0 + dist * std::sin(heading), -room.half_z + margin, room.half_z - margin);
  const double y0 = r.uniform(1.1, 1.6);
  // Look towards the far side of the room, with some randomness; forward = (-sin yaw, ., -cos yaw).
  const double yaw0 = std::atan2(x0, z0) + r.uniform(-0.6, 0.6);  // points along -(x0, z0): the centre
  const double yaw1 = yaw0 + (r.chance(0.5) ? 1 : -1) * radians(config.turn_deg) * span * r.uniform(0.5, 1.2);
  const double pitch0 = radians(r.uniform(-22, -6));
  const double bob_phase = r.uniform(0, 2 * kPi), bob_freq = r.uniform(0.5, 1.5), roll_amp = radians(r.uniform(0, 3));
  for (int64_t f = 0; f < F; ++f) {
    const double s = F > 1 ? double(f) / double(F - 1) : 0.0;
    const double e = s * s * (3 - 2 * s) * 0.5 + s * 0.5;  // eased start and stop
    const double wave = std::sin(2 * kPi * bob_freq * s * span + bob_phase);
    CameraPose pose;
    pose.position = {x0 + (x1 - x0) * e, y0 + 0.03 * wave, z0 + (z1 - z0) * e};
    pose.yaw = yaw0 + (yaw1 - yaw0) * e;
    pose.pitch = pitch0 + radians(3) * wave;
    pose.roll = roll_amp * std::sin(2 * kPi * bob_freq * s * span + bob_phase * 0.7);
    seq.poses.push_back(pose);
  }
  std::vector<Vec3> path;
  for (const CameraPose& p : seq.poses) path.push_back(p.position);

  // ---- furniture on the floor ----
  std::vector<Footprint> taken;
  std::vector<const Object*> box_tops;
  auto& objects = scene.objects;
  objects.reserve(40);
  double x, z;

  if (r.chance(0.7)) {  // a table: a thin top on four legs, all class kTable
    const double hw = r.uniform(0.4, 0.8), hd = r.uniform(0.3, 0.5), top = r.uniform(0.7, 0.8), yaw = r.uniform(0, kPi);
    if (place(r, room, std::hypot(hw, hd), path, taken, x, z)) {
      const Material m = random_material(r, r.uniform(0.02, 0.15), 0.3, 0.8, 0.3, 0.8);
      Object t{Primitive::Box, {x, top - 0.02, z}, {hw, 0.02, hd}, yaw, kTable, m};
      objects.push_back(t);
      const double c = std::cos(yaw), s = std::sin(yaw);
      for (double sx : {-1.0, 1.0})
        for (double sz : {-1.0, 1.0}) {
          const double lx = sx * (hw - 0.06), lz = sz * (hd - 0.06);
          const Vec3 at{x + c * lx + s * lz, (top - 0.04) / 2, z - s * lx + c * lz};
          objects.push_back({Primitive::Box, at, {0.03, (top - 0.04) / 2, 0.03}, yaw, kTable, m});
        }
    }
  }
  const int64_t boxes = r.integer(2, 4);
  for (int64_t i = 0; i < boxes; ++i) {
    const Vec3 half{r.uniform(0.15, 0.5), r.uniform(0.15, 0.6), r.uniform(0.15, 0.5)};
    const double yaw = r.uniform(0, kPi);
    const Material m = random_material(r, r.uniform(0, 1), 0.2, 0.8, 0.3, 0.9);
    if (place(r, room, std::hypot(half.x, half.z), path, taken, x, z)) objects.push_back({Primitive::Box, {x, half.y, z}, half, yaw, kBox, m});
  }
  for (const Object& o : objects)
    if (o.cls == kBox) box_tops.push_back(&o);
  const int64_t spheres = r.integer(1, 3);
  std::vector<Object> balls;
  for (int64_t i = 0; i < spheres; ++i) {
    const double radius = r.uniform(0.12, 0.35);
    const Material m = random_material(r, r.uniform(0, 1), 0.4, 0.9, 0.5, 0.95);
    if (!box_tops.empty() && r.chance(0.4)) {  // on top of a box (each box takes one)
      const Object* b = box_tops.back();
      box_tops.pop_back();
      balls.push_back({Primitive::Sphere, {b->centre.x, 2 * b->half.y + radius, b->centre.z}, {radius, radius, radius}, 0, kSphere, m});
    } else if (place(r, room, radius, path, taken, x, z)) {
      balls.push_back({Primitive::Sphere, {x, radius, z}, {radius, radius, radius}, 0, kSphere, m});
    }
  }
  objects.insert(objects.end(), balls.begin(), balls.end());
  const int64_t cylinders = r.integer(1, 2);
  for (int64_t i = 0; i < cylinders; ++i) {
    const double radius = r.uniform(0.1, 0.3), hh = r.uniform(0.2, 0.7);
    const Material m = random_material(r, r.uniform(0, 1), 0.3, 0.9, 0.4, 0.9);
    if (place(r, room, radius, path, taken, x, z)) objects.push_back({Primitive::Cylinder, {x, hh, z}, {radius, hh, radius}, 0, kCylinder, m});
  }
  if (r.chance(0.6)) {  // a rug: flat, may lie under other things (not a footprint)
    const Vec3 half{r.uniform(0.5, 1.2), 0.005, r.uniform(0.4, 0.9)};
    const double lim_x = room.half_x - std::hypot(half.x, half.z) - 0.05, lim_z = room.half_z - std::hypot(half.x, half.z) - 0.05;
    Material m = random_material(r, r.uniform(0, 1), 0.4, 0.9, 0.3, 0.8);
    if (m.pattern == Pattern::Plain) m.pattern = Pattern::Checker;
    const double yaw = r.uniform(0, kPi);
    const double rx = r.uniform(-1, 1), rz = r.uniform(-1, 1);
    if (lim_x > 0 && lim_z > 0) objects.push_back({Primitive::Box, {rx * lim_x, 0.005, rz * lim_z}, half, yaw, kRug, m});
  }

  // ---- on the walls: a door and pictures (panels 1-2 cm thick) ----
  struct Span {
    int wall;
    double lo, hi;
  };
  std::vector<Span> used;
  auto wall_half_length = [&](int w) { return w < 2 ? room.half_z : room.half_x; };
  auto try_panel = [&](double hw, double& along, int& w) {
    for (int attempt = 0; attempt < 30; ++attempt) {
      w = int(r.integer(0, 3));
      const double lim = wall_half_length(w) - hw - 0.1;
      if (lim <= 0) continue;
      along = r.uniform(-lim, lim);
      bool ok = true;
      for (const Span& s : used) ok = ok && (s.wall != w || along + hw + 0.1 < s.lo || along - hw - 0.1 > s.hi);
      if (ok) {
        used.push_back({w, along - hw, along + hw});
        return true;
      }
    }
    return false;
  };
  double along;
  int w;
  if (r.chance(0.6)) {
    const double hw = r.uniform(0.4, 0.5);
    Material m = random_material(r, r.uniform(0.03, 0.12), 0.3, 0.7, 0.3, 0.7);
    m.pattern = Pattern::Stripes;
    if (try_panel(hw, along, w)) objects.push_back(wall_panel(room, w, along, 1.0, hw, 1.0, 0.02, kDoor, m));
  }
  const int64_t pictures = r.integer(1, 3);
  for (int64_t i = 0; i < pictures; ++i) {
    const double hw = r.uniform(0.2, 0.6), hh = r.uniform(0.15, 0.45), cy = r.uniform(1.2, 1.9);
    Material m = random_material(r, r.uniform(0, 1), 0.5, 1.0, 0.4, 1.0);
    if (m.pattern == Pattern::Plain) m.pattern = Pattern::Noise;
    m.scale = r.uniform(0.05, 0.2);
    if (try_panel(hw, along, w)) objects.push_back(wall_panel(room, w, along, std::min(cy, room.height - hh - 0.1), hw, hh, 0.01, kPicture, m));
  }

  // ---- the light: under the ceiling, somewhere over the middle of the room ----
  scene.light.position = {r.uniform(-room.half_x / 2, room.half_x / 2), room.height - 0.3, r.uniform(-room.half_z / 2, room.half_z / 2)};
  scene.light.ambient = r.uniform(0.3, 0.45);
  scene.light.intensity = r.uniform(1.1, 1.5);
  return seq;
}

// ---------------------------------------------------------------------------------------------
// The dataset on disk
// ---------------------------------------------------------------------------------------------

std::string synthetic_config_json(const SyntheticConfig& c) {
  nlohmann::ordered_json j;
  j["generator"] = "mila-cpp synthetic v1";
  j["height"] = c.height;
  j["width"] = c.width;
  j["train_sequences"] = c.train_sequences;
  j["val_sequences"] = c.val_sequences;
  j["frames_per_sequence"] = c.frames_per_sequence;
  j["annotate_first"] = c.annotate_first;
  j["annotate_stride"] = c.annotate_stride;
  j["seed"] = c.seed;
  j["rgb_noise"] = c.rgb_noise;
  j["travel_m"] = c.travel_m;
  j["turn_deg"] = c.turn_deg;
  return j.dump(2) + "\n";
}

namespace {

void check_config(const SyntheticConfig& c) {
  auto bad = [](const std::string& m) { throw std::invalid_argument("synthetic dataset config: " + m); };
  if (c.height < 8 || c.width < 8) bad("image size " + std::to_string(c.height) + "x" + std::to_string(c.width) + " is below 8x8");
  if (c.height > 4096 || c.width > 4096) bad("image size above 4096");
  if (c.train_sequences < 0 || c.val_sequences < 0) bad("negative sequence count");
  if (c.frames_per_sequence < 1 || c.frames_per_sequence > 999999) bad("frames_per_sequence must be in [1, 999999]");
  if (c.annotate_stride < 1) bad("annotate_stride must be >= 1");
  if (c.annotate_first < 0 || c.annotate_first >= c.frames_per_sequence)
    bad("annotate_first = " + std::to_string(c.annotate_first) + " leaves no annotated frame in " +
        std::to_string(c.frames_per_sequence) + " frames");
}

std::string frame_name(int64_t f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%06lld.png", static_cast<long long>(f));
  return buf;
}

}  // namespace

SyntheticStats render_synthetic_dataset(const std::string& root, const SyntheticConfig& config) {
  check_config(config);
  const auto start = std::chrono::steady_clock::now();
  SyntheticStats stats;
  const Intrinsics k = default_intrinsics(config.height, config.width);

  for (const std::string split : {"train", "val"}) {
    const int64_t n = split == "train" ? config.train_sequences : config.val_sequences;
    std::vector<SyntheticSequence> seqs;
    std::vector<fs::path> dirs;
    std::vector<uint64_t> seeds;
    for (int64_t s = 0; s < n; ++s) {
      seeds.push_back(synthetic_sequence_seed(config, split, s));
      seqs.push_back(make_synthetic_sequence(config, seeds.back()));
      char name[32];
      std::snprintf(name, sizeof name, "seq_%04lld", static_cast<long long>(s));
      dirs.push_back(fs::path(root) / split / name);
      for (const char* sub : {"rgb", "label", "depth", "normal"}) fs::create_directories(dirs.back() / sub);
    }
    // One task per frame; the frames are independent, so any schedule writes the same files.
    const int64_t F = config.frames_per_sequence, tasks = n * F;
    std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      try {
        const int64_t s = task / F, f = task % F;
        RenderOptions opt;
        opt.rgb_noise = config.rgb_noise;
        opt.noise_seed = Generator(seeds[size_t(s)]).bits(uint64_t(1) << 40 | uint64_t(f));
        const RenderedFrame fr = render_frame(seqs[size_t(s)].scene, seqs[size_t(s)].poses[size_t(f)], k, config.height, config.width, opt);
        const fs::path& dir = dirs[size_t(s)];
        const std::string name = frame_name(f);
        write_rgb_png((dir / "rgb" / name).string(), fr.rgb);
        if (synthetic_is_annotated(config, f)) {
          write_label_png((dir / "label" / name).string(), fr.label);
          write_depth_png((dir / "depth" / name).string(), fr.depth);
          write_normal_png((dir / "normal" / name).string(), fr.normal);
        }
      } catch (...) {
#pragma omp critical(mila_synthetic_error)
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    stats.sequences += n;
    stats.frames += tasks;
    for (int64_t f = 0; f < F; ++f) stats.annotated += n * int64_t(synthetic_is_annotated(config, f));
  }

  // The marker goes last: its presence means the set is complete.
  const fs::path marker = fs::path(root) / "synthetic.json", tmp = fs::path(root) / "synthetic.json.tmp";
  {
    std::ofstream out(tmp);
    out << synthetic_config_json(config);
    if (!out) throw std::runtime_error("render_synthetic_dataset: cannot write " + tmp.string());
  }
  fs::rename(tmp, marker);
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

bool ensure_synthetic_dataset(const std::string& root_str, const SyntheticConfig& config) {
  const fs::path root(root_str), marker = root / "synthetic.json";
  if (fs::exists(marker)) {
    std::ifstream in(marker);
    nlohmann::json have;
    try {
      have = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      throw std::runtime_error("ensure_synthetic_dataset: " + marker.string() + " is not valid JSON (" + e.what() + ")");
    }
    if (have == nlohmann::json::parse(synthetic_config_json(config))) return false;
    throw std::runtime_error("ensure_synthetic_dataset: " + root.string() +
                             " holds a synthetic set rendered with another configuration (" + marker.string() +
                             "); delete it or choose another folder");
  }
  if (fs::exists(root) && !(fs::is_directory(root) && fs::is_empty(root)))
    throw std::runtime_error("ensure_synthetic_dataset: " + root.string() +
                             " exists but is not a complete synthetic set (no synthetic.json); delete it or choose another folder");
  const fs::path tmp = root.parent_path() / (root.filename().string() + ".rendering-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  render_synthetic_dataset(tmp.string(), config);
  if (fs::exists(root)) fs::remove(root);  // the empty folder
  fs::rename(tmp, root);
  return true;
}

}  // namespace mila::data
