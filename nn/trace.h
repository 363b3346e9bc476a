// trace.h - what a forward did, module by module: the MAC counter and the summary table.
//
// While a Recorder is alive on a thread, every Module::operator() call on that thread adds
// a Row (path, type, output shape, own parameters, MACs). MACs follow thop's convention,
// as SPEC 4.5 counts them: Conv2d and Linear count (Module::macs), everything else is 0,
// except work a module reports itself through record() (ILA's attention, nn/attention.cpp).
// Only leaf layers count MACs, so a total is the plain sum of the rows.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"

namespace mila::nn::trace {

struct Row {
  std::string path, type;  // "layer1.0.conv1", "Conv2d"; the root is "(root)"
  Shape output_shape;
  int64_t params = 0;      // the module's own parameters (not its children's)
  int64_t macs = 0;
  int depth = 0;           // nesting of the call (0: called by the root's caller)
};

class Recorder {
 public:
  explicit Recorder(Module& root);  // paths are named from `root`
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  std::vector<Row> rows;
  int64_t total_macs() const;

  // The innermost Recorder alive on this thread, or null.
  static Recorder* active();
  // Called by Module::operator() around a forward.
  void enter(Module* m);
  void leave(Module* m, const Tensor& input, const Tensor& output);
  // A row for work a module does outside its forward() (ILAModule::attend): MACs of a call
  // that Module::operator() does not see.
  void record(const Module* m, const std::string& type, const Shape& output_shape, int64_t macs);

 private:
  std::string path_of(const Module* m) const;
  Recorder* previous_;
  std::vector<std::pair<Module*, std::string>> paths_;  // from root.named_modules()
  int depth_ = 0;
};

// Total multiply-accumulates of one forward at this input shape (eval mode, no grad).
int64_t count_macs(Module& m, const Shape& input_shape);
// One line per module call: path, type, output shape, parameters, MACs; then totals.
std::string summary(Module& m, const Shape& input_shape);

}  // namespace mila::nn::trace
