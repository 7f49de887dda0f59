// MemoryKind: where a buffer lives. Every buffer that crosses the runtime's seams (expert slots,
// staging, point-to-point operations) says which, so that a part that cannot handle a kind (a
// host-only transport handed device memory) refuses it with a clear error instead of touching it.
#pragma once

namespace swiftbalancer {

enum class MemoryKind { kHost, kDevice };

inline const char* memory_kind_name(MemoryKind kind) {
  return kind == MemoryKind::kHost ? "host" : "device";
}

}  // namespace swiftbalancer
