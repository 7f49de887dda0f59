// File readers and writers (io/): loads and placements in the formats users already have.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bindings.h"
#include "convert.h"
#include "swiftbalancer/io/load_io.h"
#include "swiftbalancer/io/placement_io.h"

namespace swiftbalancer::python {

void bind_io(py::module_& m) {
  m.def(
      "read_load",
      [](const std::string& path, const std::string& format) {
        LoadMatrix load;
        {
          py::gil_scoped_release nogil;
          load = read_load(path, parse_load_format(format));
        }
        return array_of(load.data(), {py::ssize_t{load.layers()}, py::ssize_t{load.experts()}});
      },
      py::arg("path"), py::arg("format") = "auto");
  m.def(
      "write_load",
      [](const std::string& path, py::handle load_obj, const std::string& format) {
        const LoadMatrix load = load_from(load_obj, "load", /*allow_window=*/true);
        const LoadFormat f = parse_load_format(format);
        py::gil_scoped_release nogil;
        write_load(path, load, f);
      },
      py::arg("path"), py::arg("load"), py::arg("format") = "auto");
  m.def(
      "read_placement",
      [](const std::string& path, const Topology& topo, int num_experts) {
        if (num_experts <= 0) throw InputError("num_experts must be positive");
        Placement p;
        {
          py::gil_scoped_release nogil;
          p = read_placement(path, topo, num_experts);
        }
        return placement_array(p);
      },
      py::arg("path"), py::arg("topology"), py::arg("num_experts"));
  m.def(
      "write_placement",
      [](const std::string& path, py::handle placement_obj, const Topology& topo,
         const std::string& format, int num_experts) {
        const Placement p = placement_from(placement_obj, "placement", num_experts);
        check_slots(p, topo, "placement");
        throw_if_error(validate_placement(p, topo));
        const PlacementFormat f = parse_placement_format(format);
        py::gil_scoped_release nogil;
        write_placement(path, p, topo, f);
      },
      py::arg("path"), py::arg("placement"), py::arg("topology"), py::arg("format") = "sglang",
      py::arg("num_experts") = 0);
}

}  // namespace swiftbalancer::python
