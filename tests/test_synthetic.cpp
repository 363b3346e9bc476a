// test_synthetic.cpp - the synthetic renderer (data/synthetic.h): exact ground truth on
// scenes whose answer is known in closed form, the axis conventions, determinism, and the
// variety of the random scenes.
#include <omp.h>

#include <cmath>
#include <set>

#include "data/synthetic.h"
#include "test_util.h"

using namespace mila;
using namespace mila::data;

namespace {

constexpr double kPi = 3.14159265358979323846;

// An empty room 8 m x 8 m x 3 m (walls at x, z = +-4), plain materials, light overhead.
Scene empty_room() {
  Scene s;
  s.room.half_x = 4, s.room.half_z = 4, s.room.height = 3;
  s.light.position = {0, 2.8, 0};
  return s;
}

// Pixel (y, x) of channel c of a [C, H, W] or [H, W] tensor.
double px(const Tensor& t, int64_t c, int64_t y, int64_t x) {
  const int64_t H = t.size(-2), W = t.size(-1);
  return test::at(t, (c * H + y) * W + x);
}

int64_t label_at(const Tensor& label, int64_t y, int64_t x) { return label.data<int64_t>()[y * label.size(1) + x]; }

bool frames_equal(const RenderedFrame& a, const RenderedFrame& b) {
  return test::values(a.rgb) == test::values(b.rgb) && test::values(a.label) == test::values(b.label) &&
         test::values(a.depth) == test::values(b.depth) && test::values(a.normal) == test::values(b.normal);
}

}  // namespace

TEST_CASE("synthetic: a wall seen head-on has constant depth, normal (0,0,1) and class wall") {
  const Scene scene = empty_room();
  const double distance = 2.25;
  CameraPose pose;
  pose.position = {0.3, 1.5, -4 + distance};  // looking along -z at the wall z = -4
  const int64_t H = 24, W = 32;
  const RenderedFrame f = render_frame(scene, pose, default_intrinsics(H, W), H, W);
  // The frustum at 2.25 m spans +-1.4 m horizontally and +-1.1 m vertically: wall only.
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      INFO("pixel " << y << ", " << x);
      REQUIRE(label_at(f.label, y, x) == kWall);
      REQUIRE(px(f.depth, 0, y, x) == doctest::Approx(distance).epsilon(1e-6));
      REQUIRE(px(f.normal, 0, y, x) == doctest::Approx(0.0).epsilon(1e-6));
      REQUIRE(px(f.normal, 1, y, x) == doctest::Approx(0.0).epsilon(1e-6));
      REQUIRE(px(f.normal, 2, y, x) == doctest::Approx(1.0).epsilon(1e-6));
    }
}

TEST_CASE("synthetic: a sphere's normal at its centre pixel points to the camera; axes x right, y up") {
  Scene scene = empty_room();
  Object ball;
  ball.kind = Primitive::Sphere;
  ball.cls = kSphere;
  ball.centre = {0, 1.5, -1.0};
  ball.half = {0.5, 0.5, 0.5};
  scene.objects.push_back(ball);
  CameraPose pose;
  pose.position = {0, 1.5, 1.5};  // 2.5 m in front of the centre
  const int64_t H = 31, W = 41;   // odd: the centre pixel's ray is the optical axis
  const RenderedFrame f = render_frame(scene, pose, default_intrinsics(H, W), H, W);
  const int64_t cy = H / 2, cx = W / 2;
  CHECK(label_at(f.label, cy, cx) == kSphere);
  CHECK(px(f.depth, 0, cy, cx) == doctest::Approx(2.0).epsilon(1e-6));
  CHECK(px(f.normal, 0, cy, cx) == doctest::Approx(0.0).epsilon(1e-6));
  CHECK(px(f.normal, 1, cy, cx) == doctest::Approx(0.0).epsilon(1e-6));
  CHECK(px(f.normal, 2, cy, cx) == doctest::Approx(1.0).epsilon(1e-6));
  // Right of the centre the surface turns right (+x), above it turns up (+y).
  CHECK(label_at(f.label, cy, cx + 4) == kSphere);
  CHECK(px(f.normal, 0, cy, cx + 4) > 0.1);
  CHECK(px(f.normal, 1, cy - 4, cx) > 0.1);
  CHECK(px(f.normal, 0, cy, cx - 4) < -0.1);
  // Every normal is a unit vector facing the camera.
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      const double nx = px(f.normal, 0, y, x), ny = px(f.normal, 1, y, x), nz = px(f.normal, 2, y, x);
      REQUIRE(std::sqrt(nx * nx + ny * ny + nz * nz) == doctest::Approx(1.0).epsilon(1e-5));
    }
  // The sphere is far from every edge of the view: the corners see the far wall.
  CHECK(label_at(f.label, 0, 0) != kSphere);
}

TEST_CASE("synthetic: floor depth and normal under a pitched camera match the closed form") {
  const Scene scene = empty_room();
  CameraPose pose;
  pose.position = {0, 1.4, 0};
  pose.pitch = -30 * kPi / 180;  // looking down
  const int64_t H = 24, W = 32;
  const Intrinsics k = default_intrinsics(H, W);
  const RenderedFrame f = render_frame(scene, pose, k, H, W);
  // Camera up = (0, cos p, sin p) in the world (p = pitch); the floor normal (0, 1, 0) in camera
  // coordinates is (0, cos p, -sin p). A ray through row y has d.y = sin p - b cos p with
  // b = (y + 0.5 - cy) / fy, and reaches y = 0 at z-depth -1.4 / d.y.
  const double p = pose.pitch;
  int floor_pixels = 0;
  for (int64_t y = 0; y < H; ++y) {
    const double b = (double(y) + 0.5 - k.cy) / k.fy, dy = std::sin(p) - b * std::cos(p);
    for (int64_t x = 0; x < W; ++x) {
      if (label_at(f.label, y, x) != kFloor) continue;
      ++floor_pixels;
      INFO("pixel " << y << ", " << x);
      REQUIRE(px(f.depth, 0, y, x) == doctest::Approx(-1.4 / dy).epsilon(1e-5));
      REQUIRE(px(f.normal, 0, y, x) == doctest::Approx(0.0).epsilon(1e-6));
      REQUIRE(px(f.normal, 1, y, x) == doctest::Approx(std::cos(p)).epsilon(1e-5));
      REQUIRE(px(f.normal, 2, y, x) == doctest::Approx(-std::sin(p)).epsilon(1e-5));
    }
  }
  CHECK(floor_pixels > H * W / 3);
  CHECK(label_at(f.label, H - 1, W / 2) == kFloor);
}

TEST_CASE("synthetic: a box in front of the camera; yaw turns the view left") {
  Scene scene = empty_room();
  Object box;
  box.kind = Primitive::Box;
  box.cls = kBox;
  box.centre = {-2.0, 1.0, 0};  // to the camera's left (-x)
  box.half = {0.4, 1.0, 0.4};
  scene.objects.push_back(box);
  CameraPose pose;
  pose.position = {0, 1.0, 0};
  const int64_t H = 21, W = 31;
  pose.yaw = kPi / 2;  // positive yaw turns left: now looking along -x, at the box
  const RenderedFrame f = render_frame(scene, pose, default_intrinsics(H, W), H, W);
  CHECK(label_at(f.label, H / 2, W / 2) == kBox);
  CHECK(px(f.depth, 0, H / 2, W / 2) == doctest::Approx(1.6).epsilon(1e-6));  // face at x = -1.6
  CHECK(px(f.normal, 2, H / 2, W / 2) == doctest::Approx(1.0).epsilon(1e-6));
  pose.yaw = -kPi / 2;  // looking along +x: the wall at x = 4
  const RenderedFrame g = render_frame(scene, pose, default_intrinsics(H, W), H, W);
  CHECK(label_at(g.label, H / 2, W / 2) == kWall);
  CHECK(px(g.depth, 0, H / 2, W / 2) == doctest::Approx(4.0).epsilon(1e-6));
}

TEST_CASE("synthetic: rendering is deterministic by seed and independent of the thread count") {
  SyntheticConfig cfg;
  cfg.height = 30, cfg.width = 40, cfg.frames_per_sequence = 6;
  const SyntheticSequence a = make_synthetic_sequence(cfg, 7), b = make_synthetic_sequence(cfg, 7), c = make_synthetic_sequence(cfg, 8);
  REQUIRE(a.scene.objects.size() == b.scene.objects.size());
  const Intrinsics k = default_intrinsics(cfg.height, cfg.width);
  RenderOptions opt;
  opt.rgb_noise = 0.02, opt.noise_seed = 99;
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const RenderedFrame one = render_frame(a.scene, a.poses[3], k, cfg.height, cfg.width, opt);
  omp_set_num_threads(2);
  const RenderedFrame two = render_frame(b.scene, b.poses[3], k, cfg.height, cfg.width, opt);
  omp_set_num_threads(threads);
  CHECK(frames_equal(one, two));
  const RenderedFrame other = render_frame(c.scene, c.poses[3], k, cfg.height, cfg.width, opt);
  CHECK_FALSE(frames_equal(one, other));
  CHECK(synthetic_sequence_seed(cfg, "train", 0) != synthetic_sequence_seed(cfg, "val", 0));
  CHECK(synthetic_sequence_seed(cfg, "train", 0) != synthetic_sequence_seed(cfg, "train", 1));
}

TEST_CASE("synthetic: the camera moves smoothly, and random scenes use at least 8 classes") {
  SyntheticConfig cfg;
  cfg.height = 24, cfg.width = 32;
  std::set<int64_t> classes;
  for (int64_t s = 0; s < 8; ++s) {
    const SyntheticSequence seq = make_synthetic_sequence(cfg, synthetic_sequence_seed(cfg, "train", s));
    REQUIRE(int64_t(seq.poses.size()) == cfg.frames_per_sequence);
    double travelled = 0, turned = 0;
    for (size_t f = 1; f < seq.poses.size(); ++f) {
      const double step = length(seq.poses[f].position - seq.poses[f - 1].position);
      const double turn = std::abs(seq.poses[f].yaw - seq.poses[f - 1].yaw);
      CHECK(step < 0.15);             // metres per frame
      CHECK(turn < 5 * kPi / 180);    // radians per frame
      travelled += step, turned += turn;
    }
    CHECK(travelled + turned > 0.1);  // it does move
    // Inside the room, at least 0.8 m from every wall.
    for (const CameraPose& p : seq.poses) {
      CHECK(std::abs(p.position.x) < seq.scene.room.half_x - 0.8);
      CHECK(std::abs(p.position.z) < seq.scene.room.half_z - 0.8);
    }
    const Intrinsics k = default_intrinsics(cfg.height, cfg.width);
    for (size_t f = 0; f < seq.poses.size(); f += 6) {
      const RenderedFrame fr = render_frame(seq.scene, seq.poses[f], k, cfg.height, cfg.width);
      for (double v : test::values(fr.label)) classes.insert(int64_t(v));
      for (double d : test::values(fr.depth)) REQUIRE((d > 0.05 && d < 12.0));
    }
    for (const Object& o : seq.scene.objects) classes.insert(o.cls);
  }
  CHECK(classes.size() >= 8);
  CHECK(*classes.rbegin() < kSyntheticClasses);
  CHECK(*classes.begin() >= 0);
}
