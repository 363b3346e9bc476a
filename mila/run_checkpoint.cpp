// run_checkpoint.cpp - see run_checkpoint.h (Note [checkpoint rotation]).
#include "mila/run_checkpoint.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <stdexcept>

#include "mila/durable_io.h"

namespace fs = std::filesystem;

namespace mila {
namespace {

constexpr std::string_view kPrefix = "checkpoint-", kStaging = ".partial";
constexpr const char* kManifest = "manifest.json";

struct Found {
  int64_t step = 0;
  fs::path path;
  bool staging = false;  // a *.partial folder: a save that did not finish
};

// What a folder's name says: checkpoint-<digits>, or checkpoint-<digits>.partial; none for
// every other name (such entries are not ours and are left alone).
std::optional<Found> parse_name(const fs::path& path) {
  const std::string name = path.filename().string();
  if (name.rfind(kPrefix, 0) != 0) return std::nullopt;
  const bool staging = name.ends_with(kStaging);
  const std::string digits = name.substr(kPrefix.size(), name.size() - kPrefix.size() - (staging ? kStaging.size() : 0));
  if (digits.empty() || digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return Found{std::stoll(digits), path, staging};
}

// The checkpoint folders of run_dir, newest first.
std::vector<Found> list_checkpoints(const fs::path& run_dir) {
  std::vector<Found> found;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(run_dir, ec))
    if (const std::optional<Found> f = parse_name(e.path()); f && e.is_directory()) found.push_back(*f);
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.step > b.step; });
  return found;
}

// FNV-1a, 64 bits, of the file's bytes, as 16 hex digits: cheap, and enough to tell a file
// that is not the one the manifest describes (this guards against damage, not against forgery).
std::string file_hash(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path.string());
  uint64_t h = 14695981039346656037ull;
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), std::streamsize(buf.size()));
    for (std::streamsize i = 0; i < f.gcount(); ++i) h = (h ^ uint8_t(buf[size_t(i)])) * 1099511628211ull;
  }
  if (f.bad()) throw std::runtime_error("cannot read " + path.string());
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", (unsigned long long)h);
  return text;
}

nlohmann::json manifest_of(const fs::path& folder, int64_t step) {
  nlohmann::json files = nlohmann::json::object();
  for (const fs::directory_entry& e : fs::directory_iterator(folder)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file()) throw std::logic_error("commit_checkpoint: " + e.path().string() + " is not a file");
    files[name] = {{"bytes", e.file_size()}, {"fnv1a64", file_hash(e.path())}};
  }
  if (files.empty()) throw std::logic_error("commit_checkpoint: nothing was written into " + folder.string());
  return {{"step", step}, {"files", files}};
}

// Everything a finished save at `step` makes obsolete: older checkpoints, unfinished saves.
void remove_obsolete(const fs::path& run_dir, int64_t step) {
  for (const Found& f : list_checkpoints(run_dir))
    if (f.staging || f.step < step) remove_tree(f.path);
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  char name[40];
  std::snprintf(name, sizeof name, "checkpoint-%08lld", (long long)step);
  return name;
}

fs::path commit_checkpoint(const fs::path& run_dir, int64_t step, const std::function<void(const fs::path&)>& write_files) {
  const fs::path final_dir = run_dir / checkpoint_name(step), staging = run_dir / (checkpoint_name(step) + std::string(kStaging));
  if (fs::exists(final_dir)) {
    try {
      verify_checkpoint(final_dir);
      remove_obsolete(run_dir, step);
      return final_dir;
    } catch (const std::runtime_error&) {
      remove_tree(final_dir);  // damaged: not a checkpoint, and in the way of the rename
    }
  }
  remove_tree(staging);
  make_directory(staging);
  write_files(staging);
  write_file_durably(staging / kManifest, manifest_of(staging, step).dump(2) + "\n");
  sync_directory(staging);
  rename_path(staging, final_dir);
  sync_directory(run_dir);
  remove_obsolete(run_dir, step);
  return final_dir;
}

void verify_checkpoint(const fs::path& dir) {
  auto damaged = [&](const std::string& why) { return std::runtime_error(dir.string() + " is not a complete checkpoint: " + why); };
  const std::optional<Found> named = parse_name(dir);
  if (!named || named->staging) throw damaged("not a checkpoint-<step> folder");
  const int64_t step = named->step;
  nlohmann::json manifest;
  try {
    std::ifstream f(dir / kManifest, std::ios::binary);
    if (!f) throw damaged(std::string("no ") + kManifest + " (the save did not finish)");
    manifest = nlohmann::json::parse(f);
    if (manifest.at("step").get<int64_t>() != step) throw damaged(std::string(kManifest) + " is for step " + manifest.at("step").dump());
    if (!manifest.at("files").is_object() || manifest.at("files").empty()) throw damaged(std::string(kManifest) + " lists no files");
  } catch (const nlohmann::json::exception& e) {
    throw damaged(std::string(kManifest) + " is unreadable: " + e.what());
  }
  for (const auto& [file, expected] : manifest.at("files").items()) {
    const fs::path path = dir / file;
    std::error_code ec;
    const uintmax_t bytes = fs::file_size(path, ec);
    if (ec) throw damaged("'" + file + "' is missing");
    try {
      if (bytes != expected.at("bytes").get<uintmax_t>())
        throw damaged("'" + file + "' has " + std::to_string(bytes) + " bytes, the manifest says " + expected.at("bytes").dump());
      if (file_hash(path) != expected.at("fnv1a64").get<std::string>())
        throw damaged("'" + file + "' does not match its hash in the manifest");
    } catch (const nlohmann::json::exception& e) {
      throw damaged(std::string(kManifest) + " is unreadable: " + e.what());
    }
  }
}

std::optional<fs::path> latest_checkpoint(const fs::path& run_dir, std::vector<std::string>* passed_over) {
  for (const Found& f : list_checkpoints(run_dir)) {
    if (f.staging) continue;
    try {
      verify_checkpoint(f.path);
      return f.path;
    } catch (const std::runtime_error& e) {
      if (passed_over) passed_over->push_back(e.what());
    }
  }
  return std::nullopt;
}

}  // namespace mila
