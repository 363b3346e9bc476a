// synthetic.cpp - the ray caster of the synthetic dataset: intersections, textures, shading
// and the per-pixel ground truth. Random scenes and the files on disk are in
// synthetic_scene.cpp; the conventions (axes, depth, normals, classes) in synthetic.h.
//
// Every camera ray is p(t) = origin + t * d with d = forward + a * right - b * up (not
// normalized): its component along `forward` is exactly 1, so the hit parameter t is the
// z-depth itself. The intersection routines below accept any non-zero d for that reason.
#include "data/synthetic.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "ops/factory.h"

namespace mila::data {

const char* synthetic_class_name(int64_t cls) {
  static const char* names[kSyntheticClasses] = {"floor",  "wall",  "ceiling", "box",  "sphere",
                                                 "cylinder", "table", "picture", "door", "rug"};
  return cls >= 0 && cls < kSyntheticClasses ? names[cls] : "?";
}

Intrinsics default_intrinsics(int64_t height, int64_t width) {
  Intrinsics k;
  k.fx = k.fy = 0.81 * double(width);
  k.cx = 0.5 * double(width);
  k.cy = 0.5 * double(height);
  return k;
}

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kPi = 3.14159265358979323846;

// ---- hashing and procedural patterns --------------------------------------------------------

uint64_t hash64(uint64_t z) {  // SplitMix64's finalizer, as tensor/random.h
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
uint64_t hash_combine(uint64_t a, uint64_t b) { return hash64(a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2))); }
double hash_unit(uint64_t h) { return double(h >> 11) * 0x1.0p-53; }  // [0, 1)

// Value noise: random values on the integer lattice, blended with a smoothstep.
double value_noise(double u, double v, uint64_t seed) {
  const double fu = std::floor(u), fv = std::floor(v);
  const int64_t iu = int64_t(fu), iv = int64_t(fv);
  auto corner = [&](int64_t a, int64_t b) { return hash_unit(hash_combine(hash_combine(seed, uint64_t(a)), uint64_t(b))); };
  double su = u - fu, sv = v - fv;
  su = su * su * (3 - 2 * su);
  sv = sv * sv * (3 - 2 * sv);
  const double top = corner(iu, iv) * (1 - su) + corner(iu + 1, iv) * su;
  const double bottom = corner(iu, iv + 1) * (1 - su) + corner(iu + 1, iv + 1) * su;
  return top * (1 - sv) + bottom * sv;
}

// The pattern value in [0, 1] at surface coordinates (u, v), in metres.
double pattern_value(const Material& m, double u, double v) {
  const double s = m.scale > 0 ? m.scale : 1.0;
  switch (m.pattern) {
    case Pattern::Plain: return 0.0;
    case Pattern::Checker: return double((int64_t(std::floor(u / s)) + int64_t(std::floor(v / s))) & 1);
    case Pattern::Stripes: {
      // Hard stripes across u, with a little noise along v so they read as planks or fabric.
      const double f = u / s - std::floor(u / s);
      return (f < 0.5 ? 0.0 : 1.0) * 0.8 + 0.2 * value_noise(u / s * 2, v / s * 8, m.noise_seed);
    }
    case Pattern::Noise: return 0.65 * value_noise(u / s, v / s, m.noise_seed) + 0.35 * value_noise(u / s * 3.7, v / s * 3.7, m.noise_seed + 1);
  }
  return 0.0;
}

Vec3 albedo(const Material& m, double u, double v) {
  const double p = pattern_value(m, u, v);
  return m.colour_a * (1 - p) + m.colour_b * p;
}

// ---- intersections -----------------------------------------------------------------------------
//
// Each routine returns the smallest t in (t_min, t_max) where the ray meets the surface, and
// the outward unit normal there (world coordinates), or false.

// Rotation about the vertical axis: local -> world by +yaw, world -> local by -yaw.
Vec3 rotate_y(Vec3 a, double cos_yaw, double sin_yaw) { return {cos_yaw * a.x + sin_yaw * a.z, a.y, -sin_yaw * a.x + cos_yaw * a.z}; }

bool hit_box(const Object& b, Vec3 o, Vec3 d, double t_min, double t_max, double& t_hit, Vec3& n_out) {
  const double c = std::cos(b.yaw), s = std::sin(b.yaw);
  const Vec3 ol = rotate_y(o - b.centre, c, -s), dl = rotate_y(d, c, -s);  // into the box's frame
  const double oa[3] = {ol.x, ol.y, ol.z}, da[3] = {dl.x, dl.y, dl.z}, ha[3] = {b.half.x, b.half.y, b.half.z};
  // Slab method: the ray is inside the box between the largest entry and the smallest exit.
  double t_near = -kInf, t_far = kInf;
  int axis_near = 0, axis_far = 0;
  for (int a = 0; a < 3; ++a) {
    if (da[a] == 0.0) {
      if (oa[a] < -ha[a] || oa[a] > ha[a]) return false;
      continue;
    }
    double t0 = (-ha[a] - oa[a]) / da[a], t1 = (ha[a] - oa[a]) / da[a];
    if (t0 > t1) std::swap(t0, t1);
    if (t0 > t_near) t_near = t0, axis_near = a;
    if (t1 < t_far) t_far = t1, axis_far = a;
  }
  if (t_near > t_far) return false;
  double t;
  int axis;
  if (t_near > t_min && t_near < t_max) {
    t = t_near, axis = axis_near;
  } else if (t_far > t_min && t_far < t_max && t_near <= t_min) {
    t = t_far, axis = axis_far;  // the ray starts inside (shadow rays from a touching face)
  } else {
    return false;
  }
  double nl[3] = {0, 0, 0};
  const double coord = oa[axis] + t * da[axis];
  nl[axis] = coord > 0 ? 1.0 : -1.0;
  n_out = rotate_y({nl[0], nl[1], nl[2]}, c, s);
  t_hit = t;
  return true;
}

bool hit_sphere(const Object& sp, Vec3 o, Vec3 d, double t_min, double t_max, double& t_hit, Vec3& n_out) {
  const double r = sp.half.x;
  const Vec3 oc = o - sp.centre;
  const double a = dot(d, d), half_b = dot(oc, d), c = dot(oc, oc) - r * r;
  const double disc = half_b * half_b - a * c;
  if (disc < 0) return false;
  const double root = std::sqrt(disc);
  double t = (-half_b - root) / a;
  if (!(t > t_min && t < t_max)) {
    t = (-half_b + root) / a;
    if (!(t > t_min && t < t_max)) return false;
  }
  t_hit = t;
  n_out = (o + d * t - sp.centre) * (1.0 / r);
  return true;
}

bool hit_cylinder(const Object& cy, Vec3 o, Vec3 d, double t_min, double t_max, double& t_hit, Vec3& n_out) {
  const double r = cy.half.x, hh = cy.half.y;
  const Vec3 oc = o - cy.centre;
  bool found = false;
  double best = t_max;
  // Side: (ox + t dx)^2 + (oz + t dz)^2 = r^2 with |y| <= hh.
  const double a = d.x * d.x + d.z * d.z;
  if (a > 0) {
    const double half_b = oc.x * d.x + oc.z * d.z, c = oc.x * oc.x + oc.z * oc.z - r * r;
    const double disc = half_b * half_b - a * c;
    if (disc >= 0) {
      const double root = std::sqrt(disc);
      for (double t : {(-half_b - root) / a, (-half_b + root) / a}) {
        if (t > t_min && t < best && std::abs(oc.y + t * d.y) <= hh) {
          best = t, found = true;
          n_out = Vec3{oc.x + t * d.x, 0, oc.z + t * d.z} * (1.0 / r);
          break;
        }
      }
    }
  }
  // Caps: y = +-hh inside the radius.
  if (d.y != 0) {
    for (double cap : {hh, -hh}) {
      const double t = (cap - oc.y) / d.y;
      const double x = oc.x + t * d.x, z = oc.z + t * d.z;
      if (t > t_min && t < best && x * x + z * z <= r * r) {
        best = t, found = true;
        n_out = {0, cap > 0 ? 1.0 : -1.0, 0};
      }
    }
  }
  if (found) t_hit = best;
  return found;
}

bool hit_object(const Object& ob, Vec3 o, Vec3 d, double t_min, double t_max, double& t, Vec3& n) {
  switch (ob.kind) {
    case Primitive::Box: return hit_box(ob, o, d, t_min, t_max, t, n);
    case Primitive::Sphere: return hit_sphere(ob, o, d, t_min, t_max, t, n);
    case Primitive::Cylinder: return hit_cylinder(ob, o, d, t_min, t_max, t, n);
  }
  return false;
}

// The room seen from inside: the ray leaves through the nearest of its six faces.
// face: 0 floor, 1 ceiling, 2 wall x = -half_x, 3 wall x = +half_x, 4 wall z = -half_z, 5 wall z = +half_z.
bool hit_room(const Room& room, Vec3 o, Vec3 d, double& t_hit, Vec3& n_out, int& face) {
  double best = kInf;
  auto consider = [&](double t, Vec3 n, int f) {
    if (t > 0 && t < best) best = t, n_out = n, face = f;
  };
  if (d.y < 0) consider(-o.y / d.y, {0, 1, 0}, 0);
  if (d.y > 0) consider((room.height - o.y) / d.y, {0, -1, 0}, 1);
  if (d.x < 0) consider((-room.half_x - o.x) / d.x, {1, 0, 0}, 2);
  if (d.x > 0) consider((room.half_x - o.x) / d.x, {-1, 0, 0}, 3);
  if (d.z < 0) consider((-room.half_z - o.z) / d.z, {0, 0, 1}, 4);
  if (d.z > 0) consider((room.half_z - o.z) / d.z, {0, 0, -1}, 5);
  t_hit = best;
  return best < kInf;
}

// ---- surface coordinates for the textures ----------------------------------------------------

// Arc length around a vertical axis, rounded so that a whole number of pattern periods fits
// the circumference (no seam in checkers and stripes).
double around(double x, double z, double r, double period) {
  const double turns = std::max(1.0, std::round(2 * kPi * r / period));
  return (std::atan2(z, x) / (2 * kPi) + 0.5) * turns * period;
}

void room_uv(const Room& room, int face, Vec3 p, double& u, double& v) {
  switch (face) {
    case 0:
    case 1: u = p.x + room.half_x, v = p.z + room.half_z; return;  // floor, ceiling
    case 2:
    case 3: u = p.z + room.half_z, v = p.y; return;  // walls across x
    default: u = p.x + room.half_x, v = p.y; return;  // walls across z
  }
}

void object_uv(const Object& ob, Vec3 p, Vec3 n_world, double& u, double& v) {
  const Vec3 q = p - ob.centre;
  const double period = ob.material.scale > 0 ? ob.material.scale : 1.0;
  switch (ob.kind) {
    case Primitive::Box: {
      // In the box's frame, from its corner, dropping the axis the face looks along.
      const double c = std::cos(ob.yaw), s = std::sin(ob.yaw);
      const Vec3 ql = rotate_y(q, c, -s) + ob.half, nl = rotate_y(n_world, c, -s);
      const double ax = std::abs(nl.x), ay = std::abs(nl.y), az = std::abs(nl.z);
      if (ax >= ay && ax >= az) u = ql.z, v = ql.y;
      else if (ay >= az) u = ql.x, v = ql.z;
      else u = ql.x, v = ql.y;
      return;
    }
    case Primitive::Sphere: {
      const double r = ob.half.x;
      u = around(q.x, q.z, r, period);
      v = std::asin(std::clamp(q.y / r, -1.0, 1.0)) * r;
      return;
    }
    case Primitive::Cylinder: {
      const double r = ob.half.x;
      if (std::abs(n_world.y) > 0.5) u = q.x + r, v = q.z + r;  // a cap
      else u = around(q.x, q.z, r, period), v = q.y;
      return;
    }
  }
}

// True when something other than the room blocks the segment from p to the light.
bool in_shadow(const Scene& scene, Vec3 p, Vec3 light) {
  const Vec3 d = light - p;  // t in (0, 1) covers the segment
  double t;
  Vec3 n;
  for (const Object& ob : scene.objects)
    if (hit_object(ob, p, d, 1e-6, 1.0, t, n)) return true;
  return false;
}

}  // namespace

RenderedFrame render_frame(const Scene& scene, const CameraPose& pose, const Intrinsics& k, int64_t height,
                           int64_t width, const RenderOptions& options) {
  if (height <= 0 || width <= 0)
    throw std::invalid_argument("render_frame: image size " + std::to_string(height) + "x" + std::to_string(width) + " must be positive");
  if (!(k.fx > 0 && k.fy > 0)) throw std::invalid_argument("render_frame: focal lengths must be positive");

  // Camera axes in the world (see synthetic.h): forward from yaw and pitch, right level with
  // the floor, then roll turns right and up about forward.
  const Vec3 world_up{0, 1, 0};
  const Vec3 forward{-std::sin(pose.yaw) * std::cos(pose.pitch), std::sin(pose.pitch), -std::cos(pose.yaw) * std::cos(pose.pitch)};
  const Vec3 right0 = normalized(cross(forward, world_up));
  const Vec3 up0 = cross(right0, forward);
  const double cr = std::cos(pose.roll), sr = std::sin(pose.roll);
  const Vec3 right = right0 * cr + up0 * sr, up = up0 * cr - right0 * sr;

  const int64_t H = height, W = width, HW = H * W;
  RenderedFrame out;
  out.rgb = Tensor::allocate({3, H, W}, DType::UInt8, Device::cpu());
  out.label = Tensor::allocate({H, W}, DType::Int64, Device::cpu());
  out.depth = Tensor::allocate({1, H, W}, DType::Float32, Device::cpu());
  out.normal = Tensor::allocate({3, H, W}, DType::Float32, Device::cpu());
  uint8_t* rgb = out.rgb.data<uint8_t>();
  int64_t* label = out.label.data<int64_t>();
  float* depth = out.depth.data<float>();
  float* normal = out.normal.data<float>();
  const Vec3 o = pose.position;
  const Light& light = scene.light;

#pragma omp parallel for schedule(static)
  for (int64_t y = 0; y < H; ++y) {
    for (int64_t x = 0; x < W; ++x) {
      const double a = (double(x) + 0.5 - k.cx) / k.fx, b = (double(y) + 0.5 - k.cy) / k.fy;
      const Vec3 d = forward + right * a - up * b;

      // Nearest surface: the room's exit face, then every object in front of it.
      double t = kInf;
      Vec3 n;
      int face = 0;
      hit_room(scene.room, o, d, t, n, face);
      int64_t cls = face == 0 ? kFloor : (face == 1 ? kCeiling : kWall);
      const Object* hit = nullptr;
      for (const Object& ob : scene.objects) {
        double t_ob;
        Vec3 n_ob;
        if (hit_object(ob, o, d, 1e-9, t, t_ob, n_ob)) t = t_ob, n = n_ob, hit = &ob, cls = ob.cls;
      }
      const Vec3 p = o + d * t;
      if (dot(n, d) > 0) n = n * -1.0;  // face the camera (a panel's back, a ray from inside)

      // Albedo from the surface's texture.
      double u = 0, v = 0;
      const Material* mat;
      if (hit) {
        object_uv(*hit, p, n, u, v);
        mat = &hit->material;
      } else {
        room_uv(scene.room, face, p, u, v);
        mat = face == 0 ? &scene.room.floor : (face == 1 ? &scene.room.ceiling : &scene.room.wall);
      }
      const Vec3 colour = albedo(*mat, u, v);

      // Lambert with a soft distance falloff, hard shadows, plus ambient light.
      const Vec3 to_light = light.position - p;
      const double dist = length(to_light);
      double lambert = std::max(0.0, dot(n, to_light) / dist);
      if (lambert > 0 && in_shadow(scene, p + n * 1e-6, light.position)) lambert = 0;
      const double shade = light.ambient + (1 - light.ambient) * light.intensity * lambert / (1 + 0.08 * dist * dist);

      const int64_t i = y * W + x;
      const double c[3] = {colour.x * shade, colour.y * shade, colour.z * shade};
      for (int ch = 0; ch < 3; ++ch) {
        double value = c[ch];
        if (options.rgb_noise > 0) {
          const uint64_t h = hash_combine(hash_combine(options.noise_seed, uint64_t(i)), uint64_t(ch));
          value += options.rgb_noise * (2 * hash_unit(h) - 1);
        }
        rgb[ch * HW + i] = uint8_t(std::lround(std::clamp(value, 0.0, 1.0) * 255.0));
      }
      label[i] = cls;
      depth[i] = float(t);  // z-depth: d's forward component is 1
      normal[i] = float(dot(n, right));
      normal[HW + i] = float(dot(n, up));
      normal[2 * HW + i] = float(-dot(n, forward));
    }
  }
  return out;
}

}  // namespace mila::data
