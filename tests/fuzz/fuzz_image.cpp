// fuzz_image.cpp - libFuzzer target for the image readers (data/image_io.h): PNG (8 and
// 16 bits) and JPEG through stb_image behind our own checks (PNG chunk CRCs, Note [JPEG
// guard] in data/image_io.cpp).
//
// The readers take paths, so each input is written to one temporary file that every reader
// then opens: probe_image, check_image_file, read_rgb, read_label, read_depth (through
// read_png16) and read_normal. They copy the file into a vector of its exact size before
// stb sees it, so AddressSanitizer still reports any read past the input. An exception is
// the expected answer to a bad file (ImageError naming the file and the reason); a sanitizer
// report or a crash is a bug.
//
// Decoding time and memory grow with the size a header declares, not with the input's: an
// 816-byte JPEG that claims 65305 x 1280 pixels took 12 s under the sanitizers, all of it
// stb turning empty blocks into 250 MB of pixels. So an input whose header declares more
// than kMaxPixels is only probed and checked, not decoded, and the fuzzer's time goes to
// the parsers' logic rather than to the size of the output.
//
//   build-fuzz/fuzz_image tests/fuzz/corpus/image
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

#include "data/image_io.h"

namespace {

constexpr int64_t kMaxPixels = int64_t(1) << 22;  // 4 Mpixels; a Cityscapes frame has 2

// The input as a file, one name per fuzzing process (libFuzzer's -jobs run several), removed
// after each input: libFuzzer ends without running destructors of statics.
struct TempFile {
  std::string path;
  TempFile(const uint8_t* data, size_t size)
      : path((std::filesystem::temp_directory_path() / ("mila_fuzz_image_" + std::to_string(::getpid()))).string()) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(data, 1, size, f) != size || std::fclose(f) != 0) {
      std::perror("fuzz_image: cannot write the temporary file");
      std::abort();
    }
  }
  ~TempFile() { std::remove(path.c_str()); }
};

template <typename Read>
void attempt(Read read) {
  try {
    read();
  } catch (const std::exception&) {
    // a refusal with a message (the readers throw ImageError naming the file and the reason)
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const TempFile file(data, size);
  const std::string& path = file.path;
  using namespace mila::data;
  int64_t pixels = 0;
  attempt([&] {
    const ImageInfo info = probe_image(path);
    pixels = info.width * info.height;
  });
  attempt([&] { check_image_file(path); });
  if (pixels > kMaxPixels) return 0;
  attempt([&] { read_rgb(path); });
  attempt([&] { read_label(path); });
  attempt([&] { read_depth(path); });
  attempt([&] { read_normal(path); });
  return 0;
}
