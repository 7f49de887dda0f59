#include "swiftbalancer/io/placement_io.h"

#include <cmath>
#include <limits>
#include <vector>

#include "swiftbalancer/io/file_util.h"

namespace swiftbalancer {
namespace {

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw InputError(source + ": " + what);
}

std::string slot_name(const Topology& topo, int layer, int p) {
  return "layer " + std::to_string(layer) + ", rank " + std::to_string(topo.rank_of_slot(p)) +
         ", slot " + std::to_string(p % topo.slots_per_rank) + " (physical slot " +
         std::to_string(p) + ")";
}

// One expert id: a JSON integer in [0, experts).
ExpertId expert_id(const nlohmann::json& v, const std::string& source, const Topology& topo,
                   int layer, int p, int experts) {
  std::int64_t id = 0;
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    id = u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
             ? std::numeric_limits<std::int64_t>::max()
             : static_cast<std::int64_t>(u);
  } else if (v.is_number_integer()) {
    id = v.get<std::int64_t>();
  } else if (v.is_number_float() && std::isfinite(v.get<double>()) &&
             v.get<double>() == std::trunc(v.get<double>())) {
    // 3.0 from a float array: accepted. Compared as a double before any conversion: a value
    // outside int64's range (1e38) must not be converted at all.
    const double d = v.get<double>();
    if (d < 0.0 || d >= static_cast<double>(experts))
      fail(source, slot_name(topo, layer, p) + ": expert id " + v.dump() + " is out of range [0, " +
                       std::to_string(experts) + ")");
    id = static_cast<std::int64_t>(d);
  } else {
    fail(source, slot_name(topo, layer, p) + ": expert id is not an integer (" + v.dump() + ")");
  }
  if (id < 0 || id >= experts)
    fail(source, slot_name(topo, layer, p) + ": expert id " + std::to_string(id) +
                     " is out of range [0, " + std::to_string(experts) + ")");
  return static_cast<ExpertId>(id);
}

void check_layers(const std::string& source, std::int64_t got, int want) {
  if (got <= 0) fail(source, "placement has no layers");
  if (want > 0 && got != want)
    fail(source, "placement has " + std::to_string(got) + " layers, expected " +
                     std::to_string(want) + " (the load's layers)");
}

Placement from_sglang(const nlohmann::json& m, const Topology& topo, int experts, int layers,
                      const std::string& source) {
  if (!m.is_array())
    fail(source, std::string("physical_to_logical_map is a ") + m.type_name() +
                     ", expected [layers][ranks x slots]");
  check_layers(source, static_cast<std::int64_t>(m.size()), layers);
  const int L = static_cast<int>(m.size()), N = topo.num_slots();
  Placement out(L, N, experts);
  for (int l = 0; l < L; ++l) {
    const nlohmann::json& row = m[static_cast<std::size_t>(l)];
    if (!row.is_array())
      fail(source, "physical_to_logical_map layer " + std::to_string(l) + " is a " +
                       row.type_name() + ", expected an array of expert ids");
    if (static_cast<int>(row.size()) != N)
      fail(source, "layer " + std::to_string(l) + " has " + std::to_string(row.size()) +
                       " slots, the topology has " + std::to_string(topo.ranks) + " ranks x " +
                       std::to_string(topo.slots_per_rank) + " slots = " + std::to_string(N));
    for (int p = 0; p < N; ++p)
      out.at(l, p) = expert_id(row[static_cast<std::size_t>(p)], source, topo, l, p, experts);
  }
  return out;
}

// Optional id field: when present an integer in [0, n), else `fallback`.
int optional_id(const nlohmann::json& obj, const char* key, int fallback, int n,
                const std::string& source, const std::string& what) {
  auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  if (!it->is_number_integer())
    fail(source, what + ": " + key + " is not an integer (" + it->dump() + ")");
  const std::int64_t v = it->get<std::int64_t>();
  if (v < 0 || v >= n)
    fail(source, what + ": " + key + " " + std::to_string(v) + " is out of range [0, " +
                     std::to_string(n) + ")");
  return static_cast<int>(v);
}

Placement from_vllm_ascend(const nlohmann::json& j, const Topology& topo, int experts, int layers,
                           const std::string& source) {
  const nlohmann::json& list = j.at("layer_list");
  if (!list.is_array()) fail(source, "layer_list is not an array");
  check_layers(source, static_cast<std::int64_t>(list.size()), layers);
  const int L = static_cast<int>(list.size()), R = topo.ranks, S = topo.slots_per_rank;
  if (auto it = j.find("moe_layer_count"); it != j.end()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() != L)
      fail(source, "moe_layer_count " + it->dump() + " does not match the " + std::to_string(L) +
                       " entries of layer_list");
  }
  Placement out(L, topo.num_slots(), experts);
  std::vector<char> layer_seen(static_cast<std::size_t>(L), 0);
  for (int k = 0; k < L; ++k) {
    const nlohmann::json& entry = list[static_cast<std::size_t>(k)];
    const std::string what = "layer_list[" + std::to_string(k) + "]";
    if (!entry.is_object()) fail(source, what + " is not an object");
    const int l = optional_id(entry, "layer_id", k, L, source, what);
    if (layer_seen[l]) fail(source, what + ": layer_id " + std::to_string(l) + " appears twice");
    layer_seen[l] = 1;
    auto dl = entry.find("device_list");
    if (dl == entry.end() || !dl->is_array())
      fail(source, what + " (layer " + std::to_string(l) + ") has no device_list array");
    if (auto dc = entry.find("device_count"); dc != entry.end()) {
      if (!dc->is_number_integer() ||
          dc->get<std::int64_t>() != static_cast<std::int64_t>(dl->size()))
        fail(source, "layer " + std::to_string(l) + ": device_count " + dc->dump() +
                         " does not match the " + std::to_string(dl->size()) +
                         " entries of device_list");
    }
    if (static_cast<int>(dl->size()) != R)
      fail(source, "layer " + std::to_string(l) + " has " + std::to_string(dl->size()) +
                       " devices, the topology has " + std::to_string(R) + " ranks");
    std::vector<char> rank_seen(static_cast<std::size_t>(R), 0);
    for (int d = 0; d < R; ++d) {
      const nlohmann::json& dev = (*dl)[static_cast<std::size_t>(d)];
      const std::string dwhat =
          "layer " + std::to_string(l) + ", device_list[" + std::to_string(d) + "]";
      if (!dev.is_object()) fail(source, dwhat + " is not an object");
      const int r = optional_id(dev, "device_id", d, R, source, dwhat);
      if (rank_seen[r]) fail(source, dwhat + ": device_id " + std::to_string(r) + " appears twice");
      rank_seen[r] = 1;
      auto de = dev.find("device_expert");
      if (de == dev.end() || !de->is_array()) fail(source, dwhat + " has no device_expert array");
      if (static_cast<int>(de->size()) != S)
        fail(source, "layer " + std::to_string(l) + ", rank " + std::to_string(r) + " has " +
                         std::to_string(de->size()) + " experts, the topology has " +
                         std::to_string(S) + " slots per rank");
      for (int s = 0; s < S; ++s) {
        const int p = topo.slot_id(r, s);
        out.at(l, p) = expert_id((*de)[static_cast<std::size_t>(s)], source, topo, l, p, experts);
      }
    }
  }
  return out;
}

}  // namespace

PlacementFormat parse_placement_format(const std::string& name) {
  if (name == "sglang") return PlacementFormat::kSglang;
  if (name == "vllm-ascend" || name == "vllm_ascend") return PlacementFormat::kVllmAscend;
  throw InputError("unknown placement format '" + name + "' (known: sglang, vllm-ascend)");
}

const char* placement_format_name(PlacementFormat format) {
  return format == PlacementFormat::kSglang ? "sglang" : "vllm-ascend";
}

Placement placement_from_json(const nlohmann::json& j, const Topology& topo, int experts,
                              int layers, const std::string& source) {
  if (experts <= 0) fail(source, "number of experts must be positive");
  const Status ts = topo.validate(experts);
  if (!ts.ok()) fail(source, ts.message());
  if (!j.is_object()) fail(source, std::string("expected a JSON object, got a ") + j.type_name());
  Placement out;
  if (auto it = j.find("physical_to_logical_map"); it != j.end()) {
    out = from_sglang(*it, topo, experts, layers, source);
  } else if (j.contains("layer_list")) {
    out = from_vllm_ascend(j, topo, experts, layers, source);
  } else {
    fail(source,
         "missing key: neither \"physical_to_logical_map\" (SGLang) nor \"layer_list\" "
         "(vllm-ascend expert map)");
  }
  const Status s = validate_placement(out, topo);
  if (!s.ok()) fail(source, s.message());
  return out;
}

nlohmann::json placement_to_json(const Placement& placement, const Topology& topo,
                                 PlacementFormat format) {
  if (placement.empty()) throw InputError("cannot convert an empty placement to JSON");
  if (placement.num_slots() != topo.num_slots())
    throw InputError("placement has " + std::to_string(placement.num_slots()) +
                     " slots per layer, the topology has " + std::to_string(topo.num_slots()));
  if (format == PlacementFormat::kSglang) {
    nlohmann::json rows = nlohmann::json::array();
    for (int l = 0; l < placement.layers(); ++l) {
      auto r = placement.layer(l);
      rows.push_back(nlohmann::json(std::vector<ExpertId>(r.begin(), r.end())));
    }
    return nlohmann::json{{"physical_to_logical_map", std::move(rows)}};
  }
  nlohmann::json list = nlohmann::json::array();
  for (int l = 0; l < placement.layers(); ++l) {
    nlohmann::json devices = nlohmann::json::array();
    auto row = placement.layer(l);
    for (int r = 0; r < topo.ranks; ++r) {
      auto first = row.begin() + static_cast<std::ptrdiff_t>(r) * topo.slots_per_rank;
      devices.push_back(
          {{"device_id", r},
           {"device_expert", std::vector<ExpertId>(first, first + topo.slots_per_rank)}});
    }
    list.push_back(
        {{"layer_id", l}, {"device_count", topo.ranks}, {"device_list", std::move(devices)}});
  }
  return nlohmann::json{{"moe_layer_count", placement.layers()}, {"layer_list", std::move(list)}};
}

Placement read_placement(const std::string& path, const Topology& topo, int experts, int layers) {
  return io_detail::reading(path, [&] {
    const std::string text = io_detail::read_file(path);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      fail(path, std::string("malformed JSON: ") + e.what());
    } catch (const nlohmann::json::exception& e) {
      fail(path, std::string("malformed JSON: ") + e.what());
    }
    return placement_from_json(j, topo, experts, layers, path);
  });
}

void write_placement(const std::string& path, const Placement& placement, const Topology& topo,
                     PlacementFormat format) {
  const nlohmann::json j = placement_to_json(placement, topo, format);
  // SGLang maps are compact (one line); the vllm-ascend map is indented as vllm-ascend writes it.
  io_detail::write_text(path, (format == PlacementFormat::kSglang ? j.dump() : j.dump(2)) + "\n");
}

}  // namespace swiftbalancer
