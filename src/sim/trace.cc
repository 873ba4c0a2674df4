#include "sim/trace.h"

#include <utility>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <random>
#include <sstream>
#include <string_view>

namespace resident::sim {
namespace {

std::vector<std::string_view> SplitCsv(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t comma = line.find(',', start);
    if (comma == std::string_view::npos) {
      out.push_back(line.substr(start));
      return out;
    }
    out.push_back(line.substr(start, comma - start));
    start = comma + 1;
  }
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '"')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '"')) s.remove_suffix(1);
  return s;
}

bool ParseDouble(std::string_view s, double* out) {
  s = Trim(s);
  if (s.empty()) return false;
  // std::from_chars for double is in libstdc++ 11+.
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool ParseInt(std::string_view s, long long* out) {
  s = Trim(s);
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::vector<std::string_view> Lines(const std::string& text) {
  std::vector<std::string_view> lines;
  std::string_view all(text);
  size_t start = 0;
  while (start < all.size()) {
    size_t nl = all.find('\n', start);
    if (nl == std::string_view::npos) nl = all.size();
    lines.push_back(all.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

Status LineError(const std::string& source, size_t line, const std::string& why) {
  return Status::InvalidArgument(source + ":" + std::to_string(line) + ": " + why);
}

std::string AzureModelName(std::string_view hash) { return "fn-" + std::string(hash.substr(0, 8)); }

Result<Trace> ParseAzure(const std::vector<std::string_view>& lines, const std::string& source,
                         const TraceOptions& options) {
  Trace trace;
  trace.format = "azure";
  std::mt19937_64 rng(options.seed);
  std::uniform_real_distribution<double> within(0.0, 60.0);
  size_t minutes = SplitCsv(lines[0]).size() - 3;
  trace.duration_s = 60.0 * static_cast<double>(minutes);
  for (size_t i = 1; i < lines.size(); ++i) {
    if (Trim(lines[i]).empty()) continue;
    auto fields = SplitCsv(lines[i]);
    if (fields.size() < 4) return LineError(source, i + 1, "expected HashFunction,HashApp,HashOwner,minute_1,...");
    std::string model = AzureModelName(Trim(fields[0]));
    if (std::find(trace.models.begin(), trace.models.end(), model) != trace.models.end()) {
      model += "-" + std::to_string(i);  // two functions sharing a hash prefix stay apart
    }
    trace.models.push_back(model);
    for (size_t m = 3; m < fields.size(); ++m) {
      long long n = 0;
      if (!ParseInt(fields[m], &n) || n < 0) {
        return LineError(source, i + 1, "minute " + std::to_string(m - 2) + ": not a count: \"" +
                                            std::string(fields[m]) + "\"");
      }
      double base = 60.0 * static_cast<double>(m - 3);
      for (long long k = 0; k < n; ++k) {
        trace.requests.push_back({base + within(rng), model, options.azure_prompt_tokens, options.azure_output_tokens});
      }
    }
  }
  return trace;
}

Result<Trace> ParseRequestCsv(const std::vector<std::string_view>& lines, const std::string& source) {
  Trace trace;
  trace.format = "csv";
  bool first = true;  // the first line that is not a comment may be a header
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string_view line = Trim(lines[i]);
    if (line.empty() || line.front() == '#') continue;
    auto fields = SplitCsv(line);
    double t = 0;
    if (std::exchange(first, false) && (fields.empty() || !ParseDouble(fields[0], &t))) continue;  // a header
    if (fields.size() != 4) return LineError(source, i + 1, "expected timestamp_s,model,prompt_tokens,output_tokens");
    long long prompt = 0, output = 0;
    if (!ParseDouble(fields[0], &t) || t < 0) return LineError(source, i + 1, "bad timestamp_s");
    std::string model(Trim(fields[1]));
    if (model.empty()) return LineError(source, i + 1, "empty model");
    if (!ParseInt(fields[2], &prompt) || prompt < 0) return LineError(source, i + 1, "bad prompt_tokens");
    if (!ParseInt(fields[3], &output) || output < 0) return LineError(source, i + 1, "bad output_tokens");
    if (std::find(trace.models.begin(), trace.models.end(), model) == trace.models.end()) trace.models.push_back(model);
    trace.requests.push_back({t, model, static_cast<int>(prompt), static_cast<int>(output)});
  }
  return trace;
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Result<Trace> ParseTrace(const std::string& text, const std::string& source, const TraceOptions& options) {
  auto lines = Lines(text);
  if (lines.empty()) return Status::InvalidArgument(source + ": empty trace");
  Result<Trace> trace = Trim(lines[0]).starts_with("HashFunction") ? ParseAzure(lines, source, options)
                                                                    : ParseRequestCsv(lines, source);
  if (!trace.ok()) return trace;
  auto& reqs = trace->requests;
  std::stable_sort(reqs.begin(), reqs.end(), [](const TraceRequest& a, const TraceRequest& b) { return a.t < b.t; });
  if (!reqs.empty()) trace->duration_s = std::max(trace->duration_s, reqs.back().t);
  return trace;
}

Result<Trace> LoadTrace(const std::string& path, const TraceOptions& options) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  auto trace = ParseTrace(*text, path, options);
  if (trace.ok() && trace->format == "azure") RESIDENT_RETURN_IF_ERROR(LoadSidecars(path, *trace));
  return trace;
}

Status LoadSidecars(const std::string& inv_path, Trace& trace) {
  const std::string suffix = "_inv.csv";
  if (!inv_path.ends_with(suffix)) return Status::Ok();
  const std::string stem = inv_path.substr(0, inv_path.size() - suffix.size());
  // Model name by function hash prefix, and app hash of each function (memory is per app).
  auto run = ReadFile(stem + "_run.csv");
  std::map<std::string, std::string> app_of_model;
  if (run.ok()) {
    auto lines = Lines(*run);
    for (size_t i = 1; i < lines.size(); ++i) {
      auto f = SplitCsv(Trim(lines[i]));
      if (f.size() < 5) continue;
      double avg_ms = 0;
      if (!ParseDouble(f[4], &avg_ms)) return LineError(stem + "_run.csv", i + 1, "bad Average");
      std::string model = AzureModelName(Trim(f[0]));
      trace.hints[model].service_s = avg_ms / 1000.0;
      app_of_model[model] = std::string(Trim(f[1]));
    }
  }
  auto mem = ReadFile(stem + "_mem.csv");
  if (mem.ok()) {
    std::map<std::string, uint64_t> app_bytes;
    auto lines = Lines(*mem);
    for (size_t i = 1; i < lines.size(); ++i) {
      auto f = SplitCsv(Trim(lines[i]));
      if (f.size() < 4) continue;
      double mb = 0;
      if (!ParseDouble(f[3], &mb)) return LineError(stem + "_mem.csv", i + 1, "bad AverageAllocatedMb");
      app_bytes[std::string(Trim(f[0]))] = static_cast<uint64_t>(mb * 1e6);
    }
    for (const auto& [model, app] : app_of_model) {
      auto it = app_bytes.find(app);
      if (it != app_bytes.end()) trace.hints[model].bytes = it->second;
    }
  }
  return Status::Ok();
}

Trace Slice(const Trace& trace, double from_s, double minutes, size_t limit) {
  Trace out;
  out.format = trace.format;
  out.hints = trace.hints;
  double to = minutes > 0 ? from_s + minutes * 60.0 : trace.duration_s + 1e-9;
  for (const auto& r : trace.requests) {
    if (r.t < from_s || r.t >= to) continue;
    if (limit && out.requests.size() >= limit) break;
    TraceRequest c = r;
    c.t -= from_s;
    out.requests.push_back(c);
    if (std::find(out.models.begin(), out.models.end(), c.model) == out.models.end()) out.models.push_back(c.model);
  }
  out.duration_s = minutes > 0 && !limit ? minutes * 60.0
                   : out.requests.empty() ? 0
                                          : out.requests.back().t;
  if (!limit && minutes <= 0) out.duration_s = std::max(0.0, trace.duration_s - from_s);
  return out;
}

}  // namespace resident::sim
