#include "sched/learner_state.h"

#include <fmt/format.h>

#include <cmath>
#include <sstream>

#include "core/atomic_file.h"

namespace resident::sched {
namespace {

constexpr size_t kMaxModels = 100000;
constexpr size_t kMaxFileBytes = 256u << 20;

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 300) return false;
  for (unsigned char c : name) {
    if (c <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

// A finite number >= 0 (or -1 where allowed), the whole token.
bool Number(const std::string& token, double* out, bool allow_minus_one = false) {
  char* end = nullptr;
  double v = std::strtod(token.c_str(), &end);
  if (token.empty() || end != token.c_str() + token.size() || !std::isfinite(v)) return false;
  if (v < 0 && !(allow_minus_one && v == -1)) return false;
  *out = v;
  return true;
}

}  // namespace

std::string FormatLearnerState(const std::map<std::string, UsageHistory>& histories) {
  std::string out = "resident-learner 1\n";
  for (const auto& [name, h] : histories) {
    if (!ValidName(name)) continue;
    out += fmt::format("model {} {} {} {:.17g} {}\n", name, h.requests, h.bytes, h.load_s,
                       h.idle_since ? fmt::format("{:.17g}", *h.idle_since) : std::string("-"));
    for (const auto& g : h.gaps) out += fmt::format("gap {:.17g} {:.17g} {:.17g}\n", g.end_s, g.seconds, g.prev_s);
  }
  return out;
}

Result<std::map<std::string, UsageHistory>> ParseLearnerState(const std::string& text) {
  std::map<std::string, UsageHistory> out;
  std::istringstream in(text);
  std::string line;
  size_t n = 0;
  UsageHistory* current = nullptr;
  auto bad = [&](const std::string& why) { return Status::InvalidArgument(fmt::format("line {}: {}", n, why)); };
  while (std::getline(in, line)) {
    ++n;
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string t; words >> t;) w.push_back(t);
    if (n == 1) {
      if (w.size() != 2 || w[0] != "resident-learner") return bad("not a resident learner file");
      if (w[1] != "1") return bad("version " + w[1] + " is not the version 1 this resident reads");
      continue;
    }
    if (w.empty()) return bad("an empty line");
    if (w[0] == "model") {
      if (w.size() != 6 || !ValidName(w[1])) return bad("a model line is: model NAME REQUESTS BYTES LOAD_S IDLE_SINCE");
      if (out.count(w[1])) return bad("model " + w[1] + " twice");
      if (out.size() >= kMaxModels) return bad("more than 100000 models");
      double requests = 0, bytes = 0, load_s = 0, idle = 0;
      if (!Number(w[2], &requests) || !Number(w[3], &bytes) || !Number(w[4], &load_s) ||
          (w[5] != "-" && !Number(w[5], &idle)) || requests > 1e18 || bytes > 1e18) {
        return bad("a number of the model line is not a finite number >= 0");
      }
      current = &out[w[1]];
      current->requests = static_cast<uint64_t>(requests);
      current->bytes = static_cast<uint64_t>(bytes);
      current->load_s = load_s;
      if (w[5] != "-") current->idle_since = idle;
    } else if (w[0] == "gap") {
      if (current == nullptr) return bad("a gap before any model line");
      UsageHistory::Gap g;
      if (w.size() != 4 || !Number(w[1], &g.end_s) || !Number(w[2], &g.seconds) || !Number(w[3], &g.prev_s, true)) {
        return bad("a gap line is: gap END_S SECONDS PREV_S, finite numbers >= 0 (PREV_S may be -1)");
      }
      if (current->gaps.size() >= UsageHistory::kMaxGaps) return bad("more gaps than a model keeps");
      current->gaps.push_back(g);
    } else {
      return bad("unknown record \"" + w[0].substr(0, 40) + "\"");
    }
  }
  if (n == 0) return Status::InvalidArgument("line 1: the file is empty");
  return out;
}

Status SaveLearnerState(const std::string& path, const std::map<std::string, UsageHistory>& histories) {
  return WriteFileAtomically(path, FormatLearnerState(histories));
}

Result<std::map<std::string, UsageHistory>> LoadLearnerState(const std::string& path) {
  auto text = ReadSmallFile(path, kMaxFileBytes);
  if (!text.ok()) return text.status();
  auto parsed = ParseLearnerState(*text);
  if (!parsed.ok()) return Status::InvalidArgument(path + ": " + parsed.status().message());
  return parsed;
}

}  // namespace resident::sched
