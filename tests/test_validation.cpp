// test_validation.cpp - every option, flag and config value is checked before any work
// (mila/options_check.h, Config::validate): NaN, negative, non-integer and overflowing
// values are refused naming the flag or field, the value and the range; the memory
// estimate (mila/memory.h) bounds a measured training step from above and refuses sizes
// no machine holds.
#include <filesystem>
#include <fstream>
#include <limits>

#include "mila/memory.h"
#include "mila/options_check.h"
#include "mila/stream.h"
#include "mila/train.h"
#include "nn/optim.h"
#include "tensor/allocator.h"
#include "tests/test_util.h"

using namespace mila;
using mila::test::check_throws_with;
using mila::test::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int64_t kTiB = int64_t(1) << 40;

// The options of test_trainer.cpp's tiny run: 2 training sequences of 6 frames at 32x48.
TrainOptions tiny_run(const fs::path& dir) {
  TrainOptions o;
  o.cache = (dir / "cache").string();
  o.synthetic.height = 32, o.synthetic.width = 48;
  o.synthetic.train_sequences = 2, o.synthetic.val_sequences = 1;
  o.synthetic.frames_per_sequence = 6;
  o.synthetic.annotate_first = 1, o.synthetic.annotate_stride = 2;
  o.model = test::tiny_config(16);
  o.model.L = 3, o.model.K = 2;
  o.steps = 4;
  o.batch = 2;
  o.workers = 1;
  o.progress = false;
  o.final_eval = false;
  o.visualize = 0;
  o.stop_after = 0;  // should a check be missing, the run ends before its first step
  o.out = (dir / "out").string();
  return o;
}

}  // namespace

TEST_CASE("validation: number ranges refuse NaN, infinity and non-integers, and say what they allow") {
  CHECK_FALSE(positive_numbers().contains(kNaN));
  CHECK_FALSE(positive_numbers().contains(std::numeric_limits<double>::infinity()));
  CHECK_FALSE(positive_numbers().contains(0));
  CHECK(positive_numbers().contains(1e30));
  CHECK_FALSE(integers(0, 10).contains(3.7));
  CHECK(integers(0, 10).contains(10));
  CHECK_FALSE(numbers(0, 1, true).contains(1));
  CHECK(positive_numbers().text() == "a finite number > 0");
  CHECK(numbers(0, 1, true).text() == "a finite number in [0, 1)");
  CHECK(integers(1, kMaxSteps).text() == "an integer in [1, 1000000000000]");
  check_throws_with([] { check_flag("--lr", kNaN, positive_numbers()); }, {"--lr nan", "must be a finite number > 0"});
  check_throws_with([] { check_flag("--warmup", int64_t(-5), integers(0, 9)); }, {"--warmup -5", "an integer in [0, 9]"});
}

TEST_CASE("validation: each bad training option is refused naming the flag, the value and the range") {
  TempDir dir("options");
  const TrainOptions good = tiny_run(dir.path);
  CHECK_NOTHROW(check_train_options(good, /*available_bytes=*/0));
  struct Bad {
    const char* what;
    void (*edit)(TrainOptions&);
    std::vector<std::string> message;
  };
  const std::vector<Bad> cases = {
      {"lr nan", [](TrainOptions& o) { o.lr = kNaN; }, {"--lr nan", "finite number > 0"}},
      {"lr 0", [](TrainOptions& o) { o.lr = 0; }, {"--lr 0", "> 0"}},
      {"momentum nan", [](TrainOptions& o) { o.momentum = kNaN; }, {"--momentum nan", "[0, 1)"}},
      {"clip-grad nan", [](TrainOptions& o) { o.clip_grad = kNaN; }, {"--clip-grad nan", ">= 0"}},
      {"weight decay -1", [](TrainOptions& o) { o.weight_decay = -1; }, {"--weight-decay -1"}},
      {"warmup -5", [](TrainOptions& o) { o.warmup = -5; }, {"--warmup -5", "integer in [0, 1000000000000]"}},
      {"checkpoint-every 0", [](TrainOptions& o) { o.checkpoint_every = 0; }, {"--checkpoint-every 0", "[1, "}},
      {"threads -1", [](TrainOptions& o) { o.threads = -1; }, {"--threads -1", "[0, 1024]"}},
      {"workers -1", [](TrainOptions& o) { o.workers = -1; }, {"--workers -1"}},
      {"epochs 2e17", [](TrainOptions& o) { o.steps = 0, o.epochs = 200000000000000000; }, {"--epochs 200000000000000000"}},
      {"steps negative", [](TrainOptions& o) { o.steps = -3; }, {"--steps -3"}},
      {"eval-samples 0", [](TrainOptions& o) { o.eval_samples = 0; }, {"--eval-samples 0", "or -1"}},
      {"batch 0", [](TrainOptions& o) { o.batch = 0; }, {"--batch 0"}},
      {"synthetic height 4", [](TrainOptions& o) { o.synthetic.height = 4; }, {"--height 4", "[16, 4096]"}},
      {"frame size on nyu", [](TrainOptions& o) { o.frame_height = 64, o.frame_width = 64; }, {"--frame-size", "cityscapes"}},
      {"bad config", [](TrainOptions& o) { o.model.K = 0; }, {"model configuration", "field 'K' is 0"}},
  };
  for (const Bad& c : cases) {
    INFO(c.what);
    TrainOptions o = good;
    c.edit(o);
    check_throws_with([&] { check_train_options(o, 0); }, c.message);
  }
}

TEST_CASE("validation: train_nyu refuses bad options before it renders data, builds the model or trains") {
  TempDir dir("before");
  SUBCASE("--eval-samples 0, which used to fail only after training") {
    TrainOptions o = tiny_run(dir.path);
    o.eval_samples = 0;
    check_throws_with([&] { train_nyu(o); }, {"--eval-samples 0"});
    CHECK_FALSE(fs::exists(dir.path / "cache"));  // nothing rendered
  }
  SUBCASE("epochs whose steps pass 10^12 once the epoch's batches are known") {
    TrainOptions o = tiny_run(dir.path);
    o.steps = 0, o.epochs = 500'000'000'000;  // x 3 batches per epoch
    check_throws_with([&] { train_nyu(o); }, {"--epochs 500000000000 of 3 batches each", "1000000000000 steps"});
  }
  SUBCASE("a warm-up longer than the run") {
    TrainOptions o = tiny_run(dir.path);
    o.warmup = 10;
    check_throws_with([&] { train_nyu(o); }, {"--warmup 10", "[0, 4]", "within the run's 4 steps"});
  }
  CHECK_FALSE(fs::exists(dir.path / "out" / "checkpoint"));
}

TEST_CASE("validation: config integers must be integers, every field in range, errors name the file and the field") {
  check_throws_with([] { (void)Config::from_json(R"({"K": 3.7})"); }, {"mila.config", "field 'K' is 3.7", "must be an integer"});
  check_throws_with([] { (void)Config::from_json(R"({"width": 64.0})"); }, {"field 'width' is 64.0", "written as an integer"});
  check_throws_with([] { (void)Config::from_json(R"({"K": 1e30})"); }, {"field 'K'", "out of range"});
  check_throws_with([] { (void)Config::from_json(R"({"K": 18446744073709551617})"); }, {"field 'K'", "out of range"});
  check_throws_with([] { (void)Config::from_json(R"({"C": 9223372036854775808})"); }, {"field 'C'", "out of range"});
  // 2^32 + 18 must not wrap to the valid depth 18.
  check_throws_with([] { (void)Config::from_json(R"({"slow_depth": 4294967314})"); }, {"field 'slow_depth'", "out of range"});
  check_throws_with([] { (void)Config::from_json(R"({"K": 0})"); }, {"field 'K' is 0", "[1, 100]", "keyframe interval"});
  check_throws_with([] { (void)Config::from_json(R"({"width": 100000})"); }, {"field 'width' is 100000", "[1, 1024]"});
  check_throws_with([] { (void)Config::from_json(R"({"L": -1})"); }, {"field 'L' is -1", "L must be odd"});
  check_throws_with([] { (void)Config::from_json(R"({"alpha": "x"})"); }, {"field 'alpha' is \"x\"", "must be a number"});
  check_throws_with([] { (void)Config::from_json(R"({"alpha": -1})"); }, {"field 'alpha' is -1", ">= 0"});
  check_throws_with([] { (void)Config::from_json(R"({"mimic": 1})"); }, {"field 'mimic' is 1", "true or false"});
  check_throws_with([] { (void)Config::from_json(R"({"tasks": [["depth", 2]]})"); }, {"field 'tasks.depth' is 2", "1 channel"});
  check_throws_with([] { (void)Config::from_json(R"({"tasks": [["seg", 2.5]]})"); }, {"field 'tasks.seg' is 2.5", "integer"});
  Config nan_beta;
  nan_beta.beta = kNaN;
  check_throws_with([&] { nan_beta.validate(); }, {"field 'beta'", "finite"});

  TempDir dir("config");
  const fs::path file = dir.path / "k.json";
  std::ofstream(file) << R"({"K": 3.7})";
  check_throws_with([&] { (void)Config::from_file(file.string()); }, {file.string(), "field 'K' is 3.7"});
  const fs::path broken = dir.path / "broken.json";
  std::ofstream(broken) << R"({"K": 5,})";
  try {
    (void)Config::from_file(broken.string());
    FAIL("expected a parse error");
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    CHECK(what.find(broken.string()) != std::string::npos);
    CHECK(what.find("not valid JSON") != std::string::npos);
    CHECK(what.find("line 1") != std::string::npos);
    CHECK(what.find("[json.exception") == std::string::npos);  // the parser's tag is not for people
  }
  check_throws_with([&] { (void)Config::from_file((dir.path / "absent.json").string()); }, {"absent.json", "cannot be read"});
}

TEST_CASE("validation: comma-separated numbers are parsed whole and checked") {
  CHECK(parse_number_list("--thresholds", "0.05, 0.1,0.4", numbers(0)) == std::vector<double>{0.05, 0.1, 0.4});
  check_throws_with([] { (void)parse_number_list("--thresholds", "0.1,nan", numbers(0)); }, {"--thresholds 'nan'", ">= 0"});
  check_throws_with([] { (void)parse_number_list("--thresholds", "0.1,-2", numbers(0)); }, {"--thresholds '-2'"});
  check_throws_with([] { (void)parse_number_list("--thresholds", "0.1,,0.2", numbers(0)); }, {"--thresholds", "'' is not a number"});
  check_throws_with([] { (void)parse_number_list("--thresholds", "0.1x", numbers(0)); }, {"'0.1x' is not a number"});
}

TEST_CASE("validation: a stream refuses a NaN drift threshold and a negative keyframe cap") {
  Model model(test::tiny_config(16));
  check_throws_with([&] { Stream(model, StreamOptions{true, kNaN, 0, true}); }, {"drift_threshold"});
  check_throws_with([&] { Stream(model, StreamOptions{true, 0.1, -1, true}); }, {"max_interval"});
}

TEST_CASE("validation: the training memory estimate is above a measured step, and within a small factor of it") {
  // One training step of a small model, measured by the allocator (every tensor's bytes),
  // against the estimate less its data term (the loader is not part of this step).
  Config cfg = test::tiny_config(32);
  cfg.K = 3;
  const int64_t B = 2, T = 3, H = 64, W = 96;
  manual_seed(0);
  const int64_t before = memory_stats().bytes_in_use;
  reset_peak_memory();
  {
    Model model(cfg);
    model.train();
    nn::Adam adam({nn::ParamGroup{model.parameters(), 1e-3, 0}}, nn::AdamOptions{});
    Generator g(1);
    Batch b;
    b.frames = randn({T, B, 3, H, W}, {}, &g);
    b.seg = randint(0, 13, {B, H, W}, {DType::Int64}, &g);
    b.depth = add(rand({B, 1, H, W}, {}, &g), 0.5);
    b.normal = sub(rand({B, 3, H, W}, {}, &g), 0.5);
    b.t0 = 0;
    for (int step = 0; step < 2; ++step) {  // the second step runs with the optimizer's state in place
      const LossTerms terms = training_losses(model, b);
      adam.zero_grad();
      terms.total.backward();
      adam.step();
    }
  }
  const double measured = double(memory_stats().peak_bytes - before);
  TrainingShape shape;
  shape.batch = B, shape.clip_length = T, shape.height = H, shape.width = W;
  const MemoryEstimate e = estimate_training_memory(cfg, shape);
  const double estimated = e.total() - e.data;
  MESSAGE("measured peak " << bytes_text(measured) << ", estimated " << e.str());
  CHECK(estimated >= measured);
  CHECK(estimated <= 2 * measured);
}

TEST_CASE("validation: sizes that need more memory than the machine has are refused before any work, with the numbers") {
  TempDir dir("memory");
  TrainOptions o = tiny_run(dir.path);
  CHECK_NOTHROW(check_train_options(o, 64 * kTiB));
  check_throws_with([&] { check_train_options(o, 1 << 20); },
                    {"a training step needs about", "--batch 2", "K = 2", "32x48", "more than the 1.0 MiB of memory available"});
  // Sizes no machine holds, refused against this machine's memory (Trainer::setup makes
  // this check first; called directly so that a missing check cannot start the render).
  o.model = Config();
  o.model.width = 512, o.model.C = 4096, o.model.D = 1024;
  o.synthetic.height = 4096, o.synthetic.width = 4096;
  o.batch = 64;
  const MemoryEstimate need = estimate_training_memory(o.model, training_shape(o, 4096, 4096));
  CHECK(need.total() > 100.0 * double(kTiB));
  check_throws_with([&] { check_train_options(o); }, {"TiB", "4096x4096", "width 512, C 4096, D 1024"});
}

TEST_CASE("validation: streamed frames above --max-pixels or the memory are refused, naming the size and the cost") {
  const Config cfg = test::tiny_config(16);
  CHECK_NOTHROW(check_stream_frame(cfg, 288, 384, kDefaultMaxFramePixels, 64 * kTiB));
  check_throws_with([&] { check_stream_frame(cfg, 8000, 8000, kDefaultMaxFramePixels, 0); },
                    {"8000x8000", "GMACs per frame", "64000000 pixels", "--max-pixels 4194304"});
  check_throws_with([&] { check_stream_frame(cfg, 1024, 1024, kDefaultMaxFramePixels, 1 << 20); },
                    {"1024x1024", "a frame needs about", "1.0 MiB of memory available"});
}
