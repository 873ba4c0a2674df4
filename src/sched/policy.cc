#include "sched/policy.h"

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

Result<KeepAlive> KeepAliveFromNode(const toml::node& node, const std::string& source, std::string_view key) {
  KeepAliveInput in;
  if (auto s = node.value<std::string>(); s && node.is_string()) {
    in.kind = KeepAliveInput::Kind::kString;
    in.text = *s;
  } else if (node.is_integer() || node.is_floating_point()) {
    in.kind = KeepAliveInput::Kind::kNumber;
    in.number = *node.value<double>();
  } else {
    return Status::InvalidArgument(fmt::format("{}: {} must be a duration such as \"5m\" or a number of seconds",
                                               Where(source, node.source()), key));
  }
  auto ka = ParseKeepAlive(in);
  if (!ka.ok()) {
    return Status::InvalidArgument(fmt::format("{}: {}: {}", Where(source, node.source()), key, ka.status().message()));
  }
  return *ka;
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

bool Policy::Pinned(std::string_view model_name) const {
  const ModelPolicy* p = Find(model_name);
  return p != nullptr && p->pin;
}

KeepAlive Policy::DefaultFor(std::string_view model_name) const {
  const ModelPolicy* p = Find(model_name);
  return Clamp(p && p->keep_alive ? *p->keep_alive : default_keep_alive);
}

KeepAlive Policy::Clamp(KeepAlive k) const {
  if (min_keep_alive && Less(k, *min_keep_alive)) k = *min_keep_alive;
  if (max_keep_alive && Less(*max_keep_alive, k)) k = *max_keep_alive;
  return k;
}

Result<Policy> ParsePolicy(std::string_view text, const std::string& source, KeepAlive default_keep_alive) {
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
            auto ka = KeepAliveFromNode(fnode, source, "keep_alive");
            if (!ka.ok()) return ka.status();
            mp.keep_alive = *ka;
          } else if (field == "pin") {
            if (!fnode.is_boolean()) {
              return Status::InvalidArgument(fmt::format("{}: pin must be true or false", Where(source, fnode.source())));
            }
            mp.pin = *fnode.value<bool>();
          } else {
            return UnknownKey(source, fk, "[models.\"" + model + "\"] (known: keep_alive, pin)");
          }
        }
        policy.models[model_key] = mp;
      }
    } else {
      return UnknownKey(source, k, "the top level (known: min_keep_alive, max_keep_alive, memory_limit, models)");
    }
  }
  if (policy.min_keep_alive && policy.max_keep_alive && Less(*policy.max_keep_alive, *policy.min_keep_alive)) {
    return Status::InvalidArgument(fmt::format("{}: max_keep_alive ({}) is below min_keep_alive ({}, line {})",
                                               Where(source, max_at), policy.max_keep_alive->ToString(),
                                               policy.min_keep_alive->ToString(), min_at.begin.line));
  }
  return policy;
}

Result<Policy> LoadPolicyFile(const std::string& path, KeepAlive default_keep_alive) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Status::NotFound("config file \"" + path + "\" does not exist");
  }
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return ParsePolicy(text, path, default_keep_alive);
}

}  // namespace resident::sched
