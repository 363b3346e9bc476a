// names.h - the spellings of an enum's values, in one table per enum: the one place that
// turns a name from the command line, a config or a checkpoint into the value (once, where
// it is read), and the value back into its name for printing and saving. A name that is not
// in the table is refused with a message that lists the valid ones:
//   "weighting must be equal, uncertainty or dwa, got 'mean'"
//
//   inline constexpr NameTable<Colour, 2> kColourNames{"colour", {{{Colour::red, "red"}, {Colour::blue, "blue"}}}};
//   kColourNames.parse("red") == Colour::red;  kColourNames.name(Colour::blue) == "blue"
#pragma once

#include <array>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mila {

template <typename Enum, size_t N>
struct NameTable {
  const char* what;  // what the names are names of, for error messages ("weighting", "--optimizer")
  std::array<std::pair<Enum, const char*>, N> entries;

  std::string name(Enum value) const {
    for (const auto& [v, n] : entries)
      if (v == value) return n;
    throw std::logic_error(std::string(what) + ": value " + std::to_string(int(value)) + " has no name");
  }

  Enum parse(std::string_view text) const {
    for (const auto& [v, n] : entries)
      if (text == n) return v;
    throw std::invalid_argument(std::string(what) + " must be " + alternatives() + ", got '" + std::string(text) + "'");
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : entries) out.push_back(e.second);
    return out;
  }

  // The names as prose: "adam or sgd", "constant, step, cosine or poly".
  std::string alternatives() const {
    std::string out;
    for (size_t i = 0; i < N; ++i) out += (i == 0 ? "" : i + 1 == N ? " or " : ", ") + std::string(entries[i].second);
    return out;
  }
};

}  // namespace mila
