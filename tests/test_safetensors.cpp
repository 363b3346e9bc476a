// test_safetensors.cpp - round trips, metadata, dtype conversions, atomic writes, and every
// malformed-file case of SPEC section 2 giving a clear error (never a crash).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "nn/safetensors.h"
#include "tests/test_util.h"

using namespace mila;
namespace fs = std::filesystem;

namespace {

std::string temp_path(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("mila_test_st_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

// A raw file: 8-byte header length, header text, data bytes.
void write_raw(const std::string& path, const std::string& header, const std::string& data, int64_t length_override = -1) {
  std::ofstream f(path, std::ios::binary);
  const uint64_t n = length_override >= 0 ? uint64_t(length_override) : header.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f << header << data;
}

std::string bytes_of_floats(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), std::data(v), s.size());
  return s;
}

}  // namespace

TEST_CASE("safetensors: round trip of float32, int64, non-contiguous and 0-d tensors with metadata") {
  const std::string path = temp_path("round.safetensors");
  const Tensor a = test::uniform({3, 5}, -1, 1, DType::Float32);
  const Tensor b = arange(0, 12, 1, {DType::Int64}).reshape({3, 4}).t();  // non-contiguous
  const Tensor c = scalar_tensor(7, {DType::Int64});
  const Tensor d = test::uniform({2}, -1, 1, DType::Float64);  // written as F32
  safetensors::write(path, {{"layer.weight", a}, {"idx", b}, {"bn.num_batches_tracked", c}, {"d", d}},
                    {{"mila.config", "{\"K\": 5}"}});
  const safetensors::Contents got = safetensors::read(path);
  REQUIRE(got.tensors.size() == 4);
  test::check_close(got.find("layer.weight"), a, 0, 0);
  CHECK(got.find("idx").dtype() == DType::Int64);
  test::check_close(got.find("idx"), b, 0, 0);
  CHECK(got.find("bn.num_batches_tracked").dim() == 0);
  CHECK(got.find("bn.num_batches_tracked").item<int64_t>() == 7);
  CHECK(got.find("d").dtype() == DType::Float32);
  test::check_close(got.find("d"), d.to(DType::Float32), 0, 0);
  CHECK(got.metadata.at("mila.config") == "{\"K\": 5}");
  // Data starts 8-byte aligned and no temporary file is left behind.
  std::ifstream f(path, std::ios::binary);
  uint64_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 8);
  CHECK(n % 8 == 0);
  for (const auto& e : fs::directory_iterator(fs::path(path).parent_path()))
    CHECK_MESSAGE(e.path().string().find(".tmp.") == std::string::npos, e.path());
}

TEST_CASE("safetensors: F16 and BF16 are read into float32") {
  const std::string path = temp_path("half.safetensors");
  // F16: 1.0 = 0x3C00, -2.0 = 0xC000, 65504 = 0x7BFF, smallest subnormal 2^-24 = 0x0001.
  const uint16_t h[4] = {0x3C00, 0xC000, 0x7BFF, 0x0001};
  // BF16: the top halves of float32 1.5 (0x3FC0) and -0.25 (0xBE80).
  const uint16_t bf[2] = {0x3FC0, 0xBE80};
  std::string data(reinterpret_cast<const char*>(h), 8);
  data.append(reinterpret_cast<const char*>(bf), 4);
  write_raw(path,
            R"({"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]}})",
            data);
  const safetensors::Contents got = safetensors::read(path);
  CHECK(test::values(got.find("h")) == std::vector<double>{1.0, -2.0, 65504.0, std::ldexp(1.0, -24)});
  CHECK(test::values(got.find("b")) == std::vector<double>{1.5, -0.25});
}

TEST_CASE("safetensors: malformed files give an error naming the file and the problem") {
  const std::string path = temp_path("bad.safetensors");
  const std::string ok_entry = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string two = bytes_of_floats({1, 2});
  struct Case {
    const char* what;
    std::function<void()> make;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {"empty file", [&] { std::ofstream(path, std::ios::binary); }, "too short"},
      {"header length past the end", [&] { write_raw(path, "{" + ok_entry + "}", two, 1 << 20); }, "past the end"},
      {"bad JSON", [&] { write_raw(path, "{\"w\": [", two); }, "not valid JSON"},
      {"header not an object", [&] { write_raw(path, "[1, 2]", ""); }, "not a JSON object"},
      {"unknown dtype", [&] { write_raw(path, R"({"w":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", two); }, "unsupported dtype Q7"},
      {"shape disagrees with size", [&] { write_raw(path, R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", two); }, "needs 12 bytes"},
      {"negative shape", [&] { write_raw(path, R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", two); }, "negative"},
      {"offsets out of range (truncated data)", [&] { write_raw(path, "{" + ok_entry + "}", two.substr(0, 5)); }, "run past the data"},
      {"end before begin", [&] { write_raw(path, R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", two); }, "end 0 < begin 8"},
      {"overlapping tensors", [&] {
         write_raw(path, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", two);
       }, "overlaps"},
      {"uncovered bytes between", [&] {
         write_raw(path, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", two);
       }, "belong to no tensor"},
      {"uncovered bytes at the end", [&] { write_raw(path, "{" + ok_entry + "}", two + "xxxx"); }, "belong to no tensor"},
      {"missing data_offsets", [&] { write_raw(path, R"({"w":{"dtype":"F32","shape":[2]}})", two); }, "data_offsets"},
      {"metadata not strings", [&] { write_raw(path, "{" + ok_entry + R"(,"__metadata__":{"k":1}})", two); }, "not a string"},
      {"a tensor listed twice", [&] {
         write_raw(path, R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", two);
       }, "key 'w' twice"},
      {"a field listed twice in an entry", [&] {
         write_raw(path, R"({"w":{"dtype":"I64","shape":[2],"dtype":"F32","data_offsets":[0,8]}})", two);
       }, "key 'dtype' twice"},
      {"metadata key listed twice", [&] { write_raw(path, "{" + ok_entry + R"(,"__metadata__":{"k":"a","k":"b"}})", two); }, "key 'k' twice"},
      {"a dimension beyond int64 next to a 0", [&] {
         write_raw(path, R"({"w":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}})", "");
       }, "too large"},
      // json::dump, which the shape's error message uses, recurses once per level.
      {"deeply nested shape", [&] {
         const size_t depth = 1000000;
         write_raw(path, R"({"w":{"dtype":"F32","shape":)" + std::string(depth, '[') + std::string(depth, ']') + R"(,"data_offsets":[0,0]}})", "");
       }, "nests deeper"},
      {"a directory", [&] { fs::remove(path), fs::create_directory(path); }, "is a directory"},
      {"missing file", [&] { fs::remove(path); }, "cannot open"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    c.make();
    test::check_throws_with([&] { (void)safetensors::read(path); }, {"safetensors", path, c.fragment});
  }
}

TEST_CASE("safetensors: parse reads bytes in memory as read reads the file") {
  const std::string path = temp_path("memory.safetensors");
  safetensors::write(path, {{"a", test::uniform({2, 3}, -1, 1, DType::Float32)}, {"b", arange(0, 4, 1, {DType::Int64})}},
                     {{"k", "v"}});
  std::ifstream f(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(f)), {});
  const safetensors::Contents from_file = safetensors::read(path);
  const safetensors::Contents from_memory =
      safetensors::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "in memory");
  REQUIRE(from_memory.tensors.size() == 2);
  test::check_close(from_memory.find("a"), from_file.find("a"), 0, 0);
  test::check_close(from_memory.find("b"), from_file.find("b"), 0, 0);
  CHECK(from_memory.metadata == from_file.metadata);
  // Errors name what the caller called the bytes.
  test::check_throws_with([&] { (void)safetensors::parse(reinterpret_cast<const uint8_t*>(bytes.data()), 5, "in memory"); },
                          {"safetensors 'in memory'", "too short"});
}

TEST_CASE("safetensors: a failed write leaves the old file intact") {
  const std::string path = temp_path("keep.safetensors");
  safetensors::write(path, {{"x", ones({2})}});
  // A duplicate name is refused before anything touches the target.
  test::check_throws_with([&] { safetensors::write(path, {{"x", zeros({3})}, {"x", zeros({3})}}); }, {"listed twice"});
  test::check_close(safetensors::read(path).find("x"), ones({2}), 0, 0);
  // An unwritable folder reports the path.
  test::check_throws_with([&] { safetensors::write("/nonexistent_dir_mila/x.safetensors", {{"x", ones({1})}}); },
                          {"/nonexistent_dir_mila/x.safetensors", "temporary"});
}
