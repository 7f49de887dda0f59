// What happens under MPI when one process dies: rank size-1 exits abruptly (no MPI_Finalize)
// in the middle of serving while the others keep calling the balancer. The survivors'
// collectives time out; after max_collective_failures of them they stop balancing and serve on,
// recording only (seen here: all 2000 steps served, balancing_stopped 1). OpenMPI's launcher
// then ends the job, because a process exited non-zero, and mpirun exits non-zero. ctest runs
// this under mpirun with a time limit and expects that failure (WILL_FAIL): a hang would time
// out and fail the test. docs/runtime.md describes it.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <vector>

#include "swiftbalancer/policy/policy.h"
#include "swiftbalancer/runtime/balancer.h"
#include "swiftbalancer/transport/mpi_transport.h"

int main(int argc, char** argv) {
  using namespace swiftbalancer;
  MpiSession session(&argc, &argv);
  auto transport = session.transport();
  const int R = session.size(), S = 4, L = 2, E = 2 * R;
  const Topology topo = Topology::make(R, S);
  BalancerConfig cfg;
  cfg.interval_steps = 5;
  cfg.collective_timeout = Millis(200);
  cfg.transfer_timeout = Millis(200);
  cfg.log = [](LogSeverity, const std::string&) {};
  std::shared_ptr<const Policy> policy = make_policy("swift");
  Balancer b(topo, session.rank(), *transport, policy, contiguous_placement(topo, L, E), cfg);
  std::vector<std::vector<std::byte>> mem(static_cast<std::size_t>(L * S),
                                          std::vector<std::byte>(64));
  for (int l = 0; l < L; ++l)
    for (int s = 0; s < S; ++s)
      b.register_expert(l, s, {std::span<std::byte>(mem[static_cast<std::size_t>(l * S + s)])});
  const std::vector<std::int64_t> counts(S, 10);
  for (int step = 1; step <= 2000; ++step) {
    if (session.rank() == R - 1 && step == 23) {
      std::fprintf(stderr, "rank %d: exiting abruptly at step %d\n", session.rank(), step);
      std::_Exit(3);
    }
    b.before_forward();
    for (int l = 0; l < L; ++l) b.record(l, counts);
    b.after_forward();
  }
  // Reached when the launcher lets the survivors finish before it ends the job.
  std::printf("rank %d: served 2000 steps, balancing stopped %lld\n", session.rank(),
              static_cast<long long>(b.counters().balancing_stopped));
  return 0;
}
