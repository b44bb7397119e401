/* somcal dashboard: a cell's details drawn from GET /v1/maps/{id}/cells/{cell}: its colours
 * (the weight vector, as bars around zero) and its p(z) chart (photo-z of its galaxies and
 * its secure spectra). Pure drawing, no page state: dashboard.js calls these when a cell is
 * pinned (window.somcalCell). A file of its own to keep dashboard.js readable (see common.js).
 */
"use strict";

(() => {
  const { $, fmt, esc } = window.somcalKit;

  function renderColours(w) {
    const names = w.feature_names || [];
    const vals = w.values || [];
    const lim = Math.max(0.5, ...vals.map((v) => Math.abs(v ?? 0)));
    $("cell-colours").innerHTML = names
      .map((n, i) => {
        const v = vals[i];
        const frac = v === null || !Number.isFinite(v) ? 0 : v / lim;
        const left = 50 + Math.min(frac, 0) * 50;
        return `<tr><td class="name">${esc(n)}</td><td class="val">${fmt(v, 3)}</td><td><div class="cbar"><div class="zero" style="left:50%"></div><div class="fill" style="left:${left}%;width:${Math.abs(frac) * 50}%"></div></div></td></tr>`;
      })
      .join("");
  }

  function drawPz(cell) {
    const canvas = $("pz-canvas");
    const dpr = window.devicePixelRatio || 1;
    const W = canvas.clientWidth || 360;
    const H = Math.round(W * 0.47);
    canvas.width = Math.round(W * dpr);
    canvas.height = Math.round(H * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    const edges = cell.z_edges;
    const curves = [cell.pz_phot, cell.pz_spec].filter(Boolean);
    const pad = { l: 34, r: 10, t: 8, b: 26 };
    ctx.font = "11px system-ui, sans-serif";
    if (!curves.length) {
      ctx.fillStyle = "#6a7380";
      ctx.fillText("no redshifts in this cell", pad.l, H / 2);
      return;
    }
    // x range: where either curve has mass, with a margin, at least 0.5 wide.
    let lastBin = 0;
    let firstBin = edges.length;
    for (const cv of curves) {
      cv.forEach((v, i) => {
        if (v > 0) { lastBin = Math.max(lastBin, i); firstBin = Math.min(firstBin, i); }
      });
    }
    let zlo = Math.max(0, edges[firstBin] - 0.2);
    let zhi = Math.min(edges[edges.length - 1], edges[lastBin + 1] + 0.2);
    if (zhi - zlo < 0.6) { const mid = (zlo + zhi) / 2; zlo = Math.max(0, mid - 0.3); zhi = zlo + 0.6; }
    const ymax = Math.max(...curves.flat()) * 1.1 || 1;
    const X = (z) => pad.l + ((z - zlo) / (zhi - zlo)) * (W - pad.l - pad.r);
    const Y = (p) => H - pad.b - (p / ymax) * (H - pad.t - pad.b);
    // axes and ticks
    ctx.strokeStyle = "#c9ced6";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(pad.l, pad.t); ctx.lineTo(pad.l, H - pad.b); ctx.lineTo(W - pad.r, H - pad.b);
    ctx.stroke();
    ctx.fillStyle = "#6a7380";
    const step = zhi - zlo > 2 ? 0.5 : zhi - zlo > 1 ? 0.25 : 0.1;
    for (let z = Math.ceil(zlo / step) * step; z <= zhi + 1e-9; z += step) {
      const x = X(z);
      ctx.fillRect(x, H - pad.b, 1, 4);
      ctx.textAlign = "center";
      ctx.fillText(String(Number(z.toFixed(2))), x, H - pad.b + 15);
    }
    ctx.textAlign = "right";
    ctx.fillText(ymax.toFixed(ymax > 10 ? 0 : 1), pad.l - 4, pad.t + 9);
    ctx.fillText("0", pad.l - 4, H - pad.b);
    ctx.textAlign = "left";
    ctx.fillText("z", W - pad.r - 6, H - pad.b - 4);
    const step_path = (cv) => {
      ctx.beginPath();
      ctx.moveTo(X(Math.max(edges[0], zlo)), Y(0));
      for (let i = 0; i < cv.length; i++) {
        if (edges[i + 1] < zlo || edges[i] > zhi) continue;
        const x1 = X(Math.max(edges[i], zlo));
        const x2 = X(Math.min(edges[i + 1], zhi));
        ctx.lineTo(x1, Y(cv[i]));
        ctx.lineTo(x2, Y(cv[i]));
      }
      ctx.lineTo(X(zhi), Y(0));
    };
    if (cell.pz_phot) {
      step_path(cell.pz_phot);
      ctx.fillStyle = "rgba(47, 95, 167, .28)";
      ctx.fill();
      ctx.strokeStyle = "#2f5fa7";
      ctx.lineWidth = 1.2;
      ctx.stroke();
    }
    if (cell.pz_spec) {
      step_path(cell.pz_spec);
      ctx.strokeStyle = "#e07b00";
      ctx.lineWidth = 2;
      ctx.stroke();
    }
  }

  window.somcalCell = { renderColours, drawPz };
})();
