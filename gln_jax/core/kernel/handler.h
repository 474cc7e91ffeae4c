// What the kernel's XLA FFI handlers share: the exception boundary, the worker threads and
// the messages of refused arguments.
//
// No C++ exception leaves a handler: an exception of the handler's own thread or of a worker
// (std::bad_alloc when scratch memory runs out, std::system_error when a thread cannot start)
// becomes an FFI error, which JAX raises in Python as a JaxRuntimeError; the process lives.

#ifndef GLN_JAX_CORE_KERNEL_HANDLER_H_
#define GLN_JAX_CORE_KERNEL_HANDLER_H_

#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace gln_jax {

namespace ffi = xla::ffi;

// Most threads of one call (each holds its own scratch, see the handlers): a larger
// num_threads runs on this many.
constexpr int64_t kMaxThreads = 64;

// Runs body() and turns any exception it throws into an FFI error naming the handler.
template <typename Body>
ffi::Error Guarded(const char* handler, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return ffi::Error::Internal(std::string(handler) + ": out of memory");
  } catch (const std::exception& err) {
    return ffi::Error::Internal(std::string(handler) + ": " + err.what());
  } catch (...) {
    return ffi::Error::Internal(std::string(handler) + ": unknown C++ exception");
  }
}

// Runs work(0), ..., work(count - 1), work(0) on the calling thread and the others on worker
// threads. A thread that cannot start leaves its part to the calling thread (the handlers'
// results do not depend on which thread computes a part). Returns an empty string, or the
// message of the first exception a part threw (after every started thread has joined).
template <typename Work>
std::string RunParts(int64_t count, Work&& work) noexcept {
  std::mutex mutex;
  std::string failure;
  auto guarded = [&](int64_t i) noexcept {
    try {
      work(i);
    } catch (const std::bad_alloc&) {
      const std::lock_guard<std::mutex> lock(mutex);
      if (failure.empty()) failure = "out of memory";
    } catch (const std::exception& err) {
      const std::lock_guard<std::mutex> lock(mutex);
      if (failure.empty()) failure = err.what();
    } catch (...) {
      const std::lock_guard<std::mutex> lock(mutex);
      if (failure.empty()) failure = "unknown C++ exception";
    }
  };
  std::vector<std::thread> pool;
  std::vector<int64_t> inline_parts = {0};
  try {
    pool.reserve(count > 1 ? count - 1 : 0);
  } catch (...) {  // no room for the pool: every part on the calling thread
  }
  for (int64_t i = 1; i < count; ++i) {
    try {
      pool.emplace_back(guarded, i);
    } catch (...) {  // std::system_error (no thread) or std::bad_alloc
      try {
        inline_parts.push_back(i);
      } catch (...) {
        guarded(i);  // runs now, before the other parts that could not start
      }
    }
  }
  for (int64_t i : inline_parts) guarded(i);
  for (std::thread& thread : pool) thread.join();
  return failure;
}

// The FFI error of a failed part of a handler.
inline ffi::Error PartFailed(const char* handler, const std::string& failure) {
  return ffi::Error::Internal(std::string(handler) + ": " + failure);
}

// "float32", "int32", ... for messages.
inline std::string TypeName(ffi::DataType type) {
  switch (type) {
    case ffi::DataType::F32:
      return "float32";
    case ffi::DataType::F64:
      return "float64";
    case ffi::DataType::S32:
      return "int32";
    case ffi::DataType::S64:
      return "int64";
    case ffi::DataType::PRED:
      return "bool";
    default:
      return "dtype #" + std::to_string(static_cast<int>(type));
  }
}

// "[2, 3, 4]" for messages.
template <typename Dims>
std::string ShapeText(const Dims& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(dims[i]);
  }
  return text + "]";
}

// A buffer's dtype and shape for messages: "float32 [2, 3]".
inline std::string Describe(const ffi::AnyBuffer& buffer) {
  return TypeName(buffer.element_type()) + " " + ShapeText(buffer.dimensions());
}

}  // namespace gln_jax

#endif  // GLN_JAX_CORE_KERNEL_HANDLER_H_
