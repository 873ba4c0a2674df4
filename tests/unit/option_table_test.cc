// One table for options: a Modelfile PARAMETER (checked at create time) and a request's
// `options` (checked at every request) accept exactly the same values, so that no model can be
// created with a value every later request refuses.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "api/requests.h"
#include "core/option_table.h"
#include "store/modelfile.h"

namespace resident {
namespace {

using nlohmann::json;

bool RequestAccepts(const std::string& name, const json& value) {
  return api::DecodeOptionsJson(json{{std::string(name), value}}, api::RequestDefaults{}).ok();
}

bool ModelfileAccepts(const std::string& name, const std::string& value) {
  return store::ValidateParameter(name, value).ok();
}

// Also what a model's parameters go through at every request.
bool ResolveAccepts(const std::string& name, const std::string& value) {
  return api::ResolveOptions(api::ModelOptions{}, {{name, value}}, api::RequestDefaults{}).ok();
}

TEST(OptionTableTest, ModelfileAndRequestsAcceptTheSameValues) {
  for (const OptionSpec& spec : OptionTable()) {
    const std::string name(spec.name);
    if (spec.type == OptionType::kString || spec.type == OptionType::kBool) continue;
    const double step = spec.type == OptionType::kInt ? 1 : 0.5;
    for (double v : {spec.min, spec.max, spec.min - step, spec.max + step, (spec.min + spec.max) / 2}) {
      if (spec.type == OptionType::kInt) v = std::floor(v);
      json as_json = spec.type == OptionType::kInt ? json(static_cast<int64_t>(v)) : json(v);
      std::string text = as_json.dump();
      const bool in_range = v >= spec.min && v <= spec.max;
      EXPECT_EQ(ModelfileAccepts(name, text), in_range) << name << " " << text;
      EXPECT_EQ(RequestAccepts(name, as_json), in_range) << name << " " << text;
      EXPECT_EQ(ResolveAccepts(name, text), in_range) << name << " " << text;
    }
    if (spec.type == OptionType::kInt) {
      EXPECT_FALSE(ModelfileAccepts(name, "1.5")) << name;
      EXPECT_FALSE(RequestAccepts(name, 1.5)) << name;
    }
  }
  // Each value the audit found accepted by create and refused by every request.
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"seed", "-7"}, {"temperature", "150"}, {"num_batch", "2000000"}, {"num_thread", "2000"},
           {"num_gpu", "200000"}, {"repeat_penalty", "200"}, {"presence_penalty", "-101"},
           {"frequency_penalty", "101"}, {"presence_penalty", "100.5"}}) {
    EXPECT_FALSE(ModelfileAccepts(name, value)) << name << " " << value;
    EXPECT_FALSE(RequestAccepts(name, json::parse(value))) << name << " " << value;
  }
}

TEST(OptionTableTest, OptionsResidentDoesNotApplyAreAcceptedInBothPlaces) {
  int ignored = 0;
  for (const OptionSpec& spec : OptionTable()) {
    if (spec.applied) continue;
    ++ignored;
    const std::string name(spec.name);
    EXPECT_TRUE(ModelfileAccepts(name, "1")) << name;
    EXPECT_TRUE(RequestAccepts(name, 1)) << name;
    EXPECT_TRUE(ResolveAccepts(name, "1")) << name;
    EXPECT_FALSE(RequestAccepts(name, "fast")) << name;  // still checked
  }
  EXPECT_EQ(ignored, 5);  // typical_p, num_keep, mirostat, mirostat_tau, mirostat_eta
  EXPECT_FALSE(OptionTable().empty());
  EXPECT_EQ(FindOption("num_gqa"), nullptr);
  EXPECT_FALSE(ModelfileAccepts("num_gqa", "8"));  // a Modelfile names only known options...
  EXPECT_TRUE(RequestAccepts("num_gqa", 8));       // ...a request's unknown ones are logged and ignored
}

}  // namespace
}  // namespace resident
