// run_checkpoint.h - the checkpoint folders of a training run (mila/trainer.h): how one is
// committed so that a crash at any moment leaves a complete one behind, and how a resume
// finds the newest complete one.
//
// Note [checkpoint rotation]
// A run's folder holds checkpoint-<step>/ folders (the step zero-padded to 8 digits). Saving
// the state after step s:
//   1. a checkpoint-<s>.partial/ left by a crash is removed, and the folder made afresh;
//   2. the caller writes its files into it, each flushed to disk (fsync) before it returns;
//   3. manifest.json is written last: the step and every file's size and FNV-1a hash; fsync;
//   4. the folder is synced (its entries are on disk), renamed to checkpoint-<s>/, and the
//      run's folder synced (the rename is on disk);
//   5. only then are the older checkpoint-<t>/ (t < s) and any *.partial/ removed.
// So a name without .partial only ever names a finished folder, and the previous checkpoint
// stays untouched until the next one is in place on disk: whatever sequence of crashes hits
// the saves, from the end of the first save on there is a complete checkpoint to resume from.
// A resume takes the highest step whose manifest verifies (every listed file present, with
// its size and hash); a folder that does not verify is reported and passed over for the next
// older one, so a damaged file costs the steps since that one, never a silent bad resume.
//
// Every write goes through mila/durable_io.h, so each is a crash point (Note [crash points]).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mila {

// "checkpoint-00000120" for step 120.
std::string checkpoint_name(int64_t step);

// Writes the checkpoint of `step` into run_dir as Note [checkpoint rotation] says;
// write_files(folder) writes the files into the staging folder, each durably (fsynced).
// An existing complete checkpoint of the same step is kept as it is. Returns its folder.
std::filesystem::path commit_checkpoint(const std::filesystem::path& run_dir, int64_t step,
                                        const std::function<void(const std::filesystem::path&)>& write_files);

// Throws std::runtime_error naming the folder and what is wrong unless `dir` is a complete
// checkpoint: its manifest readable, for the step its name says, every file as listed.
void verify_checkpoint(const std::filesystem::path& dir);

// The newest complete checkpoint in run_dir, or none. A checkpoint folder that fails
// verify_checkpoint is passed over; why is appended to `passed_over` when given.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run_dir,
                                                       std::vector<std::string>* passed_over = nullptr);

}  // namespace mila
