// synthetic.h - procedurally rendered indoor video with exact ground truth: the embedded
// default dataset (the real NYUv2 video cannot be downloaded on the project's machines).
//
// A CPU ray caster renders rooms (floor, four walls, ceiling) furnished with random boxes,
// spheres, cylinders, a table, pictures, a door and a rug; every surface is textured
// (checker, stripes or value noise) and lit (ambient + Lambert from a point light, with
// hard shadows). A camera moves smoothly through the room (translation, yaw, pitch and a
// little roll), so a model must carry features across frames. From each camera ray's first
// hit come the exact per-pixel class, depth and surface normal.
//
// Conventions (docs/data.md shows them with pictures in words):
//   world      metres; y up; the room spans x in [-half_x, half_x], z in [-half_z, half_z],
//              y in [0, height] (floor at y = 0).
//   camera     yaw about the world's up axis (0 looks along -z; positive turns left),
//              pitch about the camera's right axis (positive looks up), roll about the
//              viewing axis. Pinhole, no distortion; pixel (row v, column u) has its centre
//              at (u + 0.5, v + 0.5), so the image centre (W/2, H/2) is the principal point.
//   depth      z-depth in metres along the viewing axis (not the distance along the ray), as
//              NYUv2's depth maps are: depth = (p - camera) . forward.
//   normal     unit vector in camera coordinates, x to the right of the image, y up in the
//              image, z towards the viewer (out of the screen); it always faces the camera,
//              so a wall seen head-on has n = (0, 0, 1) and the floor ahead n ~ (0, cos, sin)
//              of the pitch. Stored in PNGs as v = round((n + 1) * 127.5).
//   class      the table below; 10 of NYUv2's 13 label slots are used, so a 13-way seg
//              head fits both datasets (classes 10..12 never occur here). Nothing is 255.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace mila::data {

// ---- the class table ---------------------------------------------------------------------
enum SyntheticClass : int64_t {
  kFloor = 0,     // room floor
  kWall = 1,      // the four room walls
  kCeiling = 2,   // room ceiling
  kBox = 3,       // boxes standing on the floor (cabinets, crates), any yaw
  kSphere = 4,    // balls on the floor or on a box
  kCylinder = 5,  // vertical cylinders on the floor (bins, stools, pillars)
  kTable = 6,     // table: a thin horizontal top on four legs
  kPicture = 7,   // thin panels hung on a wall
  kDoor = 8,      // a tall panel on a wall, from the floor up
  kRug = 9,       // a thin slab lying on the floor
};
constexpr int64_t kSyntheticClasses = 10;
// NYUv2's 13-class segmentation: the number of outputs of the seg head for both datasets.
constexpr int64_t kNyuClasses = 13;
const char* synthetic_class_name(int64_t cls);

// ---- small geometry ------------------------------------------------------------------------
struct Vec3 {
  double x = 0, y = 0, z = 0;
};
inline Vec3 operator+(Vec3 a, Vec3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
inline Vec3 operator-(Vec3 a, Vec3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
inline Vec3 operator*(Vec3 a, double s) { return {a.x * s, a.y * s, a.z * s}; }
inline Vec3 operator*(double s, Vec3 a) { return a * s; }
inline double dot(Vec3 a, Vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
inline Vec3 cross(Vec3 a, Vec3 b) { return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x}; }
inline double length(Vec3 a) { return std::sqrt(dot(a, a)); }
inline Vec3 normalized(Vec3 a) { return a * (1.0 / length(a)); }

// ---- the scene ------------------------------------------------------------------------------
enum class Pattern { Plain, Checker, Stripes, Noise };

// Albedo = mix(colour_a, colour_b, pattern(u, v) in [0, 1]); (u, v) are surface coordinates
// in metres (see synthetic.cpp), `scale` the pattern's period in metres.
struct Material {
  Vec3 colour_a{0.7, 0.7, 0.7}, colour_b{0.5, 0.5, 0.5};  // linear RGB in [0, 1]
  Pattern pattern = Pattern::Plain;
  double scale = 0.5;
  uint64_t noise_seed = 0;  // for Pattern::Noise
};

enum class Primitive { Box, Sphere, Cylinder };

// Box: half extents `half`, rotated by `yaw` about the vertical axis through `centre`.
// Sphere: radius half.x. Cylinder: vertical axis, radius half.x, half height half.y.
struct Object {
  Primitive kind = Primitive::Box;
  Vec3 centre, half;
  double yaw = 0;
  int64_t cls = kBox;
  Material material;
};

struct Room {
  double half_x = 3, half_z = 3, height = 2.8;
  Material floor, wall, ceiling;
};

struct Light {
  Vec3 position{0, 2.5, 0};
  double ambient = 0.35;    // share of the light that reaches every surface
  double intensity = 1.0;   // Lambert term scale, falls off as 1 / (1 + 0.08 d^2)
};

struct Scene {
  Room room;
  std::vector<Object> objects;
  Light light;
};

// Camera pose in the world (radians; see the conventions at the top).
struct CameraPose {
  Vec3 position{0, 1.5, 0};
  double yaw = 0, pitch = 0, roll = 0;
};

// Pinhole intrinsics in pixels. The default is the Kinect's field of view (NYUv2: fx ~ 518
// at 640 wide, about 63 degrees horizontally), scaled to the image: fx = fy = 0.81 * W.
struct Intrinsics {
  double fx = 0, fy = 0, cx = 0, cy = 0;
};
Intrinsics default_intrinsics(int64_t height, int64_t width);

// One rendered view. Shapes: rgb uint8 [3, H, W]; label int64 [H, W]; depth float32
// [1, H, W] (metres, z-depth); normal float32 [3, H, W] (unit, camera coordinates).
struct RenderedFrame {
  Tensor rgb, label, depth, normal;
};

struct RenderOptions {
  double rgb_noise = 0.0;   // amplitude of uniform per-pixel sensor noise on [0, 1] colours
  uint64_t noise_seed = 0;  // the noise is a hash of (noise_seed, pixel, channel)
};

// Ray-casts the scene; OpenMP over rows. Deterministic: every pixel is a pure function of
// its inputs, whatever the thread count.
RenderedFrame render_frame(const Scene& scene, const CameraPose& pose, const Intrinsics& k, int64_t height,
                           int64_t width, const RenderOptions& options = {});

// ---- random scenes and camera paths ---------------------------------------------------------
struct SyntheticConfig {
  int64_t height = 96, width = 128;
  int64_t train_sequences = 24, val_sequences = 6;
  int64_t frames_per_sequence = 20;
  // Annotated frames: annotate_first, annotate_first + annotate_stride, ... (with the
  // default K = 5, annotate_first = 4 gives every annotated frame its four predecessors).
  int64_t annotate_first = 4, annotate_stride = 5;
  uint64_t seed = 0;
  double rgb_noise = 0.02;
  // Camera speed: metres and degrees travelled over a 20-frame stretch (scaled with length).
  double travel_m = 0.8, turn_deg = 30;
};

// A scene and the camera pose of every frame. A pure function of (config, sequence_seed).
struct SyntheticSequence {
  Scene scene;
  std::vector<CameraPose> poses;
};
SyntheticSequence make_synthetic_sequence(const SyntheticConfig& config, uint64_t sequence_seed);

// The seed of sequence `index` of a split ("train" or "val") under config.seed.
uint64_t synthetic_sequence_seed(const SyntheticConfig& config, const std::string& split, int64_t index);

// True when frame f of a sequence is annotated under the config.
bool synthetic_is_annotated(const SyntheticConfig& config, int64_t frame);

// ---- the dataset on disk --------------------------------------------------------------------
struct SyntheticStats {
  int64_t sequences = 0, frames = 0, annotated = 0;
  double seconds = 0;
};

// Writes the SPEC 5 NYUv2-video layout under root:
//   root/{train,val}/seq_NNNN/rgb/NNNNNN.png        every frame (8-bit RGB)
//   root/{train,val}/seq_NNNN/label/NNNNNN.png      annotated frames: class ids (8-bit grey)
//   root/{train,val}/seq_NNNN/depth/NNNNNN.png      16-bit millimetres
//   root/{train,val}/seq_NNNN/normal/NNNNNN.png     8-bit RGB, v = round((n + 1) * 127.5)
//   root/synthetic.json                              the config, written last
// Frames are rendered in parallel (OpenMP over frames); the files are identical whatever
// the thread count. Existing files of the same names are overwritten.
SyntheticStats render_synthetic_dataset(const std::string& root, const SyntheticConfig& config);

// The cache used by the training program: when root/synthetic.json matches the config the
// set is there and nothing happens (returns false); when root does not exist it is
// rendered into a temporary sibling folder and renamed into place (returns true), so an
// interrupted render never leaves a half-written set behind. A root that exists with a
// different or missing synthetic.json is refused with an error (never deleted).
bool ensure_synthetic_dataset(const std::string& root, const SyntheticConfig& config);

// The config as the JSON text written to synthetic.json.
std::string synthetic_config_json(const SyntheticConfig& config);

}  // namespace mila::data
