// MPI transport: one rank per process, launched with mpirun (one node or many). Built only when
// CMake finds MPI (SWIFTBALANCER_HAVE_MPI); otherwise mpi_transport_built() is false and the
// factory throws InputError.
//
// Collectives are non-blocking MPI calls (MPI_Iallgather, MPI_Iallreduce) polled until a
// deadline; a collective that does not finish cannot be cancelled in MPI, so the transport then
// reports broken() and fails every later call at once (serving goes on without balancing).
// Point-to-point messages larger than `chunk_bytes` are split into chunks (MPI counts are int,
// and smaller messages pipeline better); a batch polls with MPI_Testall and cancels its
// unfinished requests on timeout.
// Threading: MPI is initialised with MPI_THREAD_FUNNELED; only the thread that created the
// session may call the transport (the balancer's worker thread never does).
#pragma once

#include <cstddef>
#include <memory>

#include "swiftbalancer/transport/transport.h"

namespace swiftbalancer {

bool mpi_transport_built();

// Initialises MPI on construction and finalises it on destruction. One per process.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  int rank() const { return rank_; }
  int size() const { return size_; }
  std::unique_ptr<Transport> transport(std::size_t chunk_bytes = std::size_t{1} << 22) const;

 private:
  int rank_ = 0, size_ = 1;
};

}  // namespace swiftbalancer
