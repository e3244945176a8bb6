// Size-classed free lists of large, 64-byte aligned blocks.
#include "autograd/allocator.hpp"

#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

namespace rune {
namespace {

constexpr std::size_t kAlign = 64;
constexpr std::size_t kLargeBlock = 256 * 1024;
constexpr std::size_t kMaxCachedBytes = std::size_t{2} << 30;  // 2 GiB

// Rounds up to a size class: within 1/8 of the request, so reuse wastes at most 12.5%.
std::size_t size_class(std::size_t bytes) {
  std::size_t top = 1;
  while ((top << 1) <= bytes) top <<= 1;
  const std::size_t step = std::max<std::size_t>(top / 8, kAlign);
  return (bytes + step - 1) / step * step;
}

struct Cache {
  std::mutex mutex;
  std::map<std::size_t, std::vector<void*>> free;  // size class -> blocks
  std::size_t cached = 0;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: buffers may be freed during static teardown
  return *c;
}

void* system_alloc(std::size_t bytes) {
  void* p = std::aligned_alloc(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
  if (!p) throw std::bad_alloc();
  return p;
}

}  // namespace

void* allocate_buffer(std::size_t bytes) {
  if (bytes < kLargeBlock) return system_alloc(bytes == 0 ? kAlign : bytes);
  const std::size_t cls = size_class(bytes);
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.free.find(cls);
    if (it != c.free.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.cached -= cls;
      return p;
    }
  }
  return system_alloc(cls);
}

void free_buffer(void* p, std::size_t bytes) {
  if (!p) return;
  if (bytes < kLargeBlock) {
    std::free(p);
    return;
  }
  const std::size_t cls = size_class(bytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    if (c.cached + cls <= kMaxCachedBytes) {
      c.free[cls].push_back(p);
      c.cached += cls;
      return;
    }
  }
  std::free(p);
}

void empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto& [cls, blocks] : c.free)
    for (void* p : blocks) std::free(p);
  c.free.clear();
  c.cached = 0;
}

std::int64_t cached_buffer_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return static_cast<std::int64_t>(c.cached);
}

}  // namespace rune
