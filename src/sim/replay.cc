#include "sim/replay.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "core/bytes.h"
#include "sched/policy.h"

namespace resident::sim {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string Prompt(int tokens) {
  static const char* kWords[] = {"the", "cat", "sat", "on", "a", "mat", "and", "looked", "at", "sky"};
  std::string p;
  for (int i = 0; i < std::max(1, tokens); ++i) {
    if (i) p += ' ';
    p += kWords[i % 10];
  }
  return p;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) ;
  return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
}

// A client for the server, carrying the API key when there is one.
std::unique_ptr<httplib::Client> Connect(const std::string& host, int port, const std::string& api_key) {
  auto client = std::make_unique<httplib::Client>(host, port);
  if (!api_key.empty()) client->set_bearer_token_auth(api_key);
  return client;
}

Result<json> GetJson(const std::string& host, int port, const std::string& api_key, const std::string& path) {
  auto owner = Connect(host, port, api_key);
  httplib::Client& client = *owner;
  client.set_connection_timeout(std::chrono::seconds(5));
  client.set_read_timeout(std::chrono::seconds(30));
  auto res = client.Get(path.c_str());
  if (!res) return Status::Unavailable("could not connect to the server at " + host + ":" + std::to_string(port));
  if (res->status != 200) return Status::Internal(path + ": HTTP " + std::to_string(res->status));
  auto j = json::parse(res->body, nullptr, false);
  if (j.is_discarded()) return Status::Internal(path + ": not JSON");
  return j;
}

// One generate request, streamed; fills ttft/total/load/ok/error.
void SendOne(const ReplayOptions& options, const TraceRequest& r, ReplayRequest& out, Clock::time_point sent) {
  auto owner = Connect(options.host, options.port, options.api_key);
  httplib::Client& client = *owner;
  client.set_read_timeout(std::chrono::hours(1));
  json body{{"model", out.model},
            {"prompt", Prompt(r.prompt_tokens)},
            {"stream", true},
            {"options", {{"num_predict", r.output_tokens}, {"seed", 1}}}};
  httplib::Request req;
  req.method = "POST";
  req.path = "/api/generate";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  int status = 0;
  std::string buffer;
  bool first = true;
  req.response_handler = [&](const httplib::Response& res) {
    status = res.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buffer.append(data, n);
    if (status != 200) return true;
    size_t nl;
    while ((nl = buffer.find('\n')) != std::string::npos) {
      auto j = json::parse(buffer.substr(0, nl), nullptr, false);
      buffer.erase(0, nl + 1);
      if (j.is_discarded() || !j.is_object()) continue;
      if (j.contains("error")) {
        out.error = j["error"].is_string() ? j["error"].get<std::string>() : j["error"].dump();
        continue;
      }
      bool done = j.value("done", false);
      if (first && (done || (j.contains("response") && j["response"].is_string() && !j["response"].get<std::string>().empty()))) {
        first = false;
        out.ttft_s = Since(sent);
      }
      if (done) {
        out.load_s = static_cast<double>(j.value("load_duration", int64_t{0})) / 1e9;
        out.ok = out.error.empty();
      }
    }
    return true;
  };
  auto res = client.send(req);
  out.total_s = Since(sent);
  if (!res) {
    out.ok = false;
    out.error = "no connection: " + httplib::to_string(res.error());
  } else if (status != 200) {
    out.ok = false;
    auto j = json::parse(buffer, nullptr, false);
    out.error = !j.is_discarded() && j.is_object() && j.contains("error") ? j["error"].dump()
                                                                         : "HTTP " + std::to_string(status);
  }
}

}  // namespace

Result<std::vector<std::string>> ServerModels(const std::string& host, int port, const std::string& api_key) {
  auto tags = GetJson(host, port, api_key, "/api/tags");
  if (!tags.ok()) return tags.status();
  std::vector<std::string> names;
  if (tags->contains("models") && (*tags)["models"].is_array()) {
    for (const auto& m : (*tags)["models"]) {
      if (m.contains("name") && m["name"].is_string()) names.push_back(m["name"]);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::map<std::string, std::string>> MapModels(const std::vector<std::string>& trace_models,
                                                     const std::string& flag,
                                                     const std::vector<std::string>& server_models) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start < flag.size()) {
    size_t comma = flag.find(',', start);
    if (comma == std::string::npos) comma = flag.size();
    std::string item = flag.substr(start, comma - start);
    start = comma + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size()) {
      return Status::InvalidArgument("--model-map: expected TRACE_MODEL=SERVER_MODEL, got \"" + item + "\"");
    }
    out[item.substr(0, eq)] = item.substr(eq + 1);
  }
  size_t next = 0;
  for (const auto& m : trace_models) {
    if (out.count(m)) continue;
    if (server_models.empty()) {
      return Status::NotFound("the server has no models to map trace model \"" + m + "\" to (see --model-map)");
    }
    out[m] = server_models[next++ % server_models.size()];
  }
  return out;
}

Result<ReplayResult> Replay(const Trace& trace, const ReplayOptions& options) {
  if (options.speed <= 0) return Status::InvalidArgument("--speed must be > 0");
  // The server must answer before anything starts.
  auto first_ps = GetJson(options.host, options.port, options.api_key, "/api/ps");
  if (!first_ps.ok()) return first_ps.status();

  ReplayResult result;
  result.requests.resize(trace.requests.size());
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, int> in_flight;          // by policy key of the server model
  std::map<std::string, double> last_done;       // by policy key: when its last request ended
  std::set<std::string> sent_since_sample;       // by policy key: a request started since the last sample
  std::atomic<int> done_count{0}, sent_count{0}, cold_count{0};
  bool stop = false;
  const auto t0 = Clock::now();

  for (size_t i = 0; i < trace.requests.size(); ++i) {
    auto it = options.model_map.find(trace.requests[i].model);
    result.requests[i].model = it == options.model_map.end() ? trace.requests[i].model : it->second;
    result.requests[i].t_trace = trace.requests[i].t;
  }

  // The sampler: /api/ps every sample_every_s, and the progress bar.
  std::thread sampler([&] {
    auto owner = Connect(options.host, options.port, options.api_key);
    httplib::Client& client = *owner;
    client.set_read_timeout(std::chrono::seconds(10));
    int n = 0;
    while (true) {
      auto res = client.Get("/api/ps");
      PsSample s;
      s.t = Since(t0);
      if (res && res->status == 200) {
        auto j = json::parse(res->body, nullptr, false);
        if (!j.is_discarded() && j.contains("models") && j["models"].is_array()) {
          for (const auto& m : j["models"]) {
            if (!m.contains("name")) continue;
            s.bytes[sched::PolicyModelKey(m["name"].get<std::string>())] = m.value("size", uint64_t{0});
          }
        }
        std::lock_guard<std::mutex> lock(mu);
        if (!result.samples.empty()) {
          double dt = s.t - result.samples.back().t;
          for (const auto& [name, bytes] : result.samples.back().bytes) {
            double gbs = static_cast<double>(bytes) / 1e9 * dt;
            result.resident_gbs += gbs;
            // Idle: loaded, and no replayed request for it in this interval (none in flight
            // now, none started since the last sample: a short request may fall between two).
            auto f = in_flight.find(name);
            if ((f == in_flight.end() || f->second == 0) && !sent_since_sample.count(name)) result.idle_gbs += gbs;
          }
        }
        sent_since_sample.clear();
        uint64_t total = 0;
        for (const auto& [name, bytes] : s.bytes) total += bytes;
        result.peak_bytes = std::max(result.peak_bytes, total);
        result.samples.push_back(std::move(s));
      }
      if (options.progress && ++n % 2 == 0) {
        int total = static_cast<int>(trace.requests.size()), done = done_count.load();
        int width = 30, filled = total ? width * done / total : width;
        std::fprintf(stderr, "\r[%s%s] %d/%d done, %d sent, %d cold, %.0f s ", std::string(filled, '#').c_str(),
                     std::string(width - filled, ' ').c_str(), done, total, sent_count.load(), cold_count.load(),
                     Since(t0));
        std::fflush(stderr);
      }
      std::unique_lock<std::mutex> lock(mu);
      if (cv.wait_for(lock, std::chrono::duration<double>(options.sample_every_s), [&] { return stop; })) break;
    }
  });

  // The dispatcher: each request at t / speed on its own thread.
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
  };
  std::vector<Worker> workers;
  for (size_t i = 0; i < trace.requests.size(); ++i) {
    auto due = t0 + std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(trace.requests[i].t / options.speed));
    std::this_thread::sleep_until(due);
    ReplayRequest& out = result.requests[i];
    const std::string key = sched::PolicyModelKey(out.model);
    bool seen_unloaded = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      out.t_sent = Since(t0);
      // Unloaded in a sample taken after its previous request ended, with none in flight since.
      if (in_flight[key] == 0 && !result.samples.empty()) {
        const PsSample& s = result.samples.back();
        auto ld = last_done.find(key);
        if ((ld == last_done.end() || s.t > ld->second) && !s.bytes.count(key)) seen_unloaded = true;
      }
      ++in_flight[key];
      sent_since_sample.insert(key);
    }
    auto finished = std::make_shared<std::atomic<bool>>(false);
    const TraceRequest& r = trace.requests[i];
    workers.push_back({std::thread([&, key, finished, seen_unloaded, &out = out, &r = r] {
                         SendOne(options, r, out, Clock::now());
                         out.cold = out.ok && (out.load_s > options.cold_load_s || seen_unloaded);
                         if (out.cold) ++cold_count;
                         {
                           std::lock_guard<std::mutex> lock(mu);
                           --in_flight[key];
                           last_done[key] = Since(t0);
                         }
                         ++done_count;
                         finished->store(true);
                       }),
                       finished});
    ++sent_count;
    // Join finished workers now and then so that a long replay does not keep every thread.
    if (workers.size() > 256) {
      std::vector<Worker> alive;
      for (auto& w : workers) {
        if (w.finished->load()) {
          w.thread.join();
        } else {
          alive.push_back(std::move(w));
        }
      }
      workers = std::move(alive);
    }
  }
  for (auto& w : workers) w.thread.join();
  // One more sample after the last request, then stop.
  std::this_thread::sleep_for(std::chrono::duration<double>(options.sample_every_s * 1.5));
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
  }
  cv.notify_all();
  sampler.join();
  if (options.progress) std::fputs("\n", stderr);
  result.duration_s = Since(t0);

  std::vector<double> warm, cold;
  for (const auto& r : result.requests) {
    if (!r.ok) {
      ++result.failed;
      continue;
    }
    ++result.ok;
    if (r.cold) {
      ++result.cold;
      cold.push_back(r.ttft_s);
    } else {
      warm.push_back(r.ttft_s);
    }
  }
  result.ttft_warm_p50 = Percentile(warm, 0.5);
  result.ttft_warm_p99 = Percentile(warm, 0.99);
  result.ttft_cold_p50 = Percentile(cold, 0.5);
  result.ttft_cold_p99 = Percentile(cold, 0.99);
  // Loads and unloads as the samples saw them.
  std::set<std::string> before;
  for (const auto& s : result.samples) {
    for (const auto& [name, bytes] : s.bytes) {
      if (!before.count(name)) result.marks.push_back({s.t, name, true});
    }
    for (const auto& name : before) {
      if (!s.bytes.count(name)) result.marks.push_back({s.t, name, false});
    }
    before.clear();
    for (const auto& [name, bytes] : s.bytes) before.insert(name);
  }
  return result;
}

json ReplayToJson(const ReplayResult& r, const ReplayOptions& options) {
  json requests = json::array();
  for (const auto& q : r.requests) {
    json j{{"t_trace", q.t_trace}, {"t_sent", q.t_sent}, {"model", q.model}, {"ok", q.ok}, {"cold", q.cold},
           {"load_s", q.load_s}, {"ttft_s", q.ttft_s}, {"total_s", q.total_s}};
    if (!q.error.empty()) j["error"] = q.error;
    requests.push_back(std::move(j));
  }
  json marks = json::array();
  for (const auto& m : r.marks) marks.push_back({{"t", m.t}, {"model", m.model}, {"event", m.load ? "load" : "unload"}});
  json samples = json::array();
  for (const auto& s : r.samples) samples.push_back({{"t", s.t}, {"bytes", s.bytes}});
  int n = r.ok + r.failed;
  return json{{"server", options.host + ":" + std::to_string(options.port)},
              {"speed", options.speed},
              {"model_map", options.model_map},
              {"requests_total", n},
              {"requests_ok", r.ok},
              {"requests_failed", r.failed},
              {"cold_starts", r.cold},
              {"cold_start_pct", r.ok ? 100.0 * r.cold / r.ok : 0.0},
              {"ttft_s", {{"warm_p50", r.ttft_warm_p50}, {"warm_p99", r.ttft_warm_p99},
                          {"cold_p50", r.ttft_cold_p50}, {"cold_p99", r.ttft_cold_p99}}},
              {"resident_gb_s", r.resident_gbs},
              {"idle_gb_s", r.idle_gbs},
              {"peak_resident_bytes", r.peak_bytes},
              {"duration_s", r.duration_s},
              {"marks", marks},
              {"requests", requests},
              {"samples", samples}};
}

std::string FormatReplaySummary(const ReplayResult& r) {
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "requests        %d ok, %d failed, in %.1f s\n"
                "cold starts     %d (%.1f%%)\n"
                "TTFT warm       p50 %.3f s  p99 %.3f s\n"
                "TTFT cold       p50 %.3f s  p99 %.3f s\n"
                "resident        %.2f GB·s (idle %.2f GB·s), peak %s\n",
                r.ok, r.failed, r.duration_s, r.cold, r.ok ? 100.0 * r.cold / r.ok : 0.0, r.ttft_warm_p50,
                r.ttft_warm_p99, r.ttft_cold_p50, r.ttft_cold_p99, r.resident_gbs, r.idle_gbs,
                FormatBytes(r.peak_bytes).c_str());
  return buf;
}

}  // namespace resident::sim
