// safetensors.cpp - see safetensors.h for the format and the guarantees.
#include "nn/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "autograd/grad_mode.h"
#include "ops/copy.h"

namespace mila::safetensors {
namespace {

using json = nlohmann::json;

// Headers above this size are refused as corrupt (real checkpoints have a few hundred KB).
constexpr uint64_t kMaxHeaderBytes = uint64_t(100) << 20;
// A header nests three levels (header, entry, shape); deeper is corrupt, and refusing it
// while parsing keeps json::dump (recursive, used in error messages) off a deep stack.
constexpr int kMaxHeaderDepth = 16;

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw Error("safetensors '" + path + "': " + why);
}

// A read-only memory map of a whole file, unmapped on destruction.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      fail(path, std::string("cannot stat: ") + std::strerror(errno));
    }
    // open() succeeds on a directory and mmap() then fails with "No such device".
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      fail(path, S_ISDIR(st.st_mode) ? "is a directory, not a safetensors file" : "is not a regular file");
    }
    size_ = size_t(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        fail(path, std::string("cannot map: ") + std::strerror(errno));
      }
      data_ = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h >> 15) << 31;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) mant <<= 1, --exp;
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf or nan
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_float(uint16_t b) {
  const uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

struct Entry {
  std::string name;
  std::string dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

size_t stored_size(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  if (dtype == "I64") return 8;
  return 0;
}

Entry parse_entry(const std::string& path, const std::string& name, const json& j) {
  const std::string where = "tensor '" + name + "': ";
  if (!j.is_object()) fail(path, where + "entry is not a JSON object");
  Entry e;
  e.name = name;
  if (!j.contains("dtype") || !j["dtype"].is_string()) fail(path, where + "missing or non-string \"dtype\"");
  e.dtype = j["dtype"].get<std::string>();
  if (stored_size(e.dtype) == 0)
    fail(path, where + "unsupported dtype " + e.dtype + " (readable: F32, F16, BF16, I64)");
  if (!j.contains("shape") || !j["shape"].is_array()) fail(path, where + "missing or non-array \"shape\"");
  uint64_t numel = 1;
  for (const json& d : j["shape"]) {
    if (!d.is_number_unsigned()) fail(path, where + "shape " + j["shape"].dump() + " has a non-integer or negative entry");
    const uint64_t v = d.get<uint64_t>();
    // Beyond int64 a dimension cannot be a Shape entry, even next to a 0 that makes it empty.
    if (v > uint64_t(std::numeric_limits<int64_t>::max()) || (v > 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / v))
      fail(path, where + "shape " + j["shape"].dump() + " is too large");
    numel *= v;
    e.shape.push_back(int64_t(v));
  }
  const json& off = j.contains("data_offsets") ? j["data_offsets"] : json();
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    fail(path, where + "\"data_offsets\" must be [begin, end] with non-negative integers");
  e.begin = off[0].get<uint64_t>();
  e.end = off[1].get<uint64_t>();
  if (e.end < e.begin) fail(path, where + "data_offsets end " + std::to_string(e.end) + " < begin " + std::to_string(e.begin));
  if (e.end - e.begin != numel * stored_size(e.dtype))
    fail(path, where + "shape " + shape_str(e.shape) + " of " + e.dtype + " needs " +
                   std::to_string(numel * stored_size(e.dtype)) + " bytes, data_offsets cover " +
                   std::to_string(e.end - e.begin));
  return e;
}

Tensor decode(const Entry& e, const uint8_t* src) {
  if (e.dtype == "I64") {
    Tensor t = Tensor::allocate(e.shape, DType::Int64, Device::cpu());
    if (t.nbytes()) std::memcpy(t.raw_data(), src, t.nbytes());
    return t;
  }
  Tensor t = Tensor::allocate(e.shape, DType::Float32, Device::cpu());
  float* dst = t.data<float>();
  const int64_t n = t.numel();
  if (e.dtype == "F32") {
    if (n) std::memcpy(dst, src, size_t(n) * 4);
  } else {
    const bool half = e.dtype == "F16";
    for (int64_t i = 0; i < n; ++i) {
      uint16_t v;
      std::memcpy(&v, src + 2 * i, 2);
      dst[i] = half ? half_to_float(v) : bf16_to_float(v);
    }
  }
  return t;
}

// The header as JSON. nlohmann keeps the last of duplicate keys without a word; a header
// naming a tensor twice is ambiguous, so the parser callback refuses any key seen before in
// the same object (and nesting past kMaxHeaderDepth).
json parse_header(const std::string& path, const uint8_t* begin, const uint8_t* end) {
  std::vector<std::set<std::string>> keys;  // per open object, its keys so far
  const json::parser_callback_t check = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth >= kMaxHeaderDepth) fail(path, "header nests deeper than " + std::to_string(kMaxHeaderDepth) + " levels");
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      keys.pop_back();
    } else if (event == json::parse_event_t::key) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(key).second)
        fail(path, "the header lists key '" + key + "' twice" + (keys.size() == 1 ? "" : " in one object"));
    }
    return true;
  };
  try {
    return json::parse(begin, end, check);
  } catch (const json::exception& ex) {
    fail(path, std::string("header is not valid JSON: ") + ex.what());
  }
}

}  // namespace

Tensor Contents::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  return Tensor();
}

Contents read(const std::string& path) {
  const MappedFile file(path);
  return parse(file.data(), file.size(), path);
}

Contents parse(const uint8_t* bytes, size_t size, const std::string& path) {
  if (size < 8) fail(path, "file of " + std::to_string(size) + " bytes is too short for a header length");
  uint64_t n = 0;
  std::memcpy(&n, bytes, 8);  // little-endian on every machine this project runs on
  if (n > size - 8)
    fail(path, "header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) + " bytes)");
  if (n > kMaxHeaderBytes) fail(path, "header length " + std::to_string(n) + " is implausibly large");
  const json header = parse_header(path, bytes + 8, bytes + 8 + n);
  if (!header.is_object()) fail(path, "header is not a JSON object");

  Contents out;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) fail(path, "\"__metadata__\" is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) fail(path, "metadata value of '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, it.key(), it.value()));
  }
  // The data must be covered exactly: sorted by offset, each tensor starts where the last ended.
  const uint64_t data_size = size - 8 - n;
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t at = 0;
  for (const Entry& e : entries) {
    if (e.end > data_size)
      fail(path, "tensor '" + e.name + "': data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                     "] run past the data (" + std::to_string(data_size) + " bytes; file truncated?)");
    if (e.begin < at) fail(path, "tensor '" + e.name + "': data overlaps the previous tensor's");
    if (e.begin > at)
      fail(path, "bytes [" + std::to_string(at) + ", " + std::to_string(e.begin) + ") before tensor '" + e.name +
                     "' belong to no tensor");
    at = e.end;
  }
  if (at != data_size)
    fail(path, "the last " + std::to_string(data_size - at) + " bytes of data belong to no tensor");
  const uint8_t* data = bytes + 8 + n;
  for (const Entry& e : entries) out.tensors.emplace_back(e.name, decode(e, data + e.begin));
  return out;
}

void write(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  autograd::NoGradGuard no_grad;
  std::vector<Tensor> host;
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__" || name.empty()) fail(path, "invalid tensor name '" + name + "'");
    if (header.contains(name)) fail(path, "tensor '" + name + "' is listed twice");
    Tensor h = t.to(Device::cpu());
    std::string dtype;
    if (is_floating(h.dtype())) {
      h = h.to(DType::Float32).contiguous();
      dtype = "F32";
    } else {
      h = h.to(DType::Int64).contiguous();
      dtype = "I64";
    }
    header[name] = {{"dtype", dtype}, {"shape", h.shape()}, {"data_offsets", {offset, offset + h.nbytes()}}};
    offset += h.nbytes();
    host.push_back(h);
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  const uint64_t n = text.size();

  // Atomic write: temp file in the same folder (same filesystem), fsync, rename.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(path, "cannot create temporary file '" + tmp + "': " + std::strerror(errno));
  bool ok = std::fwrite(&n, 8, 1, f) == 1 && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  for (size_t i = 0; ok && i < host.size(); ++i)
    ok = host[i].nbytes() == 0 || std::fwrite(host[i].raw_data(), 1, host[i].nbytes(), f) == host[i].nbytes();
  ok = ok && std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    fail(path, "write failed: " + why);
  }
}

}  // namespace mila::safetensors
