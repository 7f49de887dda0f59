// PyBalancer: one rank's runtime Balancer over an InProcessWorld, as Python sees it.
// Owner: the Python module (python/).
//
// Threading: as the C++ Balancer, one Python thread drives one rank (all calls but counters());
// ranks of one InProcessWorld run in separate Python threads. before_forward / after_forward
// and the destructor release the GIL, since they wait (bounded) for the other ranks or the
// worker. Expert buffers are numpy arrays owned by the caller; PyBalancer keeps a reference to
// each so that the memory stays valid for the balancer's lifetime, and the balancer writes new
// weights into them in place.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <vector>

#include "swiftbalancer/runtime/balancer.h"
#include "swiftbalancer/transport/inprocess_transport.h"

namespace swiftbalancer::python {

namespace py = pybind11;

class PyBalancer {
 public:
  // Throws InputError on a world / topology mismatch or a bad initial placement.
  PyBalancer(std::shared_ptr<InProcessWorld> world, const Topology& topo, int rank,
             const std::string& policy, const py::array& initial, const BalancerConfig& cfg);
  ~PyBalancer();

  void register_expert(int layer, int slot, std::vector<py::array> tensors);
  void record(int layer, py::handle counts);
  void before_forward();
  StepStats after_forward();

  // The routing table in service for `layer` (InputError when out of range).
  const RoutingTable& table(int layer) const;
  py::array_t<std::int64_t> placement() const;
  BalancerCounters counters() const;
  const Balancer& balancer() const { return *balancer_; }

 private:
  std::shared_ptr<InProcessWorld> world_;
  Topology topo_;
  std::unique_ptr<Transport> transport_;
  std::vector<py::array> keep_;
  std::unique_ptr<Balancer> balancer_;  // last: destroyed first
};

}  // namespace swiftbalancer::python
