// A small line chart in SVG: the mean of each step as a line, its lowest and highest as a
// band around it, the zone's limits as a shaded strip. Drawn at the size it is shown, so
// its text is the size written here (12 px), not scaled down on a narrow card; pointing at
// it (or tapping) shows the values of that moment.

const SVG = "http://www.w3.org/2000/svg";
const H = 190;
const M = { left: 52, right: 12, top: 22, bottom: 34 };

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

const round = (v) => Math.round(v * 10) / 10;

/// `lines`: [{label, points: [{x (ms), min, avg, max}]}]; `limits`: [low, high]; `from`,
/// `to`: ms; `unit`: "°C" or "%"; `format`: a time label function.
export function drawChart(container, { lines, limits, from, to, unit, title, format }) {
  const W = Math.max(280, Math.round(container.clientWidth || 600));
  const values = lines.flatMap((l) => l.points.flatMap((p) => [p.min, p.max]));
  const low = Math.min(limits[0], ...values);
  const high = Math.max(limits[1], ...values);
  const pad = (high - low) * 0.1 || 1;
  const [y0, y1] = [low - pad, high + pad];
  const x = (ms) => M.left + ((ms - from) / Math.max(1, to - from)) * (W - M.left - M.right);
  const y = (v) => M.top + (1 - (v - y0) / (y1 - y0)) * (H - M.top - M.bottom);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "chart", role: "img", "aria-label": title });
  const middle = (from + to) / 2;
  svg.append(
    el("rect", { x: M.left, y: y(limits[1]), width: W - M.left - M.right, height: y(limits[0]) - y(limits[1]), class: "limits" }),
    el("line", { x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom, class: "axis" }),
    el("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: "axis" }),
    el("text", { x: M.left - 4, y: y(limits[1]) + 4, class: "tick end" }, `${limits[1]} ${unit}`),
    el("text", { x: M.left - 4, y: y(limits[0]) + 4, class: "tick end" }, `${limits[0]} ${unit}`),
    el("text", { x: M.left, y: H - 14, class: "tick" }, format(from)),
    el("text", { x: x(middle), y: H - 14, class: "tick middle" }, format(middle)),
    el("text", { x: W - M.right, y: H - 14, class: "tick end" }, format(to)),
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
      el("text", { x: W - M.right - i * 90, y: M.top - 8, class: `legend end s${i}` }, line.label),
    );
  });
  svg.append(el("text", { x: M.left + 6, y: M.top - 8, class: "chart-title" }, title));
  // The values of the moment pointed at: a line across and each sensor's mean (low–high).
  const cursor = el("line", { y1: M.top, y2: H - M.bottom, class: "cursor", visibility: "hidden" });
  const readout = el("text", { y: H - 2, class: "readout" });
  const area = el("rect", { x: M.left, y: M.top, width: W - M.left - M.right, height: H - M.top - M.bottom, class: "hover" });
  const show = (event) => {
    const box = svg.getBoundingClientRect();
    const px = ((event.clientX - box.left) / box.width) * W;
    const at = from + ((px - M.left) / (W - M.left - M.right)) * (to - from);
    const near = lines.map((l) => l.points.reduce((best, p) => (!best || Math.abs(p.x - at) < Math.abs(best.x - at) ? p : best), null))
      .map((p, i) => (p ? `${lines[i].label} ${round(p.avg)} ${unit} (${round(p.min)}–${round(p.max)})` : ""))
      .filter(Boolean);
    if (!near.length) return;
    cursor.setAttribute("x1", px);
    cursor.setAttribute("x2", px);
    cursor.setAttribute("visibility", "visible");
    readout.setAttribute("x", M.left);
    readout.textContent = `${format(at)} · ${near.join(" · ")}`;
  };
  area.addEventListener("pointermove", show);
  area.addEventListener("pointerdown", show);
  area.addEventListener("pointerleave", () => {
    cursor.setAttribute("visibility", "hidden");
    readout.textContent = "";
  });
  svg.append(cursor, readout, area);
  container.replaceChildren(svg);
}
