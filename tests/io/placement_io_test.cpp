// Placement readers and writers: both formats, round trips, shape and validity errors.
#include <gtest/gtest.h>

#include "io/io_test_util.h"
#include "swiftbalancer/io/placement_io.h"

namespace swiftbalancer {
namespace {

using testing_io::input_error;
using testing_io::ScratchDir;

// 2 layers, 3 ranks x 2 slots, 4 experts.
const Topology kTopo = Topology::make(3, 2, 0);
Placement sample() {
  return Placement(2, 6, 4, {0, 1, 2, 3, 0, 2, 3, 2, 1, 0, 1, 3});
}

TEST(PlacementFormat, ParsesNames) {
  EXPECT_EQ(parse_placement_format("sglang"), PlacementFormat::kSglang);
  EXPECT_EQ(parse_placement_format("vllm-ascend"), PlacementFormat::kVllmAscend);
  EXPECT_CONTAINS(input_error([] { parse_placement_format("deepseek"); }),
                  "unknown placement format 'deepseek'");
}

TEST(PlacementIo, ReadsSglangExactly) {
  ScratchDir d;
  const auto p = d.write("p.json", R"({"physical_to_logical_map": [[0,1,2,3,0,2],[3,2,1,0,1,3]]})");
  EXPECT_EQ(read_placement(p, kTopo, 4), sample());
  EXPECT_EQ(read_placement(p, kTopo, 4, 2), sample());
}

TEST(PlacementIo, ReadsVllmAscendExactly) {
  ScratchDir d;
  // Devices listed out of order by device_id; layer_id given; ids place the entries.
  const auto p = d.write("v.json", R"({"moe_layer_count": 2, "layer_list": [
    {"layer_id": 1, "device_count": 3, "device_list": [
      {"device_id": 2, "device_expert": [1, 3]}, {"device_id": 0, "device_expert": [3, 2]},
      {"device_id": 1, "device_expert": [1, 0]}]},
    {"layer_id": 0, "device_count": 3, "device_list": [
      {"device_id": 0, "device_expert": [0, 1]}, {"device_id": 1, "device_expert": [2, 3]},
      {"device_id": 2, "device_expert": [0, 2]}]}]})");
  EXPECT_EQ(read_placement(p, kTopo, 4), sample());
  // Without ids, the list order places them (as vllm-ascend's own tests write it).
  const auto q = d.write("w.json", R"({"moe_layer_count": 1, "layer_list": [{"device_count": 3,
    "device_list": [{"device_expert": [0, 1]}, {"device_expert": [2, 3]},
                    {"device_expert": [0, 2]}]}]})");
  EXPECT_EQ(read_placement(q, kTopo, 4), Placement(1, 6, 4, {0, 1, 2, 3, 0, 2}));
}

TEST(PlacementIo, RoundTripsBothFormats) {
  ScratchDir d;
  for (PlacementFormat f : {PlacementFormat::kSglang, PlacementFormat::kVllmAscend}) {
    const std::string path = d.path(std::string(placement_format_name(f)) + ".json");
    write_placement(path, sample(), kTopo, f);
    EXPECT_EQ(read_placement(path, kTopo, 4, 2), sample()) << placement_format_name(f);
    const nlohmann::json j = placement_to_json(sample(), kTopo, f);
    EXPECT_EQ(placement_from_json(j, kTopo, 4), sample());
  }
  const nlohmann::json v = placement_to_json(sample(), kTopo, PlacementFormat::kVllmAscend);
  EXPECT_EQ(v["moe_layer_count"], 2);
  EXPECT_EQ(v["layer_list"][1]["device_list"][2]["device_expert"], nlohmann::json({1, 3}));
  EXPECT_EQ(v["layer_list"][1]["device_count"], 3);
}

TEST(PlacementIo, WholeFloatIdsAreRead) {
  ScratchDir d;
  const auto p = d.write("f.json", R"({"physical_to_logical_map": [[0.0,1,2,3.0,0,2]]})");
  const Placement got = read_placement(p, kTopo, 4);
  EXPECT_EQ(std::vector<ExpertId>(got.layer(0).begin(), got.layer(0).end()),
            (std::vector<ExpertId>{0, 1, 2, 3, 0, 2}));
}

TEST(PlacementIo, BadInputMessages) {
  ScratchDir d;
  auto err = [&](const std::string& text, int layers = 0) {
    const auto p = d.write("bad.json", text);
    return input_error([&] { read_placement(p, kTopo, 4, layers); });
  };
  EXPECT_CONTAINS(input_error([&] { read_placement(d.path("none.json"), kTopo, 4); }),
                  "none.json: file not found");
  EXPECT_CONTAINS(err("{\"physical_to_logical_map\": [[0,1"), "malformed JSON");
  EXPECT_CONTAINS(err(R"({"map": []})"), "missing key");
  EXPECT_CONTAINS(err(R"([1, 2])"), "expected a JSON object, got a array");
  // Wrong shape: slots per layer and layers.
  EXPECT_CONTAINS(err(R"({"physical_to_logical_map": [[0,1,2,3,0]]})"),
                  "layer 0 has 5 slots, the topology has 3 ranks x 2 slots = 6");
  EXPECT_CONTAINS(err(R"({"physical_to_logical_map": [[0,1,2,3,0,2]]})", 2),
                  "placement has 1 layers, expected 2");
  // Ids out of range, not integers; missing experts; a rank holding two replicas.
  EXPECT_CONTAINS(err(R"({"physical_to_logical_map": [[0,1,2,3,0,2],[3,2,1,9,1,3]]})"),
                  "layer 1, rank 1, slot 1 (physical slot 3): expert id 9 is out of range [0, 4)");
  EXPECT_CONTAINS(err(R"({"physical_to_logical_map": [[0,1,2,-1,0,2]]})"),
                  "expert id -1 is out of range");
  EXPECT_CONTAINS(err(R"({"physical_to_logical_map": [[0,1,2,"a",0,2]]})"),
                  "physical slot 3): expert id is not an integer (\"a\")");
  // Whole floats are ids (3.0 from a float array); one beyond int64's range is out of range,
  // never converted (the fuzzer's finding: 1e38 converted to int64 is undefined).
  EXPECT_CONTAINS(err(R"({"physical_to_logical_map": [[0,1,2,1e38,0,2]]})"),
                  "physical slot 3): expert id 1e+38 is out of range [0, 4)");
  EXPECT_CONTAINS(err(R"({"physical_to_logical_map": [[0,1,2,-1e38,0,2]]})"),
                  "expert id -1e+38 is out of range");
  EXPECT_CONTAINS(err(R"({"physical_to_logical_map": [[0,1,2,2.5,0,2]]})"),
                  "expert id is not an integer (2.5)");
  EXPECT_CONTAINS(err(R"({"physical_to_logical_map": [[0,1,2,1,0,2]]})"),
                  "layer 0: expert 3 has no replica");
  EXPECT_CONTAINS(err(R"({"physical_to_logical_map": [[0,0,1,2,3,2]]})"),
                  "layer 0: rank 0 holds two replicas of expert 0");
  // vllm-ascend shape errors.
  EXPECT_CONTAINS(err(R"({"moe_layer_count": 1, "layer_list": [{"device_list": [
                     {"device_expert": [0, 1]}, {"device_expert": [2, 3]}]}]})"),
                  "layer 0 has 2 devices, the topology has 3 ranks");
  EXPECT_CONTAINS(err(R"({"moe_layer_count": 1, "layer_list": [{"device_list": [
                     {"device_expert": [0, 1]}, {"device_expert": [2, 3, 1]},
                     {"device_expert": [0, 2]}]}]})"),
                  "layer 0, rank 1 has 3 experts, the topology has 2 slots per rank");
  EXPECT_CONTAINS(err(R"({"moe_layer_count": 3, "layer_list": [{"device_list": [
                     {"device_expert": [0, 1]}, {"device_expert": [2, 3]},
                     {"device_expert": [0, 2]}]}]})"),
                  "moe_layer_count 3 does not match the 1 entries");
  EXPECT_CONTAINS(err(R"({"layer_list": [{"device_list": [
                     {"device_id": 0, "device_expert": [0, 1]},
                     {"device_id": 0, "device_expert": [2, 3]},
                     {"device_expert": [0, 2]}]}]})"),
                  "device_id 0 appears twice");
  EXPECT_CONTAINS(err(R"({"layer_list": [{"device_count": 2, "device_list": [
                     {"device_expert": [0, 1]}, {"device_expert": [2, 3]},
                     {"device_expert": [0, 2]}]}]})"),
                  "device_count 2 does not match the 3 entries");
  // The topology itself must hold the experts.
  EXPECT_CONTAINS(
      input_error([&] { placement_from_json(nlohmann::json::object(), Topology::make(1, 2), 4); }),
      "is smaller than the 4 experts");
}

}  // namespace
}  // namespace swiftbalancer

namespace swiftbalancer {
namespace {

TEST(PlacementRobustness, TruncatedAndCorruptedFilesNeverCrash) {
  testing_io::ScratchDir d;
  for (PlacementFormat f : {PlacementFormat::kSglang, PlacementFormat::kVllmAscend}) {
    const nlohmann::json j = placement_to_json(sample(), kTopo, f);
    const std::string full = j.dump();
    auto attempt = [&](const std::string& bytes) {
      const std::string p = d.write("x.json", bytes);
      try {
        EXPECT_TRUE(validate_placement(read_placement(p, kTopo, 4), kTopo).ok());
      } catch (const InputError&) {
      }
    };
    for (std::size_t n = 0; n < full.size(); ++n) attempt(full.substr(0, n));
    for (std::size_t i = 0; i < full.size(); ++i)
      for (char c : {'0', '3', '9', '-', '"', ']', '{'}) {
        std::string s = full;
        s[i] = c;
        attempt(s);
      }
  }
}

}  // namespace
}  // namespace swiftbalancer
