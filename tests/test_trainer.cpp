// test_trainer.cpp - the training program (mila/trainer.h) end to end on a tiny synthetic
// set and model: the output folder, exact resume after an interruption, the first-batch
// dump, bad input and non-finite losses.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "mila/checkpoint.h"
#include "mila/run_checkpoint.h"
#include "mila/trainer.h"
#include "nn/safetensors.h"
#include "test_util.h"
#include "tests/cityscapes_tree.h"
#include "tests/trainer_runs.h"

using namespace mila;
using mila::test::loss_rows;
using mila::test::read;
using mila::test::TempDir;
using mila::test::tiny_run;
namespace fs = std::filesystem;

TEST_CASE("train_nyu: a run writes its folder, and a resumed run logs exactly what an uninterrupted one does") {
  TempDir dir("resume");
  const fs::path cache = dir.path / "cache";

  TrainOptions whole = tiny_run(cache, dir.path / "whole");
  whole.dump_first_batch = (dir.path / "batch0.safetensors").string();
  const TrainSummary s = train_nyu(whole);
  CHECK(s.steps == 4);
  CHECK(!s.interrupted);
  for (const char* f : {"log.csv", "loss.svg", "model.safetensors", "checkpoint-00000004/model.safetensors",
                        "checkpoint-00000004/optimizer.safetensors", "checkpoint-00000004/state.json",
                        "checkpoint-00000004/manifest.json"})
    CHECK_MESSAGE(fs::exists(dir.path / "whole" / f), f);
  CHECK(latest_checkpoint(dir.path / "whole") == dir.path / "whole" / "checkpoint-00000004");
  CHECK(!fs::exists(dir.path / "whole" / "checkpoint-00000002"));  // replaced by the newer one
  const std::vector<std::string> expected = loss_rows(dir.path / "whole" / "log.csv");
  REQUIRE(expected.size() == 4);
  CHECK(expected[0].rfind("0,0,", 0) == 0);

  // The dump holds the first batch as the model saw it: SPEC-normalized frames [T, B, 3, H, W].
  const safetensors::Contents dump = safetensors::read(whole.dump_first_batch);
  const Tensor frames = dump.find("frames"), seg = dump.find("seg");
  REQUIRE(frames.defined());
  CHECK(frames.dim() == 5);
  CHECK(frames.size(1) == 2);
  CHECK(frames.size(3) == 32);
  CHECK(dump.find("t0").dim() == 0);
  CHECK(seg.dtype() == DType::Int64);
  CHECK(dump.find("depth").shape() == Shape{2, 1, 32, 48});
  CHECK(dump.find("normal").shape() == Shape{2, 3, 32, 48});

  // The checkpoint's state keeps the options' names as the command line spells them.
  const std::string state = read(dir.path / "whole" / "checkpoint-00000004" / "state.json");
  CHECK(state.find(R"("optimizer": "adam")") != std::string::npos);
  CHECK(state.find(R"("schedule": "constant")") != std::string::npos);

  // The final model carries its config and loads alone.
  std::unique_ptr<Model> m = load_model((dir.path / "whole" / "model.safetensors").string());
  CHECK(m->config().width == 8);

  // Interrupted after 3 steps (the checkpoint is from step 2, the log has rows 0..2), resumed.
  TrainOptions part = tiny_run(cache, dir.path / "part");
  part.stop_after = 3;
  CHECK(train_nyu(part).interrupted);
  CHECK(loss_rows(dir.path / "part" / "log.csv").size() == 3);
  TrainOptions resume = tiny_run(cache, dir.path / "elsewhere");
  resume.resume = (dir.path / "part").string();
  const TrainSummary r = train_nyu(resume);
  CHECK(r.first_step == 2);
  CHECK(loss_rows(dir.path / "part" / "log.csv") == expected);

  // A resume given a setting that differs from the run's is refused, naming the setting.
  TrainOptions other = resume;
  other.seed = 9;
  other.flags_given = {"--seed"};
  CHECK_THROWS_WITH_AS(train_nyu(other), doctest::Contains("--seed"), std::invalid_argument);
}

TEST_CASE("train_nyu: bad input is refused before training") {
  TempDir dir("bad");
  TrainOptions o = tiny_run(dir.path / "cache", dir.path / "out");
  SUBCASE("missing data folder") {
    o.data = (dir.path / "nowhere").string();
    CHECK_THROWS_WITH(train_nyu(o), doctest::Contains("nowhere"));
  }
  SUBCASE("resume without a checkpoint") {
    o.resume = (dir.path / "empty").string();
    fs::create_directories(o.resume);
    CHECK_THROWS_WITH(train_nyu(o), doctest::Contains("no checkpoint"));
  }
  SUBCASE("a batch larger than the training split") {
    o.batch = 64;
    CHECK_THROWS_WITH(train_nyu(o), doctest::Contains("batch size 64"));
  }
  SUBCASE("unknown optimizer") {
    // Names are parsed where they are read (the command line): the table refuses it.
    CHECK_THROWS_WITH((void)kOptimizerNames.parse("lbfgs"), doctest::Contains("--optimizer"));
    test::check_throws_with([] { (void)kOptimizerNames.parse("lbfgs"); }, {"lbfgs", "adam or sgd"});
  }
  CHECK(!latest_checkpoint(dir.path / "out"));
}

TEST_CASE("train_nyu: optimizer and schedule names, parsed once from the command line") {
  CHECK(kOptimizerNames.parse("sgd") == OptimizerKind::sgd);
  CHECK(kOptimizerNames.name(OptimizerKind::adam) == "adam");
  CHECK(kScheduleNames.parse("poly") == ScheduleKind::polynomial);
  CHECK(kScheduleNames.name(ScheduleKind::cosine) == "cosine");
  CHECK(kScheduleNames.alternatives() == "constant, step, cosine or poly");
  test::check_throws_with([] { (void)kScheduleNames.parse("linear"); }, {"--schedule", "constant, step, cosine or poly", "'linear'"});
}

TEST_CASE("train_nyu: a non-finite loss stops the run naming the step and the term, keeping the last checkpoint") {
  TempDir dir("nan");
  TrainOptions o = tiny_run(dir.path / "cache", dir.path / "out");
  // SGD at an absurd learning rate: the weights overflow within a few steps.
  o.optimizer = OptimizerKind::sgd;
  o.lr = 1e30;
  o.momentum = 0;
  o.steps = 12;
  o.checkpoint_every = 1;
  o.max_loss_factor = 0;  // no bound on the loss's size: this is about NaN and infinity
  try {
    train_nyu(o);
    FAIL("expected Diverged");
  } catch (const Diverged& e) {
    const std::string what = e.what();
    CHECK(what.find("step ") != std::string::npos);
    CHECK(what.find("loss term '") != std::string::npos);
    // Every checkpoint on disk is from a step whose losses were finite.
    const std::optional<fs::path> last = latest_checkpoint(dir.path / "out");
    REQUIRE(last);
    CHECK(what.find(last->string()) != std::string::npos);
    const std::string state = read(*last / "state.json");
    CHECK(state.find("\"step\"") != std::string::npos);
  }
}

TEST_CASE("train_nyu: the shipped configurations parse, and small.json is the built-in default") {
  auto read_config = [](const char* name) {
    return Config::from_json(read(fs::path(MILA_SOURCE_DIR) / "examples" / "train_nyu" / "configs" / name));
  };
  const Config small = read_config("small.json"), builtin = small_config();
  CHECK(small.to_json() == builtin.to_json());
  const Config paper = read_config("paper.json");
  CHECK(paper.slow_depth == 101);
  CHECK(paper.to_json() == Config().to_json());  // the paper's model is the Config defaults
  const Config cityscapes = read_config("cityscapes.json");  // the paper's model, Cityscapes' tasks
  CHECK(cityscapes.task_channels(Task::seg) == 19);
  CHECK(cityscapes.task_channels(Task::depth) == 1);
  CHECK(cityscapes.tasks.size() == 2);
  CHECK(cityscapes.slow_depth == 101);
}

TEST_CASE("train_nyu --dataset cityscapes: trains and evaluates on the official layout") {
  TempDir dir("cityscapes");
  const fs::path root = dir.path / "cityscapes";
  namespace cs = mila::test::cityscapes;
  cs::write_sample(root, "train", "aachen", "000000", 19, 32, 48);
  cs::write_sample(root, "train", "bremen", "000004", 61, 32, 48);
  cs::write_sample(root, "val", "lindau", "000002", 30, 32, 48);
  TrainOptions o = tiny_run(dir.path / "unused_cache", dir.path / "out");
  o.data = root.string();
  o.dataset = "cityscapes";
  o.model.tasks = {{Task::seg, 7}, {Task::depth, 1}};
  o.steps = 2;
  o.final_eval = true;
  const TrainSummary s = train_nyu(o);
  CHECK(s.steps == 2);
  CHECK(s.evaluated);
  CHECK(s.metrics.has_seg);
  CHECK(s.metrics.has_depth);
  CHECK(!s.metrics.has_normal);
  CHECK(s.metrics.frames == 2);  // one val sample at K = 2 offsets
  CHECK(read(dir.path / "out" / "log.csv").rfind("step,epoch,lr,total,seg,depth,l1,disc,", 0) == 0);
  CHECK(!fs::exists(dir.path / "unused_cache"));  // --data given: nothing rendered

  // Resizing on load, and the options that do not fit.
  o.out = (dir.path / "small").string();
  o.frame_height = 24, o.frame_width = 40;
  o.final_eval = false;
  CHECK(train_nyu(o).steps == 2);
  o.out = (dir.path / "refused").string();
  o.dataset = "kitti";
  test::check_throws_with([&] { train_nyu(o); }, {"--dataset", "kitti"});
  o.dataset = "cityscapes";
  o.model.tasks = {{Task::seg, 13}, {Task::depth, 1}};
  test::check_throws_with([&] { train_nyu(o); }, {"CityscapesDataset", "19", "7", "13"});
}
