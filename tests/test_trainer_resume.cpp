// test_trainer_resume.cpp - that the training program loses no run and writes no garbage:
// the checkpoint rotation (mila/run_checkpoint.h), the program killed at every crash point
// twice in a row and then resumed (ending with the uninterrupted run's bytes), a resume that
// restores the run's own settings and refuses to change it, checkpoints whose step lies
// outside the run, writes that fail, and runs that diverge (Note [divergence]).
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>

#include "data/synthetic.h"
#include "mila/durable_io.h"
#include "mila/run_checkpoint.h"
#include "mila/trainer.h"
#include "nn/optim.h"
#include "ops/factory.h"
#include "test_util.h"
#include "tests/trainer_runs.h"

extern char** environ;

using namespace mila;
using mila::test::loss_rows;
using mila::test::read;
using mila::test::TempDir;
using mila::test::tiny_run;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

// A checkpoint folder written through commit_checkpoint with the given files.
fs::path commit(const fs::path& run, int64_t step, const std::map<std::string, std::string>& files) {
  return commit_checkpoint(run, step, [&](const fs::path& dir) {
    for (const auto& [name, text] : files) write_file_durably(dir / name, text);
  });
}

}  // namespace

TEST_CASE("checkpoint rotation: the newest complete checkpoint is found; incomplete and damaged ones are passed over") {
  TempDir dir("rotation");
  const fs::path run = dir.path;
  CHECK(!latest_checkpoint(run));
  CHECK(commit(run, 1, {{"a", "one"}}) == run / "checkpoint-00000001");
  CHECK(latest_checkpoint(run) == run / "checkpoint-00000001");

  // A crash mid-save leaves a .partial folder: never taken, removed by the next save, which
  // also retires the older checkpoint.
  fs::create_directories(run / "checkpoint-00000002.partial");
  write(run / "checkpoint-00000002.partial" / "a", "tw");
  CHECK(latest_checkpoint(run) == run / "checkpoint-00000001");
  commit(run, 2, {{"a", "two"}, {"b", "more"}});
  CHECK(latest_checkpoint(run) == run / "checkpoint-00000002");
  CHECK(!fs::exists(run / "checkpoint-00000001"));
  CHECK(!fs::exists(run / "checkpoint-00000002.partial"));
  CHECK(read(run / "checkpoint-00000002" / "a") == "two");

  // A newer folder that does not verify is passed over, saying why.
  fs::copy(run / "checkpoint-00000002", run / "checkpoint-00000003");
  std::vector<std::string> why;
  CHECK(latest_checkpoint(run, &why) == run / "checkpoint-00000002");  // the manifest is for step 2
  REQUIRE(why.size() == 1);
  CHECK(why[0].find("checkpoint-00000003") != std::string::npos);
  fs::remove_all(run / "checkpoint-00000003");
  fs::copy(run / "checkpoint-00000002", run / "checkpoint-00000003");
  nlohmann::json manifest = nlohmann::json::parse(read(run / "checkpoint-00000003" / "manifest.json"));
  manifest["step"] = 3;
  write(run / "checkpoint-00000003" / "manifest.json", manifest.dump());
  CHECK(latest_checkpoint(run) == run / "checkpoint-00000003");
  write(run / "checkpoint-00000003" / "a", "TWO");  // same size, other bytes
  test::check_throws_with([&] { verify_checkpoint(run / "checkpoint-00000003"); }, {"checkpoint-00000003", "'a'", "hash"});
  write(run / "checkpoint-00000003" / "a", "tw");
  test::check_throws_with([&] { verify_checkpoint(run / "checkpoint-00000003"); }, {"'a' has 2 bytes"});
  write(run / "checkpoint-00000003" / "a", "two");
  verify_checkpoint(run / "checkpoint-00000003");
  fs::remove(run / "checkpoint-00000003" / "b");
  test::check_throws_with([&] { verify_checkpoint(run / "checkpoint-00000003"); }, {"'b' is missing"});
  fs::remove(run / "checkpoint-00000003" / "manifest.json");
  test::check_throws_with([&] { verify_checkpoint(run / "checkpoint-00000003"); }, {"no manifest.json"});
  CHECK(latest_checkpoint(run) == run / "checkpoint-00000002");

  // Saving the step of a complete checkpoint again keeps it as it is.
  commit(run, 2, {{"a", "other"}});
  CHECK(read(run / "checkpoint-00000002" / "a") == "two");
}

#ifdef MILA_TRAIN_NYU
namespace {

struct Exit {
  bool killed = false;  // by SIGKILL: a crash point
  int code = -1;        // the exit status when it exited
};

// Runs the train_nyu binary with `args` and MILA_CRASH_AT=crash_at (0: never), its output
// appended to `output`.
Exit run_train_nyu(const std::vector<std::string>& args, int64_t crash_at, const fs::path& output) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "MILA_CRASH_AT=", 14) != 0) env.push_back(*e);
  env.push_back("MILA_CRASH_AT=" + std::to_string(crash_at));
  std::vector<std::string> argv_text = {MILA_TRAIN_NYU};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv, envp;
  for (std::string& a : argv_text) argv.push_back(a.data());
  for (std::string& e : env) envp.push_back(e.data());
  argv.push_back(nullptr), envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, MILA_TRAIN_NYU, &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE_MESSAGE(spawned == 0, "posix_spawn " << MILA_TRAIN_NYU << ": " << std::strerror(spawned));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) REQUIRE(errno == EINTR);
  return {WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

}  // namespace

TEST_CASE("train_nyu killed at every crash point, then at one more, then resumed, ends with the uninterrupted run's model") {
  TempDir dir("crash");
  const auto start = std::chrono::steady_clock::now();
  const fs::path config = dir.path / "tiny.json", output = dir.path / "output.txt";
  write(config, tiny_run("", "").model.to_json());
  // The smallest run that saves twice: the second save retires the first checkpoint.
  auto fresh = [&](const fs::path& out) {
    return std::vector<std::string>{"--config", config.string(), "--cache", (dir.path / "cache").string(), "--height", "32",
                                    "--width", "48", "--train-sequences", "2", "--val-sequences", "1", "--steps", "2",
                                    "--checkpoint-every", "1", "--batch", "2", "--workers", "1", "--threads", "1",
                                    "--visualize", "0", "--quiet", "--out", out.string()};
  };
  // What a user does after a crash: resume when there is a checkpoint, else start again.
  auto restart = [&](const fs::path& out) {
    return latest_checkpoint(out) ? std::vector<std::string>{"--resume", out.string(), "--quiet"} : fresh(out);
  };

  const fs::path whole = dir.path / "whole";
  REQUIRE(run_train_nyu(fresh(whole), 0, output).code == 0);
  const std::string expected_model = read(whole / "model.safetensors");
  const std::vector<std::string> expected_rows = loss_rows(whole / "log.csv");
  REQUIRE(expected_rows.size() == 2);

  int64_t points = 0;
  bool had_checkpoint = false;
  for (int64_t n = 1;; ++n) {
    REQUIRE_MESSAGE(n < 1000, "train_nyu is still killed at crash point " << n);
    const fs::path out = dir.path / ("killed_at_" + std::to_string(n));
    INFO("first crash at point " << n << ", second at the resumed run's point " << n << "; output in " << output);
    const Exit first = run_train_nyu(fresh(out), n, output);
    if (!first.killed) {  // n is past the run's last crash point
      CHECK(first.code == 0);
      points = n - 1;
      break;
    }
    // A run killed later has done all an earlier one did and one call more: once a complete
    // checkpoint exists, every later moment has one (Note [checkpoint rotation]).
    const bool has_checkpoint = latest_checkpoint(out).has_value();
    CHECK(has_checkpoint >= had_checkpoint);
    had_checkpoint = has_checkpoint;

    const Exit second = run_train_nyu(restart(out), n, output);
    CHECK((second.killed || second.code == 0));
    CHECK(latest_checkpoint(out).has_value() >= has_checkpoint);
    if (second.killed) CHECK(run_train_nyu(restart(out), 0, output).code == 0);
    CHECK(read(out / "model.safetensors") == expected_model);
    CHECK(loss_rows(out / "log.csv") == expected_rows);
    fs::remove_all(out);
  }
  CHECK(points > 40);  // every write, fsync, rename and removal of two saves and the end
  MESSAGE("killed at each of " << points << " crash points, twice, in "
                               << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << " s");
}
#endif

TEST_CASE("train_nyu --resume: the run's own settings come back; a given flag may change only what may change") {
  TempDir dir("settings");
  const fs::path cache = dir.path / "cache", run = dir.path / "run";
  // Not the defaults: lr, batch, steps and the checkpoint interval must all come back.
  TrainOptions o = tiny_run(cache, run);
  o.lr = 2e-3, o.batch = 3, o.steps = 5, o.checkpoint_every = 2, o.stop_after = 3;
  CHECK(train_nyu(o).interrupted);

  TrainOptions whole = o;
  whole.out = (dir.path / "whole").string(), whole.stop_after = -1;
  train_nyu(whole);

  TrainOptions resume;  // nothing but the folder (and the per-call options)
  resume.resume = run.string();
  resume.progress = false, resume.final_eval = false;
  auto refused = [&](std::vector<std::string> flags, auto change, std::vector<std::string> fragments) {
    TrainOptions r = resume;
    r.flags_given = std::move(flags);
    change(r);
    test::check_throws_with([&] { train_nyu(r); }, fragments);
  };
  refused({"--lr"}, [](TrainOptions& r) { r.lr = 0.01; }, {"--lr", "0.01", "0.002"});
  refused({"--steps"}, [](TrainOptions& r) { r.steps = 1800; }, {"--steps", "1800", "5"});
  refused({"--height"}, [](TrainOptions& r) { r.synthetic.height = 64; }, {"--height", "64", "32"});
  refused({"--config"}, [](TrainOptions& r) { r.model.width = 16; }, {"--config", "\"width\":16", "\"width\":8"});
  refused({"--out"}, [&](TrainOptions& r) { r.out = (dir.path / "elsewhere").string(); }, {"--out", "elsewhere"});
  refused({"--frobnicate"}, [](TrainOptions&) {}, {"--frobnicate", "cannot be given", "--threads"});
  CHECK(loss_rows(run / "log.csv").size() == 3);  // the refusals touched nothing

  // Equal values of fixed settings, and adjustable ones, may be given.
  resume.flags_given = {"--lr", "--threads", "--eval-every", "--quiet"};
  resume.lr = 2e-3, resume.threads = 2, resume.eval_every = 0;
  const TrainSummary s = train_nyu(resume);
  CHECK(s.first_step == 2);
  CHECK(s.steps == 5);
  CHECK(loss_rows(run / "log.csv") == loss_rows(dir.path / "whole" / "log.csv"));
}

TEST_CASE("train_nyu --resume: a checkpoint whose step lies outside the run is refused, the log untouched") {
  TempDir dir("step");
  const fs::path run = dir.path / "run";
  train_nyu(tiny_run(dir.path / "cache", run));  // 4 steps: checkpoint-00000004
  const fs::path good = run / "checkpoint-00000004";
  const std::string log = read(run / "log.csv"), model = read(good / "model.safetensors"),
                    optimizer = read(good / "optimizer.safetensors"), good_state = read(good / "state.json");
  for (const int64_t step : {int64_t(-5), int64_t(1000000)}) {
    CAPTURE(step);
    nlohmann::json state = nlohmann::json::parse(good_state);
    state["step"] = step;
    // A complete checkpoint in every other respect, newer than the good one.
    const fs::path forged = commit(run, step < 0 ? 5 : step,
                                   {{"model.safetensors", model}, {"optimizer.safetensors", optimizer}, {"state.json", state.dump()}});
    CHECK(latest_checkpoint(run) == forged);
    TrainOptions r;
    r.resume = run.string();
    r.progress = false;
    test::check_throws_with([&] { train_nyu(r); }, {"step " + std::to_string(step), "4-step run", "0..4", "refusing"});
    CHECK(read(run / "log.csv") == log);
    fs::remove_all(forged);
  }
}

TEST_CASE("train_nyu --resume: a damaged log.csv is refused naming the file, the line and the cell") {
  TempDir dir("damaged_log");
  const fs::path run = dir.path / "run";
  {
    Trainer t(tiny_run(dir.path / "cache", run));  // 4 steps; stopped after 2 with a checkpoint
    t.setup();
    t.step();
    t.step();
    t.save();
  }
  std::string log = read(run / "log.csv");
  const size_t row2 = log.find('\n', log.find('\n') + 1) + 1;  // the second data row (step 1)
  const size_t cell = log.find(',', log.find(',', log.find(',', row2) + 1) + 1) + 1;  // its first loss
  log.replace(cell, log.find(',', cell) - cell, "0.5x");
  { std::ofstream(run / "log.csv", std::ios::binary) << log; }
  TrainOptions r;
  r.resume = run.string();
  r.progress = false;
  test::check_throws_with([&] { train_nyu(r); }, {"log.csv", "line 3", "'0.5x' is not a number"});
}

TEST_CASE("train_nyu: a new run refuses a folder that holds a run") {
  TempDir dir("occupied");
  TrainOptions o = tiny_run(dir.path / "cache", dir.path / "run");
  o.steps = 2;
  train_nyu(o);
  test::check_throws_with([&] { train_nyu(o); }, {"holds a run already", "--resume"});
}

namespace {

// RLIMIT_FSIZE: a write past `bytes` fails with EFBIG, as on a full disk (SIGXFSZ ignored,
// else it would kill the test).
struct FileSizeLimit {
  rlimit before{};
  explicit FileSizeLimit(rlim_t bytes) {
    std::signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &before);
    rlimit limit = before;
    limit.rlim_cur = bytes;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &limit) == 0);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &before);
    std::signal(SIGXFSZ, SIG_DFL);
  }
};

}  // namespace

TEST_CASE("train_nyu: a write that fails ends the run naming the file and the cause; the last checkpoint stays") {
  TempDir dir("full");
  const fs::path cache = dir.path / "cache", run = dir.path / "run";
  TrainOptions o = tiny_run(cache, run);
  data::ensure_synthetic_dataset(synthetic_dataset_dir(cache.string(), o.synthetic), o.synthetic);
  const std::string too_large = std::strerror(EFBIG);

  SUBCASE("log.csv") {
    o.steps = 12, o.checkpoint_every = 100;
    {
      FileSizeLimit limit(700);  // the header and a few rows
      test::check_throws_with([&] { train_nyu(o); }, {(run / "log.csv").string(), too_large});
    }
    CHECK(loss_rows(run / "log.csv").size() < 12);
  }
  SUBCASE("a checkpoint") {
    o.stop_after = 3;  // checkpoint-00000002
    train_nyu(o);
    TrainOptions r;
    r.resume = run.string();
    r.progress = false;
    {
      FileSizeLimit limit(1 << 20);  // the log and the plot fit, the model does not
      test::check_throws_with([&] { train_nyu(r); }, {"checkpoint-00000004.partial", "model.safetensors", too_large});
    }
    CHECK(latest_checkpoint(run) == run / "checkpoint-00000002");
  }
}

TEST_CASE("train_nyu: a diverging run stops naming the step and the term, with the last good checkpoint intact") {
  TempDir dir("diverge");
  const fs::path cache = dir.path / "cache";
  SUBCASE("a loss past the bound: Adam at lr 1e3") {
    TrainOptions o = tiny_run(cache, dir.path / "adam");
    o.lr = 1e3, o.steps = 100, o.checkpoint_every = 1;
    test::check_throws_with([&] { train_nyu(o); }, {"step 1", "'total'", "--max-loss-factor 100", "checkpoint-00000001"});
    CHECK(latest_checkpoint(dir.path / "adam") == dir.path / "adam" / "checkpoint-00000001");
    o.out = (dir.path / "unbounded").string(), o.steps = 3, o.max_loss_factor = 0;
    CHECK(train_nyu(o).steps == 3);  // the bound is the only thing that stopped it
  }
  SUBCASE("a NaN learning rate is refused before any work") {
    TrainOptions o = tiny_run(cache, dir.path / "nan");
    o.lr = std::nan(""), o.steps = 3, o.checkpoint_every = 1;
    test::check_throws_with([&] { train_nyu(o); }, {"--lr", "nan", "finite"});
    CHECK(!latest_checkpoint(dir.path / "nan"));
  }
  SUBCASE("weights gone bad before the first checkpoint: nothing is written") {
    TrainOptions o = tiny_run(cache, dir.path / "first");
    o.steps = 3, o.checkpoint_every = 1;
    Trainer t(o);
    t.setup();
    t.step();
    const nn::NamedTensors params = t.model().named_parameters();
    test::set_at(params.front().second, 0, std::nan(""));
    test::check_throws_with([&] { t.save(); }, {"step 0", "model's tensor '", "nan", "not written", "none"});
    CHECK(!latest_checkpoint(dir.path / "first"));
  }
  SUBCASE("a tensor gone bad after a good checkpoint") {
    TrainOptions o = tiny_run(cache, dir.path / "bad");
    Trainer t(o);
    t.setup();
    t.step();
    t.save();
    t.step();
    const nn::NamedTensors params = t.model().named_parameters();
    test::set_at(params.back().second, 0, std::numeric_limits<double>::infinity());
    CHECK_THROWS_AS(t.save(), Diverged);
    test::check_throws_with([&] { t.save(); }, {"step 1", "'" + params.back().first + "'", "inf", "checkpoint-00000001"});
    CHECK(latest_checkpoint(dir.path / "bad") == dir.path / "bad" / "checkpoint-00000001");
  }
  SUBCASE("the gradient norm a step checks is NaN or infinite when a gradient is") {
    Tensor a = ones({3}), b = ones({2});
    a.set_grad(from_vector<float>({3, 0, 0}, {3}));
    b.set_grad(from_vector<float>({0, 4}, {2}));
    CHECK(nn::grad_norm({a, b}) == 5);
    b.set_grad(from_vector<float>({0, std::numeric_limits<float>::infinity()}, {2}));
    CHECK(std::isinf(nn::grad_norm({a, b})));
    b.set_grad(from_vector<float>({std::nanf(""), 0}, {2}));
    CHECK(std::isnan(nn::grad_norm({a, b})));
  }
}
