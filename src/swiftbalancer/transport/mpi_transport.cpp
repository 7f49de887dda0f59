// Stand-in used when MPI was not found at configure time (the real one is mpi_transport_mpi.cpp).
#include "swiftbalancer/transport/mpi_transport.h"

#ifndef SWIFTBALANCER_HAVE_MPI
namespace swiftbalancer {

bool mpi_transport_built() {
  return false;
}
MpiSession::MpiSession(int*, char***) {
  throw InputError("this build has no MPI transport (MPI was not found when it was configured)");
}
MpiSession::~MpiSession() = default;
std::unique_ptr<Transport> MpiSession::transport(std::size_t) const {
  throw InputError("this build has no MPI transport");
}

}  // namespace swiftbalancer
#endif
