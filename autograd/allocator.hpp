// Buffer allocation for tensors: a caching allocator for large buffers.
//
// A training step allocates and frees the same large activations every step. Left to malloc, a
// buffer of several MB is an mmap that the kernel zero-fills page by page and unmaps on free:
// measured here, a quarter of a softmax forward+backward went to page faults. Large blocks
// (>= 256 KiB) are therefore kept on free lists by size class (sizes rounded up by at most
// 1/8) and reused; at most kMaxCachedBytes are kept. Small blocks go straight to malloc. All
// blocks are 64-byte aligned. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

namespace rune {

void* allocate_buffer(std::size_t bytes);
void free_buffer(void* p, std::size_t bytes);
// Returns every cached block to the system (as torch.cuda.empty_cache does for its cache).
void empty_cache();
std::int64_t cached_buffer_bytes();

// The std-style allocator xt::uvector is given for tensor buffers.
template <class T>
struct BufferAllocator {
  using value_type = T;
  BufferAllocator() = default;
  template <class U>
  BufferAllocator(const BufferAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(allocate_buffer(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { free_buffer(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const BufferAllocator<U>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const BufferAllocator<U>&) const noexcept {
    return false;
  }
};

}  // namespace rune
