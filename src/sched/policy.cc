#include "sched/policy.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <utility>
#include <fmt/format.h>
#include <toml++/toml.h>

#include "core/bytes.h"
#include "store/model_name.h"

namespace resident::sched {
namespace {

bool Less(const KeepAlive& a, const KeepAlive& b) {
  if (a.forever) return false;
  if (b.forever) return true;
  return a.duration < b.duration;
}

std::string Where(const std::string& source, const toml::source_region& r) {
  return fmt::format("{}:{}:{}", source, r.begin.line, r.begin.column);
}

Result<KeepAlive> KeepAliveFromNode(const toml::node& node, const std::string& source, std::string_view key,
                                    bool allow_auto = false) {
  if (allow_auto && node.is_string() && *node.value<std::string>() == "auto") return KeepAlive::Auto();
  KeepAliveInput in;
  if (auto s = node.value<std::string>(); s && node.is_string()) {
    in.kind = KeepAliveInput::Kind::kString;
    in.text = *s;
  } else if (node.is_integer() || node.is_floating_point()) {
    in.kind = KeepAliveInput::Kind::kNumber;
    in.number = *node.value<double>();
  } else {
    return Status::InvalidArgument(fmt::format("{}: {} must be a duration such as \"5m\" or a number of seconds{}",
                                               Where(source, node.source()), key, allow_auto ? ", or \"auto\"" : ""));
  }
  auto ka = ParseKeepAlive(in);
  if (!ka.ok()) {
    return Status::InvalidArgument(fmt::format("{}: {}: {}", Where(source, node.source()), key, ka.status().message()));
  }
  return *ka;
}

Result<ColdStartCost> ColdStartCostFromNode(const toml::node& node, const std::string& source) {
  Result<ColdStartCost> c = Status::InvalidArgument("not a string or number");
  if (node.is_string()) c = ParseColdStartCost(*node.value<std::string>());
  else if (node.is_integer() || node.is_floating_point()) c = ParseColdStartCost(fmt::format("{}", *node.value<double>()));
  if (!c.ok()) {
    return Status::InvalidArgument(fmt::format(
        "{}: cold_start_cost must be a multiple of the load time such as \"300x\" or a duration such as \"10m\" ({})",
        Where(source, node.source()), c.status().message()));
  }
  return c;
}

Status UnknownKey(const std::string& source, const toml::key& key, std::string_view where) {
  return Status::InvalidArgument(fmt::format("{}: unknown key \"{}\" in {}", Where(source, key.source()), key.str(), where));
}

}  // namespace

std::string PolicyModelKey(std::string_view model_name) {
  if (auto name = store::ParseModelName(model_name); name.ok()) return name->Display();
  // Not a model name (no request could name it): compared as it is, lowercased.
  std::string key(model_name);
  for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return key;
}

const ModelPolicy* Policy::Find(std::string_view model_name) const {
  auto it = models.find(PolicyModelKey(model_name));
  return it == models.end() ? nullptr : &it->second;
}

double ColdStartCost::SecondsFor(double load_s, uint64_t bytes) const {
  double s = 0;
  if (load_time_multiple) s = std::max(s, *load_time_multiple * std::max(0.0, load_s));
  if (idle) s = std::max(s, std::chrono::duration<double>(*idle).count());
  if (gb_seconds) s = std::max(s, *gb_seconds / (static_cast<double>(std::max<uint64_t>(bytes, 1)) / 1e9));
  return s;
}

std::string ColdStartCost::ToString() const {
  std::string out;
  auto add = [&](const std::string& part) { out += (out.empty() ? "" : ",") + part; };
  if (idle) add(FormatGoDuration(*idle));
  if (load_time_multiple) add(fmt::format("{:g}x", *load_time_multiple));
  if (gb_seconds) add(fmt::format("{:g}GBs", *gb_seconds));
  return out;
}

namespace {

// One form of ParseColdStartCost, into c.
Status ParseCostPart(const std::string& t, ColdStartCost& c) {
  auto number = [&](size_t suffix, double* v) {
    char* end = nullptr;
    *v = std::strtod(t.c_str(), &end);
    // At least one character of number: "x" alone is no multiple.
    return !t.empty() && end != t.c_str() && end == t.c_str() + t.size() - suffix && *v >= 0 && *v <= 1e12;
  };
  double v = 0;
  if (t.size() > 3 && t.compare(t.size() - 3, 3, "GBs") == 0) {
    if (!number(3, &v)) return Status::InvalidArgument("\"" + t + "\" is not an amount such as \"500GBs\"");
    c.gb_seconds = v;
    return Status::Ok();
  }
  if (!t.empty() && (t.back() == 'x' || t.back() == 'X')) {
    if (!number(1, &v)) return Status::InvalidArgument("\"" + t + "\" is not a multiple such as \"300x\"");
    c.load_time_multiple = v;
    return Status::Ok();
  }
  if (number(0, &v)) {
    c.idle = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(v));
    return Status::Ok();
  }
  auto d = ParseGoDuration(t);
  if (!d.ok()) return d.status();
  if (*d < Duration::zero()) return Status::InvalidArgument("a cold start cost cannot be negative");
  c.idle = *d;
  return Status::Ok();
}

}  // namespace

Result<ColdStartCost> ParseColdStartCost(std::string_view text) {
  ColdStartCost c;
  c.load_time_multiple.reset();
  c.idle.reset();
  std::string all(text);
  size_t pos = 0;
  while (true) {
    size_t comma = all.find(',', pos);
    std::string part = all.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    while (!part.empty() && part.front() == ' ') part.erase(0, 1);
    while (!part.empty() && part.back() == ' ') part.pop_back();
    RESIDENT_RETURN_IF_ERROR(ParseCostPart(part, c));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return c;
}

ColdStartCost Policy::ColdStartCostFor(std::string_view model_name) const {
  const ModelPolicy* p = Find(model_name);
  return p && p->cold_start_cost ? *p->cold_start_cost : cold_start_cost;
}

std::optional<KeepAlive> Policy::SleepAfterFor(std::string_view model_name) const {
  const ModelPolicy* p = Find(model_name);
  return p && p->sleep_after ? p->sleep_after : sleep_after;
}

bool Policy::Pinned(std::string_view model_name) const {
  const ModelPolicy* p = Find(model_name);
  return p != nullptr && p->pin;
}

KeepAlive Policy::DefaultFor(std::string_view model_name) const {
  const ModelPolicy* p = Find(model_name);
  return Clamp(p && p->keep_alive ? *p->keep_alive : default_keep_alive);
}

KeepAlive Policy::Clamp(KeepAlive k) const {
  if (k.automatic) return k;  // the clamps bound the learner's keep times instead
  if (min_keep_alive && Less(k, *min_keep_alive)) k = *min_keep_alive;
  if (max_keep_alive && Less(*max_keep_alive, k)) k = *max_keep_alive;
  return k;
}

Result<Policy> ParsePolicy(std::string_view text, const std::string& source, KeepAlive default_keep_alive,
                           bool env_default_wins) {
  Policy policy;
  policy.default_keep_alive = default_keep_alive;
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(fmt::format("{}: {}", Where(source, e.source()), e.description()));
  }
  toml::source_region min_at{}, max_at{};  // where the clamps are, for the check at the end
  // Each model's entry so far: PolicyModelKey -> (the name as written, where).
  std::map<std::string, std::pair<std::string, toml::source_region>> entry_at;
  for (auto&& [k, node] : root) {
    std::string key(k.str());
    if (key == "min_keep_alive" || key == "max_keep_alive") {
      auto ka = KeepAliveFromNode(node, source, key);
      if (!ka.ok()) return ka.status();
      (key == "min_keep_alive" ? policy.min_keep_alive : policy.max_keep_alive) = *ka;
      (key == "min_keep_alive" ? min_at : max_at) = k.source();
    } else if (key == "keep_alive") {
      auto ka = KeepAliveFromNode(node, source, key, /*allow_auto=*/true);
      if (!ka.ok()) return ka.status();
      policy.file_keep_alive = *ka;
      if (!env_default_wins) policy.default_keep_alive = *ka;
    } else if (key == "cold_start_cost") {
      auto c = ColdStartCostFromNode(node, source);
      if (!c.ok()) return c.status();
      policy.cold_start_cost = *c;
    } else if (key == "sleep_after") {
      auto sa = KeepAliveFromNode(node, source, key);
      if (!sa.ok()) return sa.status();
      policy.sleep_after = *sa;
    } else if (key == "memory_limit") {
      auto s = node.value<std::string>();
      auto bytes = node.is_string() ? ParseBytes(*s) : Result<uint64_t>(Status::InvalidArgument("not a string"));
      if (!bytes.ok()) {
        return Status::InvalidArgument(fmt::format("{}: memory_limit must be a size such as \"12GiB\"",
                                                   Where(source, node.source())));
      }
      policy.memory_limit = *bytes;
    } else if (key == "models") {
      const toml::table* models = node.as_table();
      if (!models) return Status::InvalidArgument(fmt::format("{}: models must be a table", Where(source, node.source())));
      for (auto&& [name, entry] : *models) {
        const toml::table* t = entry.as_table();
        std::string model(name.str());
        if (!t) {
          return Status::InvalidArgument(
              fmt::format("{}: [models.\"{}\"] must be a table", Where(source, entry.source()), model));
        }
        auto parsed = store::ParseModelName(model);
        if (!parsed.ok()) {
          return Status::InvalidArgument(
              fmt::format("{}: [models.\"{}\"]: {}", Where(source, name.source()), model, parsed.status().message()));
        }
        const std::string model_key = parsed->Display();
        if (auto seen = entry_at.find(model_key); seen != entry_at.end()) {
          // toml++ hands the table's keys over sorted: the error goes to the later line.
          const auto& [other, other_at] = seen->second;
          const bool later = name.source().begin.line > other_at.begin.line;
          return Status::InvalidArgument(fmt::format(
              "{}: [models.\"{}\"] names the same model as [models.\"{}\"] (line {})",
              Where(source, later ? name.source() : other_at), later ? model : other, later ? other : model,
              later ? other_at.begin.line : name.source().begin.line));
        }
        entry_at[model_key] = {model, name.source()};
        ModelPolicy mp;
        for (auto&& [fk, fnode] : *t) {
          std::string field(fk.str());
          if (field == "keep_alive") {
            auto ka = KeepAliveFromNode(fnode, source, "keep_alive", /*allow_auto=*/true);
            if (!ka.ok()) return ka.status();
            mp.keep_alive = *ka;
          } else if (field == "pin" || field == "preload") {
            if (!fnode.is_boolean()) {
              return Status::InvalidArgument(
                  fmt::format("{}: {} must be true or false", Where(source, fnode.source()), field));
            }
            (field == "pin" ? mp.pin : mp.preload) = *fnode.value<bool>();
          } else if (field == "cold_start_cost") {
            auto c = ColdStartCostFromNode(fnode, source);
            if (!c.ok()) return c.status();
            mp.cold_start_cost = *c;
          } else if (field == "sleep_after") {
            auto sa = KeepAliveFromNode(fnode, source, "sleep_after");
            if (!sa.ok()) return sa.status();
            mp.sleep_after = *sa;
          } else {
            return UnknownKey(source, fk,
                              "[models.\"" + model + "\"] (known: keep_alive, pin, preload, cold_start_cost, sleep_after)");
          }
        }
        policy.models[model_key] = mp;
      }
    } else {
      return UnknownKey(source, k, "the top level (known: keep_alive, min_keep_alive, max_keep_alive, memory_limit, cold_start_cost, sleep_after, models)");
    }
  }
  if (policy.min_keep_alive && policy.max_keep_alive && Less(*policy.max_keep_alive, *policy.min_keep_alive)) {
    return Status::InvalidArgument(fmt::format("{}: max_keep_alive ({}) is below min_keep_alive ({}, line {})",
                                               Where(source, max_at), policy.max_keep_alive->ToString(),
                                               policy.min_keep_alive->ToString(), min_at.begin.line));
  }
  return policy;
}

Result<Policy> LoadPolicyFile(const std::string& path, KeepAlive default_keep_alive, bool env_default_wins) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Status::NotFound("config file \"" + path + "\" does not exist");
  }
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return ParsePolicy(text, path, default_keep_alive, env_default_wins);
}

}  // namespace resident::sched
