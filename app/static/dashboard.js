/* somcal dashboard: the Masters et al. (2015) maps of a trained SOM, interactive.
 *
 * Plain JavaScript, no build step and no third-party code: everything comes from this
 * server's API (/v1/maps, /v1/maps/{id}/arrays[?catalogue_id=], /v1/maps/{id}/cells/{cell},
 * /v1/maps/{id}/targets, /v1/plots/colormaps). Helpers shared with the other panels'
 * scripts (api, formatting) are in common.js; see there why the page is several files. Geometry follows som.plotting and som.grid: cell = row * n_cols +
 * col, row 0 at the bottom; hexagonal maps are pointy-top with odd rows shifted right by
 * half a cell and rows sqrt(3)/2 apart.
 *
 * State lives in the URL hash (#map=1&color=zphot&cell=123&occ=7) so a view can be shared
 * (occ: the occupation catalogue the map's counts and coverage come from), and
 * the page reports its progress in data attributes (body[data-state], canvas[data-rendered],
 * #cell-panel[data-cell][data-loaded]) for end-to-end tests.
 */
"use strict";

(() => {
  const SQRT3 = Math.sqrt(3);
  const HEX_R = 1 / SQRT3; // circumradius of a hexagon one unit wide (flat to flat)
  const GAP_COLOR = "#e3001b";
  const EMPTY_FACE = "#f2f2f2";
  const EMPTY_HATCH = "#b5b5b5";
  const NAN_FACE = "#c8c8c8";

  // The colour map of each map figure, as RGB stops sampled from matplotlib by the server
  // (GET /v1/plots/colormaps, keyed by plot kind): the dashboard's colours are the PNGs'.
  const PALETTES = {};
  async function loadPalettes() {
    const body = await api("/v1/plots/colormaps");
    for (const [kind, stops] of Object.entries(body.colormaps)) {
      PALETTES[kind] = stops.map((hex) => [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16)));
    }
  }

  /* What each "colour by" choice draws. value(a, c) is the cell's number or null. */
  const MODES = {
    zphot: {
      label: "median photo-z", cmap: "redshift", value: (a, c) => a.zphot_median[c],
      range: (v) => [0, quantile(v, 0.995)], nan: "no photo-z",
    },
    zspec: {
      label: "median spectroscopic z (secure)", cmap: "redshift", value: (a, c) => a.zspec_median[c],
      range: (v) => [0, quantile(v, 0.995)], nan: "no secure spectrum",
    },
    dispersion: {
      label: "σ_NMAD of photo-z", cmap: "dispersion", value: (a, c) => a.zphot_nmad[c],
      range: (v) => [0, quantile(v, 0.99)], nan: "no photo-z",
    },
    occupation: {
      label: "galaxies per cell", cmap: "occupation", log: true,
      value: (a, c) => (a.n_phot[c] > 0 ? a.n_phot[c] : null),
      range: (v) => [1, Math.max(2, max(v))], nan: null,
    },
    coverage: {
      label: "secure spectra per cell", cmap: "coverage", log: true,
      value: (a, c) => (a.n_spec_secure[c] > 0 ? a.n_spec_secure[c] : null),
      range: (v) => [1, Math.max(2, max(v))], nan: "no spectra",
    },
    umatrix: {
      label: "U-matrix: mean feature distance to neighbours", cmap: "umatrix",
      value: (a, c) => a.umatrix[c], range: (v) => [quantile(v, 0.01), quantile(v, 0.99)],
      nan: null, showEmpty: false,
    },
  };

  const { $, fmt, int, pct, esc, api, showBanner } = window.somcalKit;
  const { renderColours, drawPz } = window.somcalCell;
  const state = {
    maps: [], mapId: null, data: null, color: "zphot", outline: true,
    hover: -1, selected: -1, geom: null, targets: null, targetsByCell: new Map(),
    targetsKey: "", catalogueId: null,
  };

  // ----------------------------------------------------------------------- utilities
  function finite(values) {
    const out = [];
    for (const v of values) if (v !== null && Number.isFinite(v)) out.push(v);
    return out;
  }
  function quantile(values, q) {
    const v = finite(values).sort((x, y) => x - y);
    if (!v.length) return 1;
    const pos = (v.length - 1) * q;
    const lo = Math.floor(pos);
    const hi = Math.min(lo + 1, v.length - 1);
    return v[lo] + (v[hi] - v[lo]) * (pos - lo);
  }
  function max(values) {
    let m = -Infinity;
    for (const v of values) if (v !== null && v > m) m = v;
    return Number.isFinite(m) ? m : 1;
  }

  function colorAt(cmap, t) {
    const stops = PALETTES[cmap];
    const x = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
    const i = Math.min(Math.floor(x), stops.length - 2);
    const f = x - i;
    const a = stops[i];
    const b = stops[i + 1];
    return `rgb(${Math.round(a[0] + (b[0] - a[0]) * f)},${Math.round(a[1] + (b[1] - a[1]) * f)},${Math.round(a[2] + (b[2] - a[2]) * f)})`;
  }

  // ----------------------------------------------------------------------- URL state
  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    return {
      map: p.has("map") ? Number(p.get("map")) : null,
      color: p.get("color"),
      cell: p.has("cell") ? Number(p.get("cell")) : null,
      occ: p.has("occ") ? Number(p.get("occ")) : null,
    };
  }
  function writeHash() {
    const p = new URLSearchParams();
    if (state.mapId !== null) p.set("map", state.mapId);
    p.set("color", state.color);
    if (state.selected >= 0) p.set("cell", state.selected);
    if (state.catalogueId !== null) p.set("occ", state.catalogueId);
    history.replaceState(null, "", `#${p.toString()}`);
  }

  // ----------------------------------------------------------------------- geometry
  function centre(c) {
    const d = state.data;
    const row = Math.floor(c / d.n_cols);
    const col = c % d.n_cols;
    if (d.lattice === "hex") return [col + 0.5 * (row % 2), row * (SQRT3 / 2)];
    return [col, row];
  }

  /* Pixel layout: data coordinates (cell widths, y up) -> canvas pixels (y down). */
  function layout() {
    const d = state.data;
    const canvas = $("map-canvas");
    const wrap = $("map-wrap");
    const hex = d.lattice === "hex";
    // A margin of a third of a cell keeps the outline of a selected edge cell in view.
    const margin = 0.35;
    const spanX = d.n_cols + (hex && d.n_rows > 1 ? 0.5 : 0) + 2 * margin;
    const spanY = (hex ? (d.n_rows - 1) * (SQRT3 / 2) + 2 * HEX_R : d.n_rows) + 2 * margin;
    const maxH = Math.max(240, window.innerHeight - 330);
    const scale = Math.max(2, Math.min(wrap.clientWidth / spanX, maxH / spanY));
    const width = Math.round(spanX * scale);
    const height = Math.round(spanY * scale);
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    // Centre of cell (0, 0) sits half a cell (hex: one circumradius) inside the margin.
    const x0 = 0.5 + margin;
    const y0 = (hex ? HEX_R : 0.5) + margin;
    state.geom = { scale, dpr, width, height, x0, y0, spanY, hex };
  }
  function toPixel(x, y) {
    const g = state.geom;
    return [(x + g.x0) * g.scale, (g.spanY - (y + g.y0)) * g.scale];
  }
  function cellPath(ctx, c, shrink = 1) {
    const [cx, cy] = centre(c);
    const g = state.geom;
    ctx.beginPath();
    if (g.hex) {
      for (let k = 0; k < 6; k++) {
        const ang = (Math.PI / 180) * (30 + 60 * k);
        const [px, py] = toPixel(cx + shrink * HEX_R * Math.cos(ang), cy + shrink * HEX_R * Math.sin(ang));
        if (k === 0) ctx.moveTo(px, py);
        else ctx.lineTo(px, py);
      }
      ctx.closePath();
    } else {
      const [px, py] = toPixel(cx - 0.5 * shrink, cy + 0.5 * shrink);
      ctx.rect(px, py, shrink * g.scale, shrink * g.scale);
    }
  }

  /* The neighbour across each side of a cell and that side's two vertices, in data units. */
  function sides(c) {
    const d = state.data;
    const row = Math.floor(c / d.n_cols);
    const col = c % d.n_cols;
    const [cx, cy] = centre(c);
    const at = (r, k) => (r >= 0 && r < d.n_rows && k >= 0 && k < d.n_cols ? r * d.n_cols + k : -1);
    if (!state.geom.hex) {
      return [
        [at(row, col + 1), [cx + 0.5, cy - 0.5], [cx + 0.5, cy + 0.5]],
        [at(row + 1, col), [cx - 0.5, cy + 0.5], [cx + 0.5, cy + 0.5]],
        [at(row, col - 1), [cx - 0.5, cy - 0.5], [cx - 0.5, cy + 0.5]],
        [at(row - 1, col), [cx - 0.5, cy - 0.5], [cx + 0.5, cy - 0.5]],
      ];
    }
    const odd = row % 2;
    // Side k joins vertices at 30+60k and 90+60k degrees; its neighbour lies at 60+60k.
    const nb = [
      at(row + 1, col + odd), // 60: upper right
      at(row + 1, col + odd - 1), // 120: upper left
      at(row, col - 1), // 180: left
      at(row - 1, col + odd - 1), // 240: lower left
      at(row - 1, col + odd), // 300: lower right
      at(row, col + 1), // 0/360: right
    ];
    const v = (deg) => [cx + HEX_R * Math.cos((Math.PI / 180) * deg), cy + HEX_R * Math.sin((Math.PI / 180) * deg)];
    return nb.map((n, k) => [n, v(30 + 60 * k), v(90 + 60 * k)]);
  }

  function cellAt(px, py) {
    const d = state.data;
    const g = state.geom;
    if (!d || !g) return -1;
    const x = px / g.scale - g.x0;
    const y = g.spanY - py / g.scale - g.y0;
    if (!g.hex) {
      const col = Math.round(x);
      const row = Math.round(y);
      if (row < 0 || row >= d.n_rows || col < 0 || col >= d.n_cols) return -1;
      return row * d.n_cols + col;
    }
    // The nearest centre is the hexagon under the point (a hex lattice's Voronoi cells).
    const r0 = Math.round(y / (SQRT3 / 2));
    let best = -1;
    let bestD = Infinity;
    for (let r = r0 - 1; r <= r0 + 1; r++) {
      if (r < 0 || r >= d.n_rows) continue;
      const c0 = Math.round(x - 0.5 * (r % 2));
      for (let c = c0 - 1; c <= c0 + 1; c++) {
        if (c < 0 || c >= d.n_cols) continue;
        const [cx, cy] = centre(r * d.n_cols + c);
        const dist = (cx - x) ** 2 + (cy - y) ** 2;
        if (dist < bestD) { bestD = dist; best = r * d.n_cols + c; }
      }
    }
    return bestD <= HEX_R * HEX_R ? best : -1;
  }

  // ----------------------------------------------------------------------- drawing
  let scaleCache = { key: "", value: null };
  function modeScale() {
    const key = `${state.mapId}:${state.color}`;
    if (scaleCache.key === key) return scaleCache.value;
    const mode = MODES[state.color];
    const a = state.data.arrays;
    const n = state.data.n_cells;
    const values = new Array(n);
    for (let c = 0; c < n; c++) values[c] = mode.value(a, c);
    let [lo, hi] = mode.range(values);
    if (!(hi > lo)) hi = lo + 1;
    const t = mode.log
      ? (v) => (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))
      : (v) => (v - lo) / (hi - lo);
    scaleCache = { key, value: { mode, values, lo, hi, t } };
    return scaleCache.value;
  }

  let hatch = null;
  function hatchPattern(ctx) {
    if (hatch) return hatch;
    const tile = document.createElement("canvas");
    tile.width = tile.height = 6;
    const t = tile.getContext("2d");
    t.fillStyle = EMPTY_FACE;
    t.fillRect(0, 0, 6, 6);
    t.strokeStyle = EMPTY_HATCH;
    t.lineWidth = 1;
    t.beginPath();
    t.moveTo(0, 6); t.lineTo(6, 0);
    t.moveTo(-1, 1); t.lineTo(1, -1);
    t.moveTo(5, 7); t.lineTo(7, 5);
    t.stroke();
    hatch = ctx.createPattern(tile, "repeat");
    return hatch;
  }

  /* The cells (and the gap outline) into an off-screen canvas: redrawn only when the map,
     the colouring or the size changes; hover and selection are drawn over a copy of it. */
  let base = null;
  function renderBase() {
    const d = state.data;
    const g = state.geom;
    base = document.createElement("canvas");
    base.width = Math.round(g.width * g.dpr);
    base.height = Math.round(g.height * g.dpr);
    const ctx = base.getContext("2d");
    ctx.setTransform(g.dpr, 0, 0, g.dpr, 0, 0);
    const a = d.arrays;
    const { mode, values, t } = modeScale();
    const empty = (c) => a.n_phot[c] === 0 && mode.showEmpty !== false;
    const gap = (c) => a.n_phot[c] > 0 && !a.covered[c];
    // Overlap by a hair so anti-aliasing leaves no seams between cells.
    const grow = 1 + 0.6 / g.scale;
    let drawn = 0;
    for (let c = 0; c < d.n_cells; c++) {
      let fill;
      if (state.color === "coverage" && gap(c)) fill = GAP_COLOR;
      else if (empty(c) && (state.color !== "coverage" || a.n_spec_secure[c] === 0)) fill = hatchPattern(ctx);
      else if (values[c] === null || !Number.isFinite(values[c])) fill = NAN_FACE;
      else fill = colorAt(mode.cmap, t(values[c]));
      ctx.fillStyle = fill;
      cellPath(ctx, c, grow);
      ctx.fill();
      drawn++;
    }
    if (state.outline && state.color !== "coverage") drawGapOutline(ctx);
    const canvas = $("map-canvas");
    canvas.dataset.rendered = String(drawn);
    canvas.dataset.color = state.color;
    drawColorbar();
  }

  function draw(full = false) {
    if (!state.data) return;
    if (full || !base) renderBase();
    const g = state.geom;
    const ctx = $("map-canvas").getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, base.width, base.height);
    ctx.drawImage(base, 0, 0);
    ctx.setTransform(g.dpr, 0, 0, g.dpr, 0, 0);
    for (const c of [state.hover, state.selected]) {
      if (c < 0) continue;
      const selected = c === state.selected;
      cellPath(ctx, c, 1.3);
      ctx.lineWidth = selected ? 4.5 : 3.5;
      ctx.strokeStyle = selected ? "#fff" : "rgba(0,0,0,.5)";
      ctx.stroke();
      ctx.lineWidth = selected ? 2.5 : 1.8;
      ctx.strokeStyle = selected ? "#111" : "#fff";
      ctx.stroke();
    }
  }

  /* The boundary of the uncovered (occupied, not covered) regions, as plots.py draws it. */
  function drawGapOutline(ctx) {
    const a = state.data.arrays;
    const marked = (c) => c >= 0 && a.n_phot[c] > 0 && !a.covered[c];
    ctx.beginPath();
    for (let c = 0; c < state.data.n_cells; c++) {
      if (!marked(c)) continue;
      for (const [nb, p, q] of sides(c)) {
        // Not along the map's border: the frame of the map would turn red everywhere.
        if (nb < 0 || marked(nb)) continue;
        const [x1, y1] = toPixel(p[0], p[1]);
        const [x2, y2] = toPixel(q[0], q[1]);
        ctx.moveTo(x1, y1);
        ctx.lineTo(x2, y2);
      }
    }
    ctx.strokeStyle = GAP_COLOR;
    ctx.lineWidth = Math.max(1, Math.min(2, state.geom.scale / 5));
    ctx.lineCap = "round";
    ctx.stroke();
  }

  function drawColorbar() {
    const { mode, lo, hi } = modeScale();
    const cb = $("colorbar");
    const ctx = cb.getContext("2d");
    for (let x = 0; x < cb.width; x++) {
      ctx.fillStyle = colorAt(mode.cmap, x / (cb.width - 1));
      ctx.fillRect(x, 0, 1, cb.height);
    }
    const ticks = [];
    if (mode.log) {
      for (let p = 0; 10 ** p <= hi * 1.0001; p++) if (10 ** p >= lo) ticks.push(10 ** p);
      if (ticks[ticks.length - 1] < hi * 0.7) ticks.push(Math.round(hi));
    } else {
      for (let k = 0; k <= 4; k++) ticks.push(lo + ((hi - lo) * k) / 4);
    }
    const pos = (v) => (mode.log
      ? (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))
      : (v - lo) / (hi - lo));
    const digits = mode.log ? 0 : hi - lo < 0.5 ? 3 : 2;
    $("colorbar-ticks").innerHTML = ticks
      .map((v) => {
        const f = Math.min(Math.max(pos(v), 0), 1);
        // End labels sit inside the bar instead of hanging over its edges.
        const shift = f < 0.02 ? "0" : f > 0.98 ? "-100%" : "-50%";
        return `<span style="left:${(100 * f).toFixed(1)}%;transform:translateX(${shift})">${mode.log ? int(v) : v.toFixed(digits)}</span>`;
      })
      .join("");
    $("colorbar-label").textContent = mode.label + (mode.log ? " (log scale)" : "");
    const items = [];
    if (mode.showEmpty !== false) items.push('<li><span class="sw sw-empty"></span>empty cell</li>');
    if (mode.nan) items.push(`<li><span class="sw sw-nan"></span>${esc(mode.nan)}</li>`);
    if (state.color === "coverage") {
      items.push('<li><span class="sw sw-gap"></span>uncovered: galaxies but no secure spectrum</li>');
    } else if (state.outline) {
      items.push('<li><span class="sw sw-outline"></span>outline of uncovered cells</li>');
    }
    $("legend").innerHTML = items.join("");
  }

  // ----------------------------------------------------------------------- panels
  function renderSummary() {
    const d = state.data;
    const s = d.summary;
    const q = d.quality || {};
    const nGaps = s.n_cells_occupied - s.n_cells_occupied_covered;
    const cards = [
      ["", int(s.n_galaxies), "galaxies on the map", `${int(d.n_spectra_secure)} secure spectra`],
      [s.fraction_occupied_cells_covered >= 0.9 ? "good" : "", pct(s.fraction_occupied_cells_covered),
        "occupied cells covered", `${int(s.n_cells_occupied_covered)} of ${int(s.n_cells_occupied)} (k = ${d.k})`],
      [s.fraction_galaxies_covered >= 0.9 ? "good" : "", pct(s.fraction_galaxies_covered),
        "galaxies in covered cells", `${pct(1 - s.fraction_galaxies_covered)} in gaps`],
      [nGaps > 0 ? "bad" : "good", int(nGaps), "gaps to fill", "uncovered cells holding galaxies"],
      // counted apart: colours unlike the training set's, so their cells say nothing
      [s.n_outside_training > 0 ? "bad" : "good", int(s.n_outside_training || 0),
        "outside the training set", "galaxies in no cell's numbers"],
      ["", fmt(q.quantization_error, 3), "quantization error", `topographic error ${fmt(q.topographic_error, 3)}`],
    ];
    $("summary").innerHTML = cards
      .map(([cls, v, label, sub]) => `<div class="card ${cls}"><div class="value">${v}</div><div class="label">${label}</div><div class="sub">${sub}</div></div>`)
      .join("");
    // Which catalogue these numbers counted (the API names it in every answer).
    const cat = d.catalogue || { catalogue_id: null };
    $("summary").dataset.catalogue = cat.catalogue_id === null ? "rows" : String(cat.catalogue_id);
    state.catalogueKind = cat.kind || null;
    $("counted-from").textContent = cat.catalogue_id === null
      ? "Counted: every photometric row in the ledger."
      : cat.kind === "photometric"
        ? `Counted: photometric catalogue ${cat.catalogue_id} “${cat.name || ""}” (its own rows): gaps are weighted by it; spectra and target candidates are the ledger's.`
        : `Counted: occupation catalogue ${cat.catalogue_id} “${cat.name || ""}” (a survey's per-cell counts): gaps are weighted by it; spectra and target candidates are the ledger's rows.`;
    const kinds = ["overview", "redshift", "dispersion", "occupation", "coverage", "umatrix", "nz"];
    $("figure-links").innerHTML = kinds
      .map((k) => `<a href="/v1/maps/${d.map_id}/plots/${k}.png" target="_blank" rel="noopener">${k}</a>`)
      .join("");
    $("map-title").textContent = `Map ${d.map_id}: ${d.name}`;
    $("map-meta").textContent = `${d.n_rows} × ${d.n_cols} ${d.lattice === "hex" ? "hexagonal" : "rectangular"}${d.periodic ? ", toroidal" : ""} · ${d.feature_names.join(" ")}`;
  }

  function tooltipHtml(c) {
    const a = state.data.arrays;
    const d = state.data;
    const status = a.n_phot[c] === 0 ? "empty" : a.covered[c] ? "covered" : "<span style=\"color:#ff8a8a\">uncovered</span>";
    return `<b>cell ${c}</b> · row ${Math.floor(c / d.n_cols)}, col ${c % d.n_cols} · ${status}<br>`
      + `${int(a.n_phot[c])} galaxies · ${int(a.n_spec_secure[c])} secure spectra<br>`
      + `median photo-z ${fmt(a.zphot_median[c])} ± ${fmt(a.zphot_nmad[c])}`
      + (a.zspec_median[c] !== null ? ` · spec-z ${fmt(a.zspec_median[c])}` : "");
  }

  function badge(c) {
    const a = state.data.arrays;
    const b = $("cell-badge");
    b.hidden = false;
    if (a.n_phot[c] === 0) { b.className = "badge empty"; b.textContent = "empty"; }
    else if (a.covered[c]) { b.className = "badge covered"; b.textContent = "covered"; }
    else { b.className = "badge gap"; b.textContent = "uncovered gap"; }
  }

  let cellRequest = 0;
  async function selectCell(c) {
    const d = state.data;
    if (!d || c < 0 || c >= d.n_cells) return;
    state.selected = c;
    writeHash();
    draw();
    const panel = $("cell-panel");
    panel.dataset.cell = String(c);
    panel.dataset.loaded = "false";
    $("cell-title").textContent = `Cell ${c} · row ${Math.floor(c / d.n_cols)}, col ${c % d.n_cols}`;
    badge(c);
    const ticket = ++cellRequest;
    let detail;
    try {
      detail = await api(`/v1/maps/${d.map_id}/cells/${c}`);
    } catch (err) {
      showBanner(err.message);
      return;
    }
    if (ticket !== cellRequest) return; // a later click won
    renderCell(detail);
    panel.dataset.loaded = "true";
  }

  function renderCell(cell) {
    $("cell-hint").hidden = true;
    $("cell-body").hidden = false;
    const stats = [
      ["galaxies", int(cell.n_phot)],
      ["median photo-z", `${fmt(cell.zphot_median)} (NMAD ${fmt(cell.zphot_nmad)})`],
      ["spectra", `${int(cell.n_spec_secure)} secure of ${int(cell.n_spec)}`],
      ["median spec-z", fmt(cell.zspec_median)],
      ["neighbours covered", `${cell.neighbours.filter((n) => n.covered).length} of ${cell.neighbours.length}`],
    ];
    $("cell-stats").innerHTML = stats.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
    renderColours(cell.weights);
    drawPz(cell);
    renderCellTargets(cell.cell);
    const spectra = cell.spectra || [];
    $("cell-spectra-title").textContent = `Spectra (${int(cell.n_spec)})`;
    $("cell-spectra").innerHTML = spectra.length
      ? `<table class="list"><tr><th>source</th><th>z_spec</th><th>quality</th><th>survey</th></tr>${spectra
        .slice(0, 8)
        .map((s) => `<tr><td>${esc(s.source_id)}</td><td>${fmt(s.z_spec, 4)}${s.secure ? "" : " (insecure)"}</td><td>${esc(s.quality ?? "–")}</td><td>${esc(s.survey ?? "–")}</td></tr>`)
        .join("")}</table>${spectra.length > 8 ? `<p class="muted small">and ${spectra.length - 8} more</p>` : ""}`
      : '<p class="muted small">No spectrum in this cell.</p>';
  }

  // ----------------------------------------------------------------------- targets
  function targetParams(format) {
    const p = new URLSearchParams();
    const budget = $("t-budget").value.trim();
    const perCell = $("t-per-cell").value.trim();
    const magLimit = $("t-mag-limit").value.trim();
    if (budget) p.set("budget", budget);
    if (perCell) p.set("per_cell", perCell);
    if (magLimit) p.set("mag_limit", magLimit);
    // Gaps weighted by the catalogue counted (candidates stay rows): a survey's occupation,
    // or one photometric catalogue's own rows.
    if (state.catalogueId !== null && state.catalogueKind === "occupation") p.set("occupation_id", state.catalogueId);
    if (state.catalogueId !== null && state.catalogueKind === "photometric") p.set("catalogue_id", state.catalogueId);
    if (format) p.set("format", format);
    return p;
  }
  function targetUrl(format) {
    return `/v1/maps/${state.mapId}/targets?${targetParams(format).toString()}`;
  }

  async function loadTargets() {
    if (state.mapId === null) return;
    const key = `${state.mapId}?${targetParams("").toString()}`;
    $("download-csv").href = targetUrl("csv");
    $("download-fits").href = targetUrl("fits");
    if (key === state.targetsKey && state.targets) return;
    state.targetsKey = key;
    $("targets-count").textContent = "computing…";
    try {
      const t = await api(targetUrl("json"));
      if (key !== state.targetsKey) return;
      state.targets = t;
      state.targetsByCell = new Map();
      for (const row of t.targets) {
        if (!state.targetsByCell.has(row.cell)) state.targetsByCell.set(row.cell, []);
        state.targetsByCell.get(row.cell).push(row);
      }
      $("targets-count").textContent = `${int(t.n_targets)} targets in ${int(state.targetsByCell.size)} cells`;
      document.body.dataset.targets = String(t.n_targets);
      if (state.selected >= 0) renderCellTargets(state.selected);
    } catch (err) {
      $("targets-count").textContent = "";
      showBanner(err.message);
    }
  }

  function renderCellTargets(c) {
    const a = state.data.arrays;
    const box = $("cell-targets");
    if (a.n_phot[c] === 0) { box.innerHTML = '<p class="muted small">Empty cell: nothing to target.</p>'; return; }
    if (a.covered[c]) { box.innerHTML = '<p class="muted small">Covered: this cell needs no new spectrum.</p>'; return; }
    if (!state.targets) { box.innerHTML = '<p class="muted small">Target list loading…</p>'; return; }
    const rows = state.targetsByCell.get(c) || [];
    if (!rows.length) {
      box.innerHTML = '<p class="muted small">No target here within the current budget and magnitude limit.</p>';
      return;
    }
    const band = (state.targets.params && state.targets.params.mag_band) || "i";
    box.innerHTML = `<table class="list"><tr><th>#</th><th>source</th><th>RA</th><th>Dec</th><th>${esc(band)}</th><th>hours</th></tr>${rows
      .map((r) => `<tr><td>${int(r.priority)}</td><td>${esc(r.source_id)}</td><td>${fmt(r.ra, 5)}</td><td>${fmt(r.dec, 5)}</td><td>${fmt(r[`mag_${band}`], 2)}</td><td>${fmt(r.exposure_hours, 2)}</td></tr>`)
      .join("")}</table>`;
  }

  // ----------------------------------------------------------------------- loading
  /* The map's arrays, counted from the ledger's rows or (catalogueId) an occupation
     catalogue. An occupation that cannot be read falls back to the rows; the error goes
     with the somcal:map event, for the occupation picker to show. */
  async function loadMap(mapId, catalogueId = null) {
    document.body.dataset.state = "loading";
    const sameMap = mapId === state.mapId && state.data;
    state.mapId = mapId;
    state.targets = null;
    state.targetsKey = "";
    state.hover = -1;
    if (!sameMap) {
      state.selected = -1;
      $("cell-body").hidden = true;
      $("cell-hint").hidden = false;
      $("cell-badge").hidden = true;
      $("cell-title").textContent = "Cell";
      $("cell-panel").dataset.cell = "";
    }
    let data;
    let error = null;
    state.catalogueId = catalogueId;
    try {
      const query = catalogueId !== null ? `?catalogue_id=${catalogueId}` : "";
      data = await api(`/v1/maps/${mapId}/arrays${query}`);
    } catch (err) {
      if (catalogueId === null) throw err;
      error = err;
      state.catalogueId = null;
      data = await api(`/v1/maps/${mapId}/arrays`);
    }
    state.data = data;
    scaleCache = { key: "", value: null };
    layout();
    renderSummary();
    draw(true);
    writeHash();
    document.body.dataset.state = "ready";
    document.body.dataset.map = String(mapId);
    document.dispatchEvent(new CustomEvent("somcal:map", { detail: { mapId, data, error } }));
    loadTargets();
    if (sameMap && state.selected >= 0) {
      badge(state.selected);
      renderCellTargets(state.selected);
    }
  }

  /* Count another catalogue on the same map (null: the ledger's photometric rows). */
  function setCatalogue(catalogueId) {
    if (state.mapId === null) return Promise.resolve();
    return loadMap(state.mapId, catalogueId).catch((err) => showBanner(err.message));
  }

  async function init() {
    const wanted = readHash();
    if (wanted.color && MODES[wanted.color]) state.color = wanted.color;
    $("color-select").value = state.color;
    let list;
    try {
      [list] = await Promise.all([api("/v1/maps?status=ready"), loadPalettes()]);
    } catch (err) {
      document.body.dataset.state = "error";
      showBanner(`Cannot list maps: ${err.message}`);
      return;
    }
    state.maps = list.items;
    const select = $("map-select");
    select.innerHTML = state.maps
      .map((m) => `<option value="${m.id}">${m.id}: ${esc(m.name)} (${m.n_rows}×${m.n_cols} ${m.lattice})</option>`)
      .join("");
    if (!state.maps.length) {
      document.body.dataset.state = "empty";
      showBanner("No trained map yet. Run `somcal quickstart`, or ingest a catalogue and `somcal train` it; then reload.");
      return;
    }
    const ids = state.maps.map((m) => m.id);
    const mapId = ids.includes(wanted.map) ? wanted.map : ids[ids.length - 1];
    select.value = String(mapId);
    try {
      await loadMap(mapId, Number.isInteger(wanted.occ) && wanted.occ > 0 ? wanted.occ : null);
      if (wanted.cell !== null && wanted.cell >= 0 && wanted.cell < state.data.n_cells) {
        await selectCell(wanted.cell);
      }
    } catch (err) {
      document.body.dataset.state = "error";
      showBanner(err.message);
    }
  }

  // ----------------------------------------------------------------------- events
  function bind() {
    const canvas = $("map-canvas");
    const tip = $("tooltip");
    canvas.addEventListener("mousemove", (ev) => {
      const rect = canvas.getBoundingClientRect();
      const c = cellAt(ev.clientX - rect.left, ev.clientY - rect.top);
      if (c !== state.hover) {
        state.hover = c;
        draw();
      }
      if (c < 0) { tip.hidden = true; return; }
      tip.innerHTML = tooltipHtml(c);
      tip.hidden = false;
      const x = ev.clientX - rect.left;
      const y = ev.clientY - rect.top;
      const flip = x > rect.width - 260;
      tip.style.left = `${flip ? x - tip.offsetWidth - 14 : x + 14}px`;
      tip.style.top = `${Math.max(0, y - tip.offsetHeight - 10)}px`;
    });
    canvas.addEventListener("mouseleave", () => {
      state.hover = -1;
      tip.hidden = true;
      draw();
    });
    canvas.addEventListener("click", (ev) => {
      const rect = canvas.getBoundingClientRect();
      const c = cellAt(ev.clientX - rect.left, ev.clientY - rect.top);
      if (c >= 0) selectCell(c);
    });
    $("color-select").addEventListener("change", (ev) => {
      state.color = ev.target.value;
      writeHash();
      draw(true);
    });
    $("outline-toggle").addEventListener("change", (ev) => {
      state.outline = ev.target.checked;
      draw(true);
    });
    $("map-select").addEventListener("change", (ev) => {
      loadMap(Number(ev.target.value), null).catch((err) => showBanner(err.message));
    });
    $("targets-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      loadTargets();
    });
    // With read authentication the key must travel in a header, which a plain link
    // cannot send: keyedDownload fetches the file and hands it over as a blob instead.
    window.somcalKit.keyedDownload($("download-csv"), () => `somcal_map${state.mapId}_targets.csv`);
    window.somcalKit.keyedDownload($("download-fits"), () => `somcal_map${state.mapId}_targets.fits`);
    // A link pasted into this tab changes only the hash: follow it (writeHash replaces the
    // state without an event, so this fires only for the user's own navigation).
    window.addEventListener("hashchange", () => {
      const wanted = readHash();
      const occ = Number.isInteger(wanted.occ) && wanted.occ > 0 ? wanted.occ : null;
      if (wanted.color && MODES[wanted.color] && wanted.color !== state.color) {
        state.color = wanted.color;
        $("color-select").value = state.color;
        draw(true);
      }
      const ids = state.maps.map((m) => m.id);
      const mapId = ids.includes(wanted.map) ? wanted.map : state.mapId;
      if (mapId !== state.mapId || occ !== state.catalogueId) {
        $("map-select").value = String(mapId);
        loadMap(mapId, occ).catch((err) => showBanner(err.message));
      }
    });
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        if (!state.data) return;
        layout();
        draw(true);
      }, 120);
    });
    document.addEventListener("keydown", (ev) => {
      if (state.selected < 0 || !state.data || ev.target.tagName === "INPUT") return;
      const d = state.data;
      const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: d.n_cols, ArrowDown: -d.n_cols };
      if (!(ev.key in moves)) return;
      const next = state.selected + moves[ev.key];
      if (next >= 0 && next < d.n_cells && (Math.abs(moves[ev.key]) !== 1 || Math.floor(next / d.n_cols) === Math.floor(state.selected / d.n_cols))) {
        ev.preventDefault();
        selectCell(next);
      }
    });
  }

  window.somcal = { selectCell, setCatalogue, state };
  bind();
  init();
})();
