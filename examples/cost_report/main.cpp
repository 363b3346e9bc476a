// cost_report - MILA's cost per frame and its parameters for every variant the paper
// reports, next to the paper's published GFLOPs (Tables 1, 2 and 7), on NYUv2 (288x384,
// seg 13 / depth 1 / normal 3) and Cityscapes (256x512, seg 19 / depth 1).
//
//   ./build/cost_report [--markdown]
//
// Every figure is counted analytically by mila/cost.h in thop's convention (MACs, which the
// paper calls FLOPs; SPEC 4.5): per frame, steady-state streaming, averaged over the K
// positions of a keyframe cycle. Nothing is built or run, so the report is instant.
// docs/cost.md holds its markdown output and explains where the paper's numbers differ.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "mila/cost.h"

using namespace mila;

namespace {

// A table printed as aligned text or as markdown.
struct Table {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> notes;
  size_t text_columns = 2;  // left-aligned in markdown; the rest are numbers

  void print(bool markdown) const {
    if (markdown) {
      std::printf("### %s\n\n", title.c_str());
      auto line = [](const std::vector<std::string>& cells) {
        std::printf("|");
        for (const std::string& c : cells) std::printf(" %s |", c.c_str());
        std::printf("\n");
      };
      line(header);
      std::printf("|");
      for (size_t i = 0; i < header.size(); ++i) std::printf(i < text_columns ? "---|" : "---:|");
      std::printf("\n");
      for (const auto& r : rows) line(r);
      if (!notes.empty()) std::printf("\n");
      for (const std::string& n : notes) std::printf("- %s\n", n.c_str());
      std::printf("\n");
      return;
    }
    std::vector<size_t> width(header.size(), 0);
    for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
    for (const auto& r : rows)
      for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
    std::printf("%s\n", title.c_str());
    auto line = [&](const std::vector<std::string>& cells) {
      for (size_t i = 0; i < cells.size(); ++i)
        std::printf(i == 0 ? "  %-*s" : "  %*s", int(width[i]), cells[i].c_str());
      std::printf("\n");
    };
    line(header);
    for (const auto& r : rows) line(r);
    for (const std::string& n : notes) std::printf("  * %s\n", n.c_str());
    std::printf("\n");
  }
};

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}
std::string paper(double v) { return v < 0 ? "-" : fixed(v, v < 10 ? 1 : 0); }

struct Dataset {
  std::string name;
  int64_t height, width;
  std::vector<TaskSpec> tasks;
};

// One row: a variant of the model (or a sum of single-task models) and the paper's figure.
struct Variant {
  std::string name;
  std::vector<Config> models;  // summed (single-task baselines are one model per task)
  double paper_gflops = -1;    // -1: the paper gives none
  std::string what;            // the config fields that make the variant
};

std::vector<std::string> row(const Dataset& d, const Variant& v) {
  double gmacs = 0, built = 0, used = 0;
  for (const Config& c : v.models) {
    gmacs += average_gmacs(c, d.height, d.width);
    built += double(parameter_count(c)) / 1e6;
    used += double(used_parameter_count(c)) / 1e6;
  }
  return {v.name, v.what, fixed(gmacs, 1), paper(v.paper_gflops), fixed(used, 1), fixed(built, 1)};
}

Config base(const Dataset& d) {
  Config c;
  c.tasks = d.tasks;
  return c;
}

Table main_table(const Dataset& d, bool nyu) {
  const Config mila = base(d);
  auto with = [&](auto edit) {
    Config c = mila;
    edit(c);
    return c;
  };
  std::vector<Config> slow_single;
  for (const TaskSpec& t : d.tasks)
    slow_single.push_back(with([&](Config& c) {
      c.K = 1;
      c.attention = false;
      c.multi_frame = false;
      c.tasks = {t};
    }));
  const Config slow_multi = with([](Config& c) {
    c.K = 1;
    c.attention = false;
    c.multi_frame = false;
  });
  // Paper GFLOPs: Table 1 (NYUv2) and Table 2 (Cityscapes).
  auto p = [&](double nyu_value, double city_value) { return nyu ? nyu_value : city_value; };
  const std::vector<Variant> variants = {
      {"D101-SingleTask (slow-only, one model per task, summed)", slow_single, p(236, 187),
       "K=1, attention=false, multi_frame=false, 1 task each"},
      {"D101-MultiTask (slow-only)", {slow_multi}, p(79, 93), "K=1, attention=false, multi_frame=false"},
      {"MTAN* (not implemented)", {}, p(151, 161), "-"},
      {"Cross-Stitch* (not implemented)", {}, p(236, 187), "-"},
      {"MultiNet++ (slots copy features, no ILA)", {with([](Config& c) { c.attention = false; })}, p(40, 47),
       "attention=false"},
      {"MultiNet++-style, 2 slots (cur, keyframe copy)", {with([](Config& c) {
         c.attention = false;
         c.multi_frame = false;
       })},
       -1, "attention=false, multi_frame=false"},
      {"MILA w/o MF&TS", {with([](Config& c) {
         c.task_specific = false;
         c.multi_frame = false;
       })},
       p(41, 48), "task_specific=false, multi_frame=false"},
      {"MILA w/o TS", {with([](Config& c) { c.task_specific = false; })}, p(46, 55), "task_specific=false"},
      {"MILA", {mila}, p(70, 70), "defaults (K=5, L=5, TS, MF)"},
  };
  Table t;
  t.title = d.name + " (" + std::to_string(d.height) + "x" + std::to_string(d.width) + "), as the paper's Table " +
            (nyu ? "1" : "2");
  t.header = {"model", "config", "GMACs/frame", "paper GFLOPs", "params used (M)", "params built (M)"};
  t.notes = {"GMACs/frame: thop MACs (the paper's \"GFLOPs\"), steady state, mean over the keyframe cycle.",
             "params used: what inference reads; built: what Model(cfg) holds (also the unused Fast encoder when "
             "K=1 and the unused h convs when attention=false); no discriminator.",
             "MTAN* and Cross-Stitch* are not part of this project: their rows carry the paper's figures only."};
  for (const Variant& v : variants) {
    if (v.models.empty()) {
      t.rows.push_back({v.name, v.what, "-", paper(v.paper_gflops), "-", "-"});
      continue;
    }
    t.rows.push_back(row(d, v));
  }
  return t;
}

Table ablation_table(const Dataset& d) {
  const Config mila = base(d);
  auto with = [&](auto edit) {
    Config c = mila;
    edit(c);
    return c;
  };
  std::vector<Variant> variants;
  for (int64_t L : {3, 5, 7, 15, 0})
    variants.push_back({L == 0 ? "window global" : "window " + std::to_string(L) + "x" + std::to_string(L),
                        {with([&](Config& c) { c.L = L; })}, -1, "L=" + std::to_string(L)});
  for (int64_t K : {3, 5, 7, 10})
    variants.push_back({"keyframe interval " + std::to_string(K), {with([&](Config& c) { c.K = K; })}, -1,
                        "K=" + std::to_string(K)});
  for (int depth : {101, 50, 18})
    variants.push_back({"D" + std::to_string(depth) + "-Multi + Ours (slow-only + ILA)", {with([&](Config& c) {
                          c.K = 1;
                          c.slow_depth = depth;
                        })},
                        -1, "K=1, slow_depth=" + std::to_string(depth)});
  for (const TaskSpec& task : d.tasks)
    variants.push_back({"MILA single-task: " + task.name(), {with([&](Config& c) { c.tasks = {task}; })}, -1,
                        "tasks={" + task.name() + "}"});
  Table t;
  t.title = d.name + " ablations (paper Tables 4, 5, 10: no GFLOPs published)";
  t.header = {"variant", "config", "GMACs/frame", "paper GFLOPs", "params used (M)", "params built (M)"};
  for (const Variant& v : variants) t.rows.push_back(row(d, v));
  return t;
}

// Where the MACs of the default model go, per frame type.
Table breakdown_table(const Dataset& d) {
  const Config c = base(d);
  const FrameCost key = frame_cost(c, d.height, d.width, true), other = frame_cost(c, d.height, d.width, false);
  auto g = [](int64_t v) { return fixed(double(v) / 1e9, 3); };
  auto avg = [&](int64_t k, int64_t o) { return fixed((double(k) + double(c.K - 1) * double(o)) / double(c.K) / 1e9, 3); };
  Table t;
  t.title = d.name + ": MILA's GMACs by component";
  t.header = {"component", "keyframe", "non-keyframe", "mean over K=5"};
  t.text_columns = 1;
  auto add = [&](const std::string& name, int64_t k, int64_t o) { t.rows.push_back({name, g(k), g(o), avg(k, o)}); };
  add("encoder (D101 / D18)", key.encoder, other.encoder);
  add("neck (1x1 conv to C)", key.neck, other.neck);
  add("SE, every task block", key.se, other.se);
  add("ILA keys h(s_t), every task block", key.ila_keys, other.ila_keys);
  add("ILA attention, every call", key.ila_attention, other.ila_attention);
  add("heads", key.heads, other.heads);
  add("total", key.total(), other.total());
  return t;
}

// Table 7: one ILA module (h and the attention) at the paper's two input sizes.
Table ila_table() {
  Table t;
  t.title = "One ILA propagation, as the paper's Table 7 (C=256, D=64, L=5)";
  t.header = {"input", "feature map", "h once + attention GMACs", "2 h + attention GMACs", "paper GFLOPs",
              "params (M)", "paper params"};
  const Config c;
  const int64_t params = c.C * c.D * 9 + c.D;
  for (auto [h, w, paper_value] : {std::tuple{258, 512, 0.2}, std::tuple{1024, 2048, 5.4}}) {
    const MapSize m = feature_size(h, w);
    const int64_t F = m.height * m.width;
    const int64_t keys = F * c.D * c.C * 9, attention = F * c.L * c.L * (c.D + c.C);
    t.rows.push_back({std::to_string(h) + "x" + std::to_string(w),
                      std::to_string(m.height) + "x" + std::to_string(m.width), fixed(double(keys + attention) / 1e9, 2),
                      fixed(double(2 * keys + attention) / 1e9, 2), paper(paper_value), fixed(double(params) / 1e6, 2),
                      "0.2"});
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  bool markdown = false;
  CLI::App app{"MILA's per-frame cost (thop MACs) and parameters for the paper's variants"};
  app.add_flag("--markdown", markdown, "print markdown tables");
  CLI11_PARSE(app, argc, argv);

  const Dataset nyu{"NYUv2", 288, 384, {{Task::seg, 13}, {Task::depth, 1}, {Task::normal, 3}}};
  const Dataset city{"Cityscapes", 256, 512, {{Task::seg, 19}, {Task::depth, 1}}};
  if (!markdown)
    std::printf("GMACs per frame (thop's convention, which the paper calls GFLOPs), steady-state streaming,\n"
                "averaged over a keyframe cycle; parameters for inference (no discriminator).\n\n");
  main_table(nyu, true).print(markdown);
  main_table(city, false).print(markdown);
  ablation_table(nyu).print(markdown);
  ablation_table(city).print(markdown);
  breakdown_table(nyu).print(markdown);
  breakdown_table(city).print(markdown);
  ila_table().print(markdown);
  return 0;
}
