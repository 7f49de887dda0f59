#include "swiftbalancer/replay/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "swiftbalancer/core/status.h"
#include "swiftbalancer/io/atomic_file.h"

namespace swiftbalancer::replay {
namespace {

// Distinguishable line colours (Tableau 10).
const char* const kColors[] = {"#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1",
                               "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac"};

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '&':
        o += "&amp;";
        break;
      case '"':
        o += "&quot;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

// "Nice" tick positions covering [lo, hi]: steps of 1, 2 or 5 times a power of ten.
std::vector<double> nice_ticks(double lo, double hi, int target) {
  std::vector<double> out;
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + 1e-9 * step; v += step)
    out.push_back(std::abs(v) < 1e-12 * step ? 0.0 : v);
  return out;
}

std::string tick_label(double v) {
  if (std::abs(v - std::round(v)) < 1e-9) return fmt("%.0f", v);
  if (std::abs(v * 10 - std::round(v * 10)) < 1e-9) return fmt("%.1f", v);
  return fmt("%.2f", v);
}

// Diverging colour for a rank-load ratio: blue (0) - white (1) - red (vmax).
std::string heat_color(double v, double vmax) {
  double r, g, b;
  if (v <= 1.0) {
    const double t = std::clamp(v, 0.0, 1.0);  // 0 -> blue, 1 -> white
    r = 0.23 + 0.77 * t;
    g = 0.40 + 0.60 * t;
    b = 0.75 + 0.25 * t;
  } else {
    const double t = std::clamp((v - 1.0) / std::max(1e-9, vmax - 1.0), 0.0, 1.0);
    r = 1.0 - 0.30 * t;
    g = 1.0 - 0.90 * t;
    b = 1.0 - 0.88 * t;
  }
  char buf[16];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", static_cast<int>(std::lround(r * 255)),
                static_cast<int>(std::lround(g * 255)), static_cast<int>(std::lround(b * 255)));
  return buf;
}

// Quantizes a ratio to one of a few levels so that equal neighbours merge into one rectangle.
double quantize(double v, double vmax) {
  const int levels = 24;
  if (v <= 1.0) return std::round(std::clamp(v, 0.0, 1.0) * levels) / levels;
  const double t = std::clamp((v - 1.0) / std::max(1e-9, vmax - 1.0), 0.0, 1.0);
  return 1.0 + std::round(t * levels) / levels * (vmax - 1.0);
}

// Geometry of the picture: the imbalance chart on top, one heatmap per policy below.
struct Layout {
  double W = 1060, ml = 70, mr = 250, chart_top = 50, chart_h = 320;
  double pw = 0;  // plot width
  double heat_h = 0, heat_gap = 50, heat_top = 0, H = 0;
  double T = 1;             // steps (at least 1)
  double ylo = 1, yhi = 1;  // imbalance axis
  std::vector<double> xticks;
  double X(double step) const { return ml + pw * step / T; }
  double Y(double v) const { return chart_top + chart_h * (1.0 - (v - ylo) / (yhi - ylo)); }
};

Layout make_layout(const ReplayResult& r) {
  Layout g;
  g.pw = g.W - g.ml - g.mr;
  const int P = static_cast<int>(r.policies.size());
  g.heat_h = std::clamp(2.0 * r.config.topo.ranks, 80.0, 160.0);
  g.heat_top = g.chart_top + g.chart_h + 90;
  g.H = g.heat_top + P * (g.heat_h + g.heat_gap) + 20;
  g.T = static_cast<double>(std::max<std::int64_t>(1, r.steps));
  g.xticks = nice_ticks(0, g.T, 8);
  return g;
}

// Each policy's imbalance, binned (mean per bin) to at most ~plot width points; sets the
// layout's imbalance axis to cover them.
std::vector<std::vector<double>> binned_lines(const ReplayResult& r, Layout& g) {
  const std::int64_t bins = std::min<std::int64_t>(r.steps, static_cast<std::int64_t>(g.pw));
  std::vector<std::vector<double>> lines;
  double ymax = 1.0;
  for (const PolicyResult& p : r.policies) {
    std::vector<double> v(static_cast<std::size_t>(bins), 0.0);
    std::vector<int> n(static_cast<std::size_t>(bins), 0);
    for (std::int64_t t = 0; t < r.steps; ++t) {
      const std::size_t b = static_cast<std::size_t>(t * bins / r.steps);
      v[b] += p.imbalance[t];
      ++n[b];
    }
    for (std::size_t b = 0; b < v.size(); ++b) {
      v[b] = n[b] ? v[b] / n[b] : 1.0;
      ymax = std::max(ymax, v[b]);
    }
    lines.push_back(std::move(v));
  }
  g.ylo = 1.0;
  g.yhi = 1.0 + (ymax - 1.0) * 1.08 + 0.02;
  return lines;
}

void draw_header(std::string& s, const Layout& g, const std::string& title) {
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt("%.0f", g.W) + "\" height=\"" +
       fmt("%.0f", g.H) + "\" viewBox=\"0 0 " + fmt("%.0f", g.W) + " " + fmt("%.0f", g.H) +
       "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + fmt("%.0f", g.W / 2) +
       "\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">" + escape(title) +
       "</text>\n";
}

// 1a. The imbalance chart's grid, ticks, frame and axis labels.
void draw_chart_axes(std::string& s, const Layout& g) {
  const double ml = g.ml, pw = g.pw, chart_top = g.chart_top, chart_h = g.chart_h;
  for (double v : nice_ticks(g.ylo, g.yhi, 6)) {
    s += "<line x1=\"" + fmt("%.1f", ml) + "\" x2=\"" + fmt("%.1f", ml + pw) + "\" y1=\"" +
         fmt("%.1f", g.Y(v)) + "\" y2=\"" + fmt("%.1f", g.Y(v)) + "\" stroke=\"#e4e4e4\"/>\n";
    s += "<text x=\"" + fmt("%.1f", ml - 6) + "\" y=\"" + fmt("%.1f", g.Y(v) + 4) +
         "\" text-anchor=\"end\">" + tick_label(v) + "</text>\n";
  }
  for (double v : g.xticks) {
    s += "<line x1=\"" + fmt("%.1f", g.X(v)) + "\" x2=\"" + fmt("%.1f", g.X(v)) + "\" y1=\"" +
         fmt("%.1f", chart_top + chart_h) + "\" y2=\"" + fmt("%.1f", chart_top + chart_h + 5) +
         "\" stroke=\"black\"/>\n";
    s += "<text x=\"" + fmt("%.1f", g.X(v)) + "\" y=\"" + fmt("%.1f", chart_top + chart_h + 18) +
         "\" text-anchor=\"middle\">" + tick_label(v) + "</text>\n";
  }
  s += "<rect x=\"" + fmt("%.1f", ml) + "\" y=\"" + fmt("%.1f", chart_top) + "\" width=\"" +
       fmt("%.1f", pw) + "\" height=\"" + fmt("%.1f", chart_h) +
       "\" fill=\"none\" stroke=\"black\"/>\n";
  s += "<text x=\"" + fmt("%.1f", ml + pw / 2) + "\" y=\"" + fmt("%.1f", chart_top + chart_h + 36) +
       "\" text-anchor=\"middle\">step</text>\n";
  s += "<text transform=\"translate(18," + fmt("%.1f", chart_top + chart_h / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">imbalance (max / mean rank load)</text>\n";
}

// 1b. Workload switches: dashed, the blend shaded.
void draw_switches(std::string& s, const ReplayResult& r, const Layout& g) {
  for (std::int64_t sw : r.config.switch_at) {
    if (sw <= 0 || sw >= r.steps) continue;
    if (r.config.switch_blend > 0) {  // the blend, shaded
      const double end = static_cast<double>(std::min(r.steps, sw + r.config.switch_blend));
      s += "<rect x=\"" + fmt("%.1f", g.X(sw)) + "\" y=\"" + fmt("%.1f", g.chart_top) +
           "\" width=\"" + fmt("%.1f", g.X(end) - g.X(sw)) + "\" height=\"" +
           fmt("%.1f", g.chart_h) + "\" fill=\"#000\" fill-opacity=\"0.06\"/>\n";
    }
    s += "<line x1=\"" + fmt("%.1f", g.X(sw)) + "\" x2=\"" + fmt("%.1f", g.X(sw)) + "\" y1=\"" +
         fmt("%.1f", g.chart_top) + "\" y2=\"" + fmt("%.1f", g.chart_top + g.chart_h) +
         "\" stroke=\"#555\" stroke-dasharray=\"5,4\"/>\n";
    s += "<text x=\"" + fmt("%.1f", g.X(sw) + 4) + "\" y=\"" + fmt("%.1f", g.chart_top + 14) +
         "\" fill=\"#555\">workload switch</text>\n";
  }
}

// 1c. One line per policy and its legend entry.
void draw_lines(std::string& s, const ReplayResult& r, const Layout& g,
                const std::vector<std::vector<double>>& lines) {
  const int P = static_cast<int>(r.policies.size());
  for (int i = 0; i < P; ++i) {
    const char* color = kColors[i % 10];
    std::string pts;
    const auto& v = lines[i];
    for (std::size_t b = 0; b < v.size(); ++b) {
      const double step = (static_cast<double>(b) + 0.5) * g.T / static_cast<double>(v.size());
      pts += fmt("%.1f", g.X(step)) + "," + fmt("%.1f", g.Y(v[b])) + " ";
    }
    s += "<polyline fill=\"none\" stroke=\"" + std::string(color) +
         "\" stroke-width=\"1.5\" points=\"" + pts + "\"/>\n";
    // Legend entry.
    const double ly = g.chart_top + 10 + 20 * i, lx = g.ml + g.pw + 15;
    s += "<line x1=\"" + fmt("%.1f", lx) + "\" x2=\"" + fmt("%.1f", lx + 24) + "\" y1=\"" +
         fmt("%.1f", ly) + "\" y2=\"" + fmt("%.1f", ly) + "\" stroke=\"" + color +
         "\" stroke-width=\"3\"/>\n";
    s += "<text x=\"" + fmt("%.1f", lx + 30) + "\" y=\"" + fmt("%.1f", ly + 4) + "\">" +
         escape(r.policies[i].spec.label) + " (" + fmt("%.3f", r.policies[i].mean_imbalance) +
         ")</text>\n";
  }
  s += "<text x=\"" + fmt("%.1f", g.ml + g.pw + 15) + "\" y=\"" +
       fmt("%.1f", g.chart_top + 20 * P + 18) +
       "\" fill=\"#555\" font-size=\"11\">(mean imbalance)</text>\n";
}

// 2. One policy's rank-load heatmap (the i-th, from the top).
void draw_heatmap(std::string& s, const ReplayResult& r, const Layout& g, int i, double vmax) {
  const PolicyResult& p = r.policies[i];
  const int R = r.config.topo.ranks;
  const double top = g.heat_top + i * (g.heat_h + g.heat_gap);
  const int nb = p.heat_bins;
  s += "<text x=\"" + fmt("%.1f", g.ml) + "\" y=\"" + fmt("%.1f", top - 6) + "\">" +
       escape(p.spec.label) + "</text>\n";
  const double cw = g.pw / std::max(1, nb), ch = g.heat_h / R;
  for (int rank = 0; rank < R; ++rank) {
    int b = 0;
    while (b < nb) {
      const double q = quantize(p.heat[static_cast<std::size_t>(b) * R + rank], vmax);
      int e = b + 1;
      while (e < nb && quantize(p.heat[static_cast<std::size_t>(e) * R + rank], vmax) == q) ++e;
      // Slight overlap hides hairline seams between rectangles.
      s += "<rect x=\"" + fmt("%.2f", g.ml + b * cw) + "\" y=\"" + fmt("%.2f", top + rank * ch) +
           "\" width=\"" + fmt("%.2f", (e - b) * cw + 0.3) + "\" height=\"" +
           fmt("%.2f", ch + 0.3) + "\" fill=\"" + heat_color(q, vmax) + "\"/>\n";
      b = e;
    }
  }
  s += "<rect x=\"" + fmt("%.1f", g.ml) + "\" y=\"" + fmt("%.1f", top) + "\" width=\"" +
       fmt("%.1f", g.pw) + "\" height=\"" + fmt("%.1f", g.heat_h) +
       "\" fill=\"none\" stroke=\"black\"/>\n";
  for (int rt : {0, R / 2, R - 1}) {
    s += "<text x=\"" + fmt("%.1f", g.ml - 6) + "\" y=\"" + fmt("%.1f", top + (rt + 0.5) * ch + 4) +
         "\" text-anchor=\"end\" font-size=\"10\">" + std::to_string(rt) + "</text>\n";
  }
  s += "<text transform=\"translate(30," + fmt("%.1f", top + g.heat_h / 2) +
       ") rotate(-90)\" text-anchor=\"middle\" font-size=\"11\">rank</text>\n";
  for (double v : g.xticks)
    s += "<text x=\"" + fmt("%.1f", g.X(v)) + "\" y=\"" + fmt("%.1f", top + g.heat_h + 14) +
         "\" text-anchor=\"middle\" font-size=\"10\">" + tick_label(v) + "</text>\n";
  for (std::int64_t sw : r.config.switch_at) {
    if (sw <= 0 || sw >= r.steps) continue;
    s += "<line x1=\"" + fmt("%.1f", g.X(sw)) + "\" x2=\"" + fmt("%.1f", g.X(sw)) + "\" y1=\"" +
         fmt("%.1f", top) + "\" y2=\"" + fmt("%.1f", top + g.heat_h) +
         "\" stroke=\"#333\" stroke-dasharray=\"4,3\"/>\n";
  }
}

// 2b. The heatmaps' shared colour bar.
void draw_colour_bar(std::string& s, const Layout& g, double vmax) {
  const double bx = g.ml + g.pw + 30, by = g.heat_top, bh = 200, bw = 18;
  const int nsteps = 40;
  for (int k = 0; k < nsteps; ++k) {
    const double v = vmax * (1.0 - (k + 0.5) / nsteps);
    s += "<rect x=\"" + fmt("%.1f", bx) + "\" y=\"" + fmt("%.2f", by + bh * k / nsteps) +
         "\" width=\"" + fmt("%.1f", bw) + "\" height=\"" + fmt("%.2f", bh / nsteps + 0.3) +
         "\" fill=\"" + heat_color(v, vmax) + "\"/>\n";
  }
  s += "<rect x=\"" + fmt("%.1f", bx) + "\" y=\"" + fmt("%.1f", by) + "\" width=\"" +
       fmt("%.1f", bw) + "\" height=\"" + fmt("%.1f", bh) + "\" fill=\"none\" stroke=\"black\"/>\n";
  for (double v : nice_ticks(0, vmax, 5)) {
    const double y = by + bh * (1.0 - v / vmax);
    s += "<text x=\"" + fmt("%.1f", bx + bw + 5) + "\" y=\"" + fmt("%.1f", y + 4) +
         "\" font-size=\"10\">" + tick_label(v) + "</text>\n";
  }
  s += "<text x=\"" + fmt("%.1f", bx) + "\" y=\"" + fmt("%.1f", by + bh + 16) +
       "\" font-size=\"10\">load / mean</text>\n";
}

}  // namespace

std::string replay_svg(const ReplayResult& r, const std::string& title) {
  Layout g = make_layout(r);
  const std::vector<std::vector<double>> lines = binned_lines(r, g);
  std::string s;
  draw_header(s, g, title);
  // --- 1. imbalance over time ---
  draw_chart_axes(s, g);
  draw_switches(s, r, g);
  draw_lines(s, r, g, lines);
  // --- 2. rank-load heatmaps ---
  double vmax = 1.5;
  for (const PolicyResult& p : r.policies)
    for (float v : p.heat) vmax = std::max(vmax, static_cast<double>(v));
  s += "<text x=\"" + fmt("%.1f", g.ml) + "\" y=\"" + fmt("%.1f", g.heat_top - 22) +
       "\" font-size=\"14\" font-weight=\"bold\">Rank load over time (layer-averaged, rank load / "
       "mean rank load)</text>\n";
  for (int i = 0; i < static_cast<int>(r.policies.size()); ++i) draw_heatmap(s, r, g, i, vmax);
  draw_colour_bar(s, g, vmax);
  s += "</svg>\n";
  return s;
}

void write_replay_svg(const std::string& path, const ReplayResult& result,
                      const std::string& title) {
  write_file_atomically(path, replay_svg(result, title));
}

}  // namespace swiftbalancer::replay
