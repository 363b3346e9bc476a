#include "nn/trace.h"

#include <cstdio>
#include <sstream>

#include "autograd/grad_mode.h"
#include "ops/factory.h"

namespace mila::nn::trace {
namespace {
thread_local Recorder* g_active = nullptr;
}

Recorder::Recorder(Module& root) : previous_(g_active) {
  for (auto& [path, m] : root.named_modules()) paths_.emplace_back(m, path);
  g_active = this;
}
Recorder::~Recorder() { g_active = previous_; }
Recorder* Recorder::active() { return g_active; }

std::string Recorder::path_of(const Module* m) const {
  std::string found;
  for (const auto& [mod, path] : paths_)
    if (mod == m) found = path.empty() ? "(root)" : path;
  return found;
}

void Recorder::enter(Module*) { ++depth_; }

void Recorder::leave(Module* m, const Tensor& input, const Tensor& output) {
  --depth_;
  Row row;
  row.type = m->type_name();
  row.path = path_of(m);
  row.output_shape = output.defined() ? output.shape() : Shape{};
  for (const auto& [n, t] : m->params_) row.params += t.numel();
  row.macs = m->macs(input, output);
  row.depth = depth_;
  rows.push_back(row);
}

void Recorder::record(const Module* m, const std::string& type, const Shape& output_shape, int64_t macs) {
  Row row;
  row.type = type;
  row.path = path_of(m);
  row.output_shape = output_shape;
  row.macs = macs;
  row.depth = depth_;
  rows.push_back(row);
}

int64_t Recorder::total_macs() const {
  int64_t n = 0;
  for (const Row& r : rows) n += r.macs;  // only leaf layers count MACs, so no double counting
  return n;
}

namespace {
// One eval-mode, no-grad forward on zeros of `input_shape`, recorded.
std::vector<Row> trace_rows(Module& m, const Shape& input_shape) {
  Recorder recorder(m);
  NoGradGuard no_grad;
  const bool was_training = m.is_training();
  m.eval();
  const std::vector<Tensor> params = m.parameters();
  const Device device = params.empty() ? Device::cpu() : params[0].device();
  m(zeros(input_shape, {DType::Float32, device}));
  m.train(was_training);
  return recorder.rows;
}
}  // namespace

int64_t count_macs(Module& m, const Shape& input_shape) {
  int64_t n = 0;
  for (const Row& r : trace_rows(m, input_shape)) n += r.macs;
  return n;
}

std::string summary(Module& m, const Shape& input_shape) {
  const std::vector<Row> rows = trace_rows(m, input_shape);
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "%-40s %-20s %-22s %12s %14s\n", "module", "type", "output", "params", "MACs");
  os << line;
  int64_t macs = 0;
  for (const Row& r : rows) {
    std::snprintf(line, sizeof line, "%-40s %-20s %-22s %12lld %14lld\n", r.path.c_str(), r.type.c_str(),
                  shape_str(r.output_shape).c_str(), (long long)r.params, (long long)r.macs);
    os << line;
    macs += r.macs;
  }
  std::snprintf(line, sizeof line, "total: %lld parameters, %.3f GMACs at input %s\n", (long long)m.num_parameters(),
                double(macs) / 1e9, shape_str(input_shape).c_str());
  os << line;
  return os.str();
}

}  // namespace mila::nn::trace
