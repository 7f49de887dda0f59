// DeviceRecorder: counts tokens per (layer, physical slot) in device memory, inside the forward.
//
// The counter is a device int64 array [layers][slots] (slots: this rank's local slots) plus one
// more word counting token ids that named no slot. Three kinds of recording call, all
// capture-safe (they only launch a kernel on the caller's stream: no host synchronisation, no
// allocation, no host-side state that changes), so an engine may record them inside a CUDA
// graph and replay it:
//   add_counts(layer, counts[slots])      adds the dispatcher's per-slot counts of one layer;
//   add_step(counts[layers][slots])       the same for every layer at once: one kernel a step
//                                         (issue 19, item 5), for engines that keep a step's
//                                         counts in one array; rows may be padded (row_stride);
//   count_ids(layer, ids[tokens*topk])    for engines without counts: counts the slot ids of
//                                         each token (ids < 0 are padding, skipped; ids >= slots
//                                         are counted as invalid).
//
// One launch or one per layer: 58 dependent launches a step cost far more GPU time than the
// 10 us a step may spend recording; an engine that can keep a step's counts in one device array
// records them with add_step once, after its last MoE layer (the layout is in
// step_counts_layout.h: counts[layer * row_stride + slot], layer-major, int32 or int64). The
// per-layer add_counts stays for engines that record inside each layer (e.g. one graph per
// layer). Both add into the same counter, so they may be mixed.
//
// The counter is cumulative and never reset (a reset could race with adds queued on another
// stream). At an interval boundary the engine calls start_gather(engine_stream): a side stream
// waits for the engine's work queued so far and copies the counter into pinned host memory with
// one async copy, then records an event. gather_done() polls that event; take_interval() then
// returns the counts since the previous take (adds queued after start_gather are in this
// snapshot or the next one, never lost) and the engine hands each layer's row to
// Balancer::record().
//
// Ownership: the recorder owns its device and pinned memory, stream and events, all on the
// device that was current at construction. Destroying it waits for its own side stream only.
// Thread-safety: the recording calls may be made from any thread (the kernels add atomically);
// the gather calls from one thread at a time.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <span>
#include <vector>

#include "swiftbalancer/core/clock.h"
#include "swiftbalancer/core/status.h"

namespace swiftbalancer::device {

class DeviceRecorder {
 public:
  // Throws InputError when layers or slots < 1, DeviceError when the device refuses.
  DeviceRecorder(int layers, int slots);
  ~DeviceRecorder();
  DeviceRecorder(const DeviceRecorder&) = delete;
  DeviceRecorder& operator=(const DeviceRecorder&) = delete;

  int layers() const { return layers_; }
  int local_slots() const { return slots_; }

  // Recording (capture-safe). `counts` / `ids` are device pointers, read when the kernel runs.
  // A layer out of range throws InputError; a failed launch throws DeviceError.
  void add_counts(int layer, const std::int32_t* counts, cudaStream_t stream);
  void add_counts(int layer, const std::int64_t* counts, cudaStream_t stream);
  // counts[l * row_stride + s] (row_stride 0: slots, dense) for every layer l and slot s: one
  // kernel. Throws InputError when row_stride is below slots.
  void add_step(const std::int32_t* counts, cudaStream_t stream, std::int64_t row_stride = 0);
  void add_step(const std::int64_t* counts, cudaStream_t stream, std::int64_t row_stride = 0);
  void count_ids(int layer, const std::int32_t* ids, std::int64_t n, cudaStream_t stream);
  void count_ids(int layer, const std::int64_t* ids, std::int64_t n, cudaStream_t stream);

  // Gathering (host side, not for capture). start_gather fails (kInvalidInput) while a previous
  // gather is not yet taken.
  Status start_gather(cudaStream_t engine_stream);
  bool gather_done();
  Status wait_gather(Clock::time_point deadline);
  // After the gather is done: counts [layers][slots] since the previous take, into `out`
  // (layers * slots values). Returns the ids that named no slot in that time. Throws InputError
  // on a wrong size or when no gather is done.
  std::int64_t take_interval(std::span<std::int64_t> out);

  // The device counter ([layers][slots] then the invalid-id word), for engines that read it
  // themselves.
  const std::int64_t* device_counter() const { return counter_; }

 private:
  void check_layer(int layer) const;
  std::int64_t checked_stride(std::int64_t row_stride) const;
  void release();  // frees what was made (also after a failed construction)
  int layers_, slots_;
  std::int64_t* counter_ = nullptr;   // device, layers*slots + 1
  std::int64_t* snapshot_ = nullptr;  // pinned host, same size
  std::vector<std::int64_t> taken_;   // the snapshot at the previous take
  cudaStream_t side_ = nullptr;
  cudaEvent_t engine_mark_ = nullptr, gathered_ = nullptr;
  bool gathering_ = false;
};

}  // namespace swiftbalancer::device
