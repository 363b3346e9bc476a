// flag_checks.h - CLI11 checks for the programs' numeric flags, made from the ranges of
// mila/options_check.h so that the command line, the help text and the library agree.
//
//   app.add_option("--lr", lr, "learning rate")->check(within(mila::positive_numbers()));
//   $ train_nyu --lr nan
//   --lr: nan: must be a finite number > 0
//
// CLI::Range and CLI::PositiveNumber let NaN through (every comparison with NaN is false)
// and do not ask an integer flag for an integer; these checks do both, on the flag's text
// before CLI11 converts it, so "--epochs 2e17" and "--warmup 3.7" are named as given.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "mila/options_check.h"

inline CLI::Validator within(const mila::NumberRange& range) {
  return CLI::Validator(
      [range](std::string& input) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(input, value)) return input + ": not a number";
        return range.contains(value) ? std::string() : input + ": must be " + range.text();
      },
      range.text());
}
