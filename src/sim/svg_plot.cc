#include "sim/svg_plot.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

namespace resident::sim {
namespace {

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

}  // namespace

std::string ResidentMemorySvg(const std::vector<PsSample>& samples, const std::vector<ResidencyMark>& marks,
                              const std::string& title) {
  const double W = 960, H = 420, left = 70, right = 180, top = 40, bottom = 50;
  const double pw = W - left - right, ph = H - top - bottom;
  double t_end = samples.empty() ? 1.0 : std::max(1e-3, samples.back().t);
  uint64_t max_total = 1;
  std::set<std::string> names;
  for (const auto& s : samples) {
    uint64_t total = 0;
    for (const auto& [n, b] : s.bytes) {
      total += b;
      names.insert(n);
    }
    max_total = std::max(max_total, total);
  }
  const double ymax = static_cast<double>(max_total) * 1.1;
  auto X = [&](double t) { return left + pw * t / t_end; };
  auto Y = [&](double bytes) { return top + ph - ph * bytes / ymax; };
  static const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  std::map<std::string, std::string> color;
  size_t k = 0;
  for (const auto& n : names) color[n] = kColors[k++ % 10];

  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + Num(W) + "\" height=\"" + Num(H) +
                    "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += "<text x=\"" + Num(left) + "\" y=\"22\" font-size=\"15\">" + Escape(title) + "</text>\n";
  // Axes and grid.
  svg += "<g stroke=\"#ccc\">\n";
  for (int i = 0; i <= 4; ++i) {
    double y = top + ph * i / 4.0;
    svg += "<line x1=\"" + Num(left) + "\" y1=\"" + Num(y) + "\" x2=\"" + Num(left + pw) + "\" y2=\"" + Num(y) + "\"/>\n";
  }
  svg += "</g>\n";
  for (int i = 0; i <= 4; ++i) {
    double bytes = ymax * (4 - i) / 4.0;
    svg += "<text x=\"" + Num(left - 6) + "\" y=\"" + Num(top + ph * i / 4.0 + 4) + "\" text-anchor=\"end\">" +
           Num(bytes / 1e6) + " MB</text>\n";
    double t = t_end * i / 4.0;
    svg += "<text x=\"" + Num(X(t)) + "\" y=\"" + Num(top + ph + 18) + "\" text-anchor=\"middle\">" + Num(t) +
           " s</text>\n";
  }
  svg += "<text x=\"" + Num(left + pw / 2) + "\" y=\"" + Num(H - 10) +
         "\" text-anchor=\"middle\">time since the replay began</text>\n";
  // A step line per model, and the total.
  auto polyline = [&](auto bytes_at, const std::string& stroke, const std::string& extra) {
    std::string pts;
    double prev_y = Y(0);
    for (size_t i = 0; i < samples.size(); ++i) {
      double y = Y(static_cast<double>(bytes_at(samples[i])));
      double x = X(samples[i].t);
      if (i) pts += Num(x) + "," + Num(prev_y) + " ";
      pts += Num(x) + "," + Num(y) + " ";
      prev_y = y;
    }
    return "<polyline fill=\"none\" stroke=\"" + stroke + "\" stroke-width=\"1.6\" " + extra + " points=\"" + pts +
           "\"/>\n";
  };
  for (const auto& n : names) {
    svg += polyline([&](const PsSample& s) { auto it = s.bytes.find(n); return it == s.bytes.end() ? 0 : it->second; },
                    color[n], "");
  }
  svg += polyline(
      [](const PsSample& s) {
        uint64_t t = 0;
        for (const auto& [nm, b] : s.bytes) t += b;
        return t;
      },
      "#000", "stroke-dasharray=\"4 3\"");
  // Load (▲) and unload (▼) marks on the time axis.
  for (const auto& m : marks) {
    double x = X(m.t), y = top + ph;
    std::string pts = m.load ? Num(x - 4) + "," + Num(y) + " " + Num(x + 4) + "," + Num(y) + " " + Num(x) + "," + Num(y - 8)
                             : Num(x - 4) + "," + Num(y - 8) + " " + Num(x + 4) + "," + Num(y - 8) + " " + Num(x) + "," + Num(y);
    svg += "<polygon points=\"" + pts + "\" fill=\"" + color[m.model] + "\"><title>" + (m.load ? "load " : "unload ") +
           Escape(m.model) + " at " + Num(m.t) + " s</title></polygon>\n";
  }
  // Legend.
  double ly = top + 10;
  for (const auto& n : names) {
    svg += "<rect x=\"" + Num(left + pw + 12) + "\" y=\"" + Num(ly - 9) + "\" width=\"10\" height=\"10\" fill=\"" +
           color[n] + "\"/><text x=\"" + Num(left + pw + 27) + "\" y=\"" + Num(ly) + "\">" + Escape(n) + "</text>\n";
    ly += 16;
  }
  svg += "<text x=\"" + Num(left + pw + 12) + "\" y=\"" + Num(ly + 4) + "\">- - total; ▲ load ▼ unload</text>\n";
  svg += "</svg>\n";
  return svg;
}

}  // namespace resident::sim
