// print.cpp - Tensor::str(): values laid out like PyTorch's repr, abbreviated with "..."
// (first and last 3 entries of each dim) when the tensor has more than 1000 elements, then
// shape, dtype and device.
//
//   tensor([[ 0.1000, -2.0000],
//           [ 3.5000,  4.0000]], shape=[2, 2], dtype=float32, device=cpu)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <sstream>
#include <vector>

#include "autograd/grad_mode.h"
#include "tensor/tensor.h"

namespace mila {
namespace {

constexpr int64_t kSummarizeAbove = 1000;
constexpr int64_t kEdgeItems = 3;

struct Printer {
  std::vector<std::string> cells;  // formatted values in row-major order of the shown entries
  Shape shape;
  bool summarize = false;
  size_t width = 0;
  size_t next = 0;

  // Indices of dim d that are shown (-1 marks the "..." gap).
  std::vector<int64_t> shown(int64_t n) const {
    std::vector<int64_t> idx;
    if (!summarize || n <= 2 * kEdgeItems) {
      for (int64_t i = 0; i < n; ++i) idx.push_back(i);
    } else {
      for (int64_t i = 0; i < kEdgeItems; ++i) idx.push_back(i);
      idx.push_back(-1);
      for (int64_t i = n - kEdgeItems; i < n; ++i) idx.push_back(i);
    }
    return idx;
  }

  void write(std::ostream& os, size_t d, int indent) {
    if (d == shape.size()) {  // 0-d
      os << cells[next++];
      return;
    }
    os << '[';
    const std::vector<int64_t> idx = shown(shape[d]);
    for (size_t j = 0; j < idx.size(); ++j) {
      if (j > 0) {
        os << ',';
        if (d + 1 == shape.size()) {
          os << ' ';
        } else {
          os << std::string(shape.size() - d - 1, '\n') << std::string(indent + 1, ' ');
        }
      }
      if (idx[j] < 0) {
        os << "...";
      } else if (d + 1 == shape.size()) {
        const std::string& c = cells[next++];
        os << std::string(width - c.size(), ' ') << c;
      } else {
        write(os, d + 1, indent + 1);
      }
    }
    os << ']';
  }
};

// Walks the shown entries in row-major order, calling f(element_offset).
template <typename F>
void visit(const Tensor& t, const Printer& p, size_t d, int64_t off, F&& f) {
  if (d == p.shape.size()) return f(off);
  for (int64_t i : p.shown(p.shape[d]))
    if (i >= 0) visit(t, p, d + 1, off + i * t.strides()[d], f);
}

std::string format_float(double v, bool sci) {
  char buf[64];
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::snprintf(buf, sizeof buf, sci ? "%.4e" : "%.4f", v);
  return buf;
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  autograd::NoGradGuard no_grad;
  const Tensor host = to(Device::cpu());
  Printer p;
  p.shape = host.shape();
  p.summarize = host.numel() > kSummarizeAbove;
  if (host.numel() > 0) {
    if (is_floating(host.dtype())) {
      const Tensor d = host.to(DType::Float64);
      const double* base = static_cast<const double*>(d.raw_data());
      std::vector<double> vals;
      visit(d, p, 0, 0, [&](int64_t off) { vals.push_back(base[off]); });
      double lo = INFINITY, hi = 0;
      for (double v : vals)
        if (std::isfinite(v) && v != 0) lo = std::min(lo, std::abs(v)), hi = std::max(hi, std::abs(v));
      const bool sci = hi >= 1e8 || (hi > 0 && lo < 1e-4) || (hi > 0 && hi / lo > 1e6);
      for (double v : vals) p.cells.push_back(format_float(v, sci));
    } else {
      const Tensor d = host.to(DType::Int64);
      const int64_t* base = static_cast<const int64_t*>(d.raw_data());
      visit(d, p, 0, 0, [&](int64_t off) { p.cells.push_back(std::to_string(base[off])); });
    }
    for (const std::string& c : p.cells) p.width = std::max(p.width, c.size());
  }
  std::ostringstream os;
  os << "tensor(";
  if (host.numel() == 0 && host.dim() > 0) {
    os << "[]";
  } else {
    p.write(os, 0, int(std::string("tensor(").size()));
  }
  os << ", shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype()) << ", device=" << device().str();
  if (requires_grad()) os << ", requires_grad=true";
  os << ')';
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace mila
