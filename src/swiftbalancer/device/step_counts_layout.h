// The layout of one step's token counts for one-launch recording (issue 19, item 5).
//
// A step's counts are one device array, layer-major: the count of local slot s in MoE layer l
// is counts[l * row_stride + s], for l in [0, layers) and s in [0, slots). row_stride >= slots
// is the distance in elements between two layers' rows: slots when the array is dense
// ([layers][slots], what DeviceRecorder's own counter is), more when the engine keeps padded
// rows (e.g. [layers][max_slots]). The element type is int32 or int64. One kernel adds the
// whole array into the recorder's [layers][slots] int64 counter: cell i of the counter (layer
// i / slots, slot i % slots) reads counts[step_source_index(i, slots, row_stride)].
//
// No CUDA here: the host tests check the same index arithmetic the kernel runs.
#pragma once

#include <cstdint>
#include <string>

#include "swiftbalancer/core/status.h"

#if defined(__CUDACC__)
#define SWIFTBALANCER_HOST_DEVICE __host__ __device__
#else
#define SWIFTBALANCER_HOST_DEVICE
#endif

namespace swiftbalancer::device {

// The counts index that counter cell i ([layers][slots], dense) adds.
SWIFTBALANCER_HOST_DEVICE inline std::int64_t step_source_index(std::int64_t i, int slots,
                                                                std::int64_t row_stride) {
  const std::int64_t layer = i / slots;
  return layer * row_stride + (i - layer * slots);
}

struct StepCountsLayout {
  int layers = 0;
  int slots = 0;
  std::int64_t row_stride = 0;  // elements between layer rows; 0 means slots (dense)

  std::int64_t stride() const { return row_stride == 0 ? slots : row_stride; }
  // Counter cells one launch adds: layers x slots.
  std::int64_t cells() const { return static_cast<std::int64_t>(layers) * slots; }
  // Elements the counts array must hold: the last row ends at (layers - 1) * stride + slots.
  std::int64_t extent() const {
    return layers < 1 ? 0 : static_cast<std::int64_t>(layers - 1) * stride() + slots;
  }
  // Ok, or InvalidInput naming the field out of range.
  Status check() const {
    if (layers < 1 || slots < 1)
      return Status::InvalidInput(
          "step counts layout: needs at least one layer and one slot (got " +
          std::to_string(layers) + " x " + std::to_string(slots) + ")");
    if (row_stride != 0 && row_stride < slots)
      return Status::InvalidInput("step counts layout: row stride " + std::to_string(row_stride) +
                                  " is shorter than a row of " + std::to_string(slots) + " slots");
    return Status::Ok();
  }
};

}  // namespace swiftbalancer::device
