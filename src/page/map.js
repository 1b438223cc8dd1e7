// The room map: an SVG drawn from the room's layout and the ranges' live states.
//
// Seen from above, each range is a column; its rail runs down the page, carriage 1 at the
// top. A carriage is a bar as long as its sections; its left face looks up into the aisle
// before it, its right face down into the aisle after it. Aisle k lies between carriages
// k and k+1. Positions come from the range's state; while the state is unknown the
// carriages are drawn packed, dashed, and the range says so.

const SVG = "http://www.w3.org/2000/svg";
/// Millimetres drawn per section (the bar's length is only a picture of it).
const SECTION_MM = 900;
const GAP_MM = 1500;
/// A gap between carriages wider than this, with no aisle open, is a range ventilated.
const VENT_MM = 100;
/// The smallest text on the map, in screen pixels, whatever the map's drawn size.
const MIN_TEXT_PX = 12;

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null && v !== false) node.setAttribute(k, String(v));
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

/// Parses a shelf address such as R2-C5-L-S3-L4.
export function parseShelf(address) {
  const m = /^R(\d+)-C(\d+)-([LR])-S(\d+)-L(\d+)$/.exec(address || "");
  if (!m) return null;
  return {
    address,
    range: +m[1],
    carriage: +m[2],
    face: m[3] === "L" ? "left" : "right",
    section: +m[4],
    level: +m[5],
  };
}

/// Where each carriage is (its top edge, mm) and whether that is known.
function positions(layout, state) {
  const known =
    state &&
    state.link === "up" &&
    state.carriages.length === layout.carriages.length &&
    state.carriages.every((c) => typeof c.position_mm === "number");
  if (known) return { known: true, at: state.carriages.map((c) => c.position_mm) };
  let y = 0;
  return {
    known: false,
    at: layout.carriages.map((c) => {
      const top = y;
      y += c.width_mm;
      return top;
    }),
  };
}

/// Draws the room into `container`. `focus`: the shelf to highlight ({range, carriage,
/// face, section}) and the aisle that reaches it; `t`: the label function.
/// `climate`: range id -> {temperature, humidity, alarm} of its zone, shown under its name.
/// `view`: the part of the room shown ({x, y, w, h} in mm; none: all of it), for zooming.
export function drawRoom(container, room, states, focus, t, climate = new Map(), view = null) {
  const columns = room.ranges.map((r) => {
    const rail = r.carriages.reduce((s, c) => s + c.width_mm, 0) + r.aisle_width_mm;
    return { r, rail, width: r.sections * SECTION_MM };
  });
  const width = columns.reduce((s, c) => s + c.width, 0) + GAP_MM * (columns.length + 1);
  // Text sizes in mm of the room, so that the smallest is MIN_TEXT_PX on screen; the head
  // above the rails (name, state, climate, section numbers) is as tall as its lines.
  const fs = Math.max(300, MIN_TEXT_PX / ((container.clientWidth || 600) / (view ? view.w : width)));
  // A door at the top takes a band of its own above the ranges' heads.
  const lift = room.door === "top" ? Math.round(fs * 1.8) : 0;
  const head = lift + Math.round(fs * 5.4);
  const line = (n) => lift + Math.round(fs * n);
  const foot = room.door === "bottom" ? Math.round(fs * 2) : 0;
  const height = head + Math.max(...columns.map((c) => c.rail)) + 200 + foot;
  const shown = view || { x: 0, y: 0, w: width, h: height };
  const svg = el("svg", {
    viewBox: `${shown.x} ${shown.y} ${shown.w} ${shown.h}`,
    role: "img",
    "aria-label": t("map_label"),
    class: "room",
    "data-width": width,
    "data-height": height,
  });
  svg.style.setProperty("--fs", `${fs}px`);
  let x = GAP_MM;
  for (const { r, rail, width: w } of columns) {
    const state = states.get(r.id);
    const g = el("g", {
      transform: `translate(${x} 0)`,
      class: "range",
      "data-range": r.id,
      "data-open-aisle": state && state.open_aisle,
    });
    x += w + GAP_MM;
    const { known, at } = positions(r, state);
    const alarm = state && (state.estop || state.faults.length > 0 || state.link !== "up");
    const top = (i) => head + at[i];
    const bottom = (i) => top(i) + r.carriages[i].width_mm;
    const gaps = r.carriages.slice(1).map((_, k) => top(k + 1) - bottom(k));
    // Ventilated: at rest with no aisle open and the carriages spread apart.
    const ventilated = Boolean(state && known && state.motion === "idle" && !state.open_aisle
      && gaps.filter((gap) => gap > VENT_MM).length >= 2);
    let status;
    if (!r.motorized) status = t("map_manual");
    else if (!state || !known) status = t("map_unknown");
    else if (state.estop) status = t("map_estop");
    else if (ventilated) status = t("map_ventilated");
    else status = t(`range_motion_${state.motion}`);
    // Name, state and climate on lines of their own: a long state never runs into the
    // climate. Section numbers above the shelves they name.
    g.append(
      el("text", { x: 0, y: line(1.3), class: "range-name" }, t("range_name", { name: r.name })),
      el("text", { x: 0, y: line(2.5), class: `range-status${alarm ? " alarm" : ""}` }, status),
    );
    const air = climate.get(r.id);
    if (air) {
      g.append(
        el(
          "text",
          { x: 0, y: line(3.6), class: `climate${air.alarm ? " alarm" : ""}`, "data-climate": r.id },
          air.temperature == null ? t("map_no_climate") : `${air.temperature.toFixed(1)} °C · ${air.humidity.toFixed(0)} %`,
        ),
      );
    }
    for (let s = 1; s <= r.sections; s++) {
      g.append(el("text", { x: (s - 0.5) * SECTION_MM, y: line(4.7), class: "section-no" }, String(s)));
    }
    g.append(
      el("rect", {
        x: -120,
        y: head - 60,
        width: w + 240,
        height: rail + 120,
        class: `rail${alarm ? " alarm" : ""}`,
      }),
    );
    // Aisles first, so that carriages are drawn over their edges.
    for (let k = 1; k < r.carriages.length; k++) {
      const y0 = bottom(k - 1);
      const gap = Math.max(0, top(k) - y0);
      const open = state && known && state.open_aisle === k;
      const occupied = state && state.occupied_aisles.includes(k);
      const target = focus && focus.range === r.id && focus.aisle === k;
      const classes = ["aisle"];
      if (open) classes.push("open");
      if (ventilated && gap > VENT_MM) classes.push("vent");
      if (occupied) classes.push("occupied");
      if (target) classes.push("target");
      const a = el("g", { class: classes.join(" "), "data-range": r.id, "data-aisle": k });
      a.append(el("rect", { x: 0, y: y0, width: w, height: Math.max(gap, 1) }));
      if (gap >= 400 || occupied) {
        const label = occupied ? t("map_person", { aisle: k }) : t("map_aisle", { aisle: k });
        a.append(el("text", { x: w / 2, y: y0 + Math.max(gap, 300) / 2, class: "aisle-label" }, label));
      }
      g.append(a);
    }
    r.carriages.forEach((c, i) => {
      const classes = ["carriage"];
      if (c.fixed) classes.push("fixed");
      if (!known) classes.push("unknown");
      const bar = el("g", { class: classes.join(" "), "data-carriage": c.index });
      bar.append(
        el("rect", { x: 0, y: top(i), width: w, height: c.width_mm, rx: 40 }),
        el("text", { x: -260, y: top(i) + c.width_mm / 2, class: "carriage-no" }, String(c.index)),
      );
      for (let s = 1; s < r.sections; s++) {
        bar.append(el("line", { x1: s * SECTION_MM, x2: s * SECTION_MM, y1: top(i), y2: bottom(i), class: "section" }));
      }
      g.append(bar);
    });
    if (focus && focus.range === r.id) {
      const i = r.carriages.findIndex((c) => c.index === focus.carriage);
      if (i >= 0) {
        const half = r.carriages[i].width_mm / 2;
        g.append(
          el("rect", {
            x: (focus.section - 1) * SECTION_MM + 60,
            y: top(i) + (focus.face === "left" ? 0 : half),
            width: SECTION_MM - 120,
            height: half,
            class: "shelf-focus",
            "data-shelf": focus.address,
          }),
        );
      }
    }
    svg.append(g);
  }
  if (room.door) svg.append(door(room.door, width, height, head, fs, t));
  container.replaceChildren(svg);
}

/// The room's door on its side of the plan: a thick mark and the word.
function door(side, width, height, head, fs, t) {
  const g = el("g", { class: "door", "data-door": side });
  const long = 1200;
  const mark = {
    top: { x: width / 2 - long / 2, y: 0, width: long, height: 120 },
    bottom: { x: width / 2 - long / 2, y: height - 160, width: long, height: 120 },
    left: { x: 0, y: height / 2 - long / 2, width: 120, height: long },
    right: { x: width - 120, y: height / 2 - long / 2, width: 120, height: long },
  }[side];
  const label = {
    top: { x: width / 2, y: fs * 1.3, anchor: "middle" },
    bottom: { x: width / 2, y: height - 260, anchor: "middle" },
    left: { x: 160, y: height / 2 - long / 2 - 80, anchor: "start" },
    right: { x: width - 160, y: height / 2 - long / 2 - 80, anchor: "end" },
  }[side];
  g.append(el("rect", mark), el("text", { x: label.x, y: label.y, "text-anchor": label.anchor }, t("map_door")));
  return g;
}
