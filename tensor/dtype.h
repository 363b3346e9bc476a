// dtype.h - the element types a Tensor can hold, and the dispatch helpers that turn a
// runtime DType into a compile-time C++ type.
//
// float32 is the type of all model math; float64 exists so that gradient checks can use
// central differences without float32 rounding noise; int64 holds class labels and
// indices; uint8 holds images and the results of comparisons (PyTorch's bool).
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace mila {

enum class DType : uint8_t { Float32, Float64, Int64, UInt8 };

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
  }
  return "?";
}

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int64: return 8;
    case DType::UInt8: return 1;
  }
  return 0;
}

inline bool is_floating(DType t) { return t == DType::Float32 || t == DType::Float64; }

// Converts one element between dtypes the way PyTorch does on x86, with every case defined
// (a plain static_cast from floating to integer is undefined behaviour out of range):
//   * floating -> integer truncates toward zero; NaN and values outside int64's range give
//     INT64_MIN (the x86 "integer indefinite" value that PyTorch and NumPy show);
//   * floating -> uint8 goes through int64 and keeps the low 8 bits: -1.0 -> 255, 300.0 -> 44;
//   * integer -> uint8 keeps the low 8 bits; everything else is an ordinary conversion.
template <typename TO, typename TI>
constexpr TO convert(TI v) {
  if constexpr (std::is_floating_point_v<TI> && std::is_integral_v<TO>) {
    constexpr TI two63 = TI(9223372036854775808.0);  // 2^63, exact in float and double
    if (!(v >= -two63 && v < two63)) return static_cast<TO>(INT64_MIN);
    return static_cast<TO>(static_cast<int64_t>(v));
  } else {
    return static_cast<TO>(v);
  }
}

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::UInt8; }

// Calls f.template operator()<T>() with T the C++ type of `t`, for floating types only.
// Usage: dispatch_floating(x.dtype(), "relu", [&]<typename T>() { ... });
template <typename F>
decltype(auto) dispatch_floating(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Float32: return f.template operator()<float>();
    case DType::Float64: return f.template operator()<double>();
    default:
      throw std::invalid_argument(std::string(op) + ": expected a floating dtype (float32 or float64), got " +
                                  dtype_name(t));
  }
}

// The same over every dtype.
template <typename F>
decltype(auto) dispatch_all(DType t, F&& f) {
  switch (t) {
    case DType::Float32: return f.template operator()<float>();
    case DType::Float64: return f.template operator()<double>();
    case DType::Int64: return f.template operator()<int64_t>();
    case DType::UInt8: return f.template operator()<uint8_t>();
  }
  throw std::logic_error("dispatch_all: corrupt dtype");
}

// Floating types plus int64 (arithmetic on labels and indices).
template <typename F>
decltype(auto) dispatch_arithmetic(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Float32: return f.template operator()<float>();
    case DType::Float64: return f.template operator()<double>();
    case DType::Int64: return f.template operator()<int64_t>();
    default:
      throw std::invalid_argument(std::string(op) + ": expected float32, float64 or int64, got " + dtype_name(t));
  }
}

}  // namespace mila
