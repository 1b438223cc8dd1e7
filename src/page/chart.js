// A small line chart in SVG: the mean of each step as a line, its lowest and highest as a
// band around it, the zone's limits as a shaded strip.

const SVG = "http://www.w3.org/2000/svg";
const W = 600;
const H = 170;
const M = { left: 44, right: 10, top: 12, bottom: 24 };

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/// `lines`: [{label, points: [{x (ms), min, avg, max}]}]; `limits`: [low, high]; `from`,
/// `to`: ms; `unit`: "°C" or "%"; `format`: a time label function.
export function drawChart(container, { lines, limits, from, to, unit, title, format }) {
  const values = lines.flatMap((l) => l.points.flatMap((p) => [p.min, p.max]));
  const low = Math.min(limits[0], ...values);
  const high = Math.max(limits[1], ...values);
  const pad = (high - low) * 0.1 || 1;
  const [y0, y1] = [low - pad, high + pad];
  const x = (ms) => M.left + ((ms - from) / Math.max(1, to - from)) * (W - M.left - M.right);
  const y = (v) => M.top + (1 - (v - y0) / (y1 - y0)) * (H - M.top - M.bottom);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  svg.append(
    el("rect", { x: M.left, y: y(limits[1]), width: W - M.left - M.right, height: y(limits[0]) - y(limits[1]), class: "limits" }),
    el("line", { x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom, class: "axis" }),
    el("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: "axis" }),
    el("text", { x: M.left - 4, y: y(limits[1]) + 4, class: "tick end" }, `${limits[1]}${unit}`),
    el("text", { x: M.left - 4, y: y(limits[0]) + 4, class: "tick end" }, `${limits[0]}${unit}`),
    el("text", { x: M.left, y: H - 6, class: "tick" }, format(from)),
    el("text", { x: W - M.right, y: H - 6, class: "tick end" }, format(to)),
  );
  lines.forEach((line, i) => {
    if (!line.points.length) return;
    const band = [
      ...line.points.map((p) => `${x(p.x)},${y(p.max)}`),
      ...line.points.slice().reverse().map((p) => `${x(p.x)},${y(p.min)}`),
    ];
    svg.append(
      el("polygon", { points: band.join(" "), class: `range-band s${i}` }),
      el("polyline", { points: line.points.map((p) => `${x(p.x)},${y(p.avg)}`).join(" "), class: `mean s${i}`, "data-sensor": line.label }),
    );
  });
  svg.append(el("text", { x: M.left + 6, y: M.top + 12, class: "chart-title" }, title));
  container.replaceChildren(svg);
}
