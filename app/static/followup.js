/* somcal dashboard: the follow-up loop of the selected map (issue 14).
 *
 * Campaigns (GET /v1/maps/{id}/campaigns): saved target lists with their outcomes so far,
 * each downloadable for mask design (GET …/campaigns/{cid}?format=csv|fits|radec). The
 * coverage history (GET /v1/maps/{id}/coverage/history: one snapshot per ledger change)
 * drawn against secure spectra, hours spent or time. The change log (GET /v1/changes?map_id=)
 * as its latest entries: who (the API key's name, never a key) did what, when.
 */
"use strict";

(() => {
  const { $, int, pct, fmt, esc, when, api, keyedDownload, note, sizeCanvas } = window.somcalKit;
  const fu = { mapId: null, snapshots: [], request: 0 };
  const N_CHANGES = 12;

  // ----------------------------------------------------------------------- campaigns
  function renderCampaigns(mapId, items) {
    const box = $("campaigns");
    box.dataset.count = String(items.length);
    if (!items.length) {
      note(box, "empty", `No campaigns yet: <code>somcal campaign create "night 1" --map ${mapId} --budget-hours 40</code> (or <code>POST /v1/maps/${mapId}/campaigns</code>) saves a target list; record what the telescope gave with <code>somcal campaign outcomes</code>.`);
      return;
    }
    const rows = items.map((c) => {
      const observed = c.n_secure + c.n_failed;
      const recorded = observed + c.n_not_observed;
      const success = observed ? `${pct(c.n_secure / observed)} <span class="muted">(${int(c.n_secure)}/${int(observed)})</span>` : '<span class="muted">–</span>';
      const base = `/v1/maps/${mapId}/campaigns/${c.id}`;
      const links = [["csv", "CSV"], ["fits", "FITS"], ["radec", "RA/Dec"]]
        .map(([f, label]) => `<a class="dl" data-format="${f}" href="${base}?format=${f}" download>${label}</a>`)
        .join(" ");
      return `<tr data-campaign="${c.id}"><td>${c.id}</td><td><b>${esc(c.name)}</b><div class="muted small">${esc(c.strategy)} · ${when(c.created_at)}</div></td>`
        + `<td class="num">${int(c.n_targets)}</td><td class="num">${int(recorded)}<div class="muted small">${int(c.n_pending)} pending</div></td>`
        + `<td class="num">${success}</td><td class="num">${fmt(c.hours_spent, 1)}<span class="muted"> / ${fmt(c.expected_hours, 1)}</span></td><td class="dls">${links}</td></tr>`;
    });
    box.innerHTML = `<table class="list campaigns"><tr><th>id</th><th>campaign</th><th class="num">targets</th><th class="num">outcomes</th><th class="num">success</th><th class="num" title="hours spent (failures included) / hours planned">hours spent / planned</th><th>target list</th></tr>${rows.join("")}</table>`;
    for (const a of box.querySelectorAll("a.dl")) {
      const ext = { csv: "csv", fits: "fits", radec: "txt" }[a.dataset.format];
      const id = a.closest("tr").dataset.campaign;
      keyedDownload(a, `somcal_map${mapId}_campaign${id}.${ext}`);
    }
  }

  // ----------------------------------------------------------------------- history
  const X_AXES = {
    spectra: { label: "secure spectra", value: (s) => s.n_spectra_secure, tick: (v) => int(Math.round(v)) },
    hours: { label: "hours spent on campaigns", value: (s) => s.hours_spent, tick: (v) => fmt(v, v < 10 ? 1 : 0) },
    time: {
      label: "time (UTC)", value: (s) => new Date(s.created_at).getTime(),
      // Dates when the history spans days, clock times (to the second within an hour) else.
      tick: (v, span) => {
        const iso = new Date(v).toISOString();
        if (span > 2 * 86400e3) return iso.slice(0, 10);
        return span > 3600e3 ? iso.slice(5, 16).replace("T", " ") : iso.slice(11, 19);
      },
    },
  };

  function drawHistory() {
    const canvas = $("history-canvas");
    const snaps = fu.snapshots;
    const { ctx, W, H } = sizeCanvas(canvas, 0.46);
    canvas.dataset.points = String(snaps.length);
    if (!snaps.length) return;
    const axis = X_AXES[$("history-x").value] || X_AXES.spectra;
    const xs = snaps.map(axis.value);
    const series = [
      { ys: snaps.map((s) => s.fraction_galaxies_covered), color: "#2f5fa7", dash: [] },
      { ys: snaps.map((s) => s.fraction_cells_covered), color: "#e07b00", dash: [5, 3] },
    ];
    const pad = { l: 40, r: 12, t: 10, b: 32 };
    let x0 = Math.min(...xs);
    let x1 = Math.max(...xs);
    if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
    let yMax = Math.max(...series.flatMap((s) => s.ys));
    yMax = Math.min(1, Math.ceil((yMax + 0.05) * 10) / 10) || 1;
    const X = (v) => pad.l + ((v - x0) / (x1 - x0)) * (W - pad.l - pad.r);
    const Y = (v) => H - pad.b - (v / yMax) * (H - pad.t - pad.b);
    ctx.font = "11px system-ui, sans-serif";
    ctx.strokeStyle = "#e2e5ea";
    ctx.fillStyle = "#6a7380";
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    for (let k = 0; k <= 4; k++) {
      const v = (yMax * k) / 4;
      ctx.beginPath(); ctx.moveTo(pad.l, Y(v)); ctx.lineTo(W - pad.r, Y(v)); ctx.stroke();
      ctx.fillText(`${Math.round(100 * v)}%`, pad.l - 4, Y(v) + 4);
    }
    ctx.textAlign = "center";
    for (let k = 0; k <= 3; k++) {
      const v = x0 + ((x1 - x0) * k) / 3;
      ctx.fillText(axis.tick(v, x1 - x0), Math.min(Math.max(X(v), pad.l + 20), W - pad.r - 30), H - pad.b + 14);
    }
    ctx.fillText(axis.label, (W + pad.l) / 2, H - 4);
    for (const s of series) {
      ctx.strokeStyle = s.color;
      ctx.fillStyle = s.color;
      ctx.lineWidth = 2;
      ctx.setLineDash(s.dash);
      ctx.beginPath();
      s.ys.forEach((y, i) => (i ? ctx.lineTo(X(xs[i]), Y(y)) : ctx.moveTo(X(xs[i]), Y(y))));
      ctx.stroke();
      ctx.setLineDash([]);
      s.ys.forEach((y, i) => { ctx.beginPath(); ctx.arc(X(xs[i]), Y(y), 3, 0, 2 * Math.PI); ctx.fill(); });
    }
  }

  function renderHistory(mapId, snaps) {
    fu.snapshots = snaps;
    drawHistory();
    const box = $("history-note");
    if (!snaps.length) {
      note(box, "empty", "No coverage snapshot yet: every change to the ledger (a catalogue ingested or deleted, a campaign saved, outcomes recorded) leaves one. <code>somcal history --plot</code> draws the same.");
      return;
    }
    const first = snaps[0];
    const last = snaps[snaps.length - 1];
    box.innerHTML = `<p class="muted small">${int(snaps.length)} snapshots since ${when(first.created_at)}: galaxies in covered cells ${pct(first.fraction_galaxies_covered)} → <b>${pct(last.fraction_galaxies_covered)}</b>, with ${int(last.n_spectra_secure)} secure spectra and ${fmt(last.hours_spent, 1)} h of campaigns.</p>`;
  }

  // ----------------------------------------------------------------------- changes
  function renderChanges(mapId, page) {
    const box = $("changes");
    $("changes-count").textContent = page.total ? `(latest ${Math.min(page.items.length, page.total)} of ${int(page.total)})` : "";
    if (!page.items.length) {
      note(box, "empty", "Nothing has changed the ledger of this map yet.");
      return;
    }
    const rows = page.items.slice().reverse().map((c) => {
      const what = c.campaign_id ? `campaign ${c.campaign_id}` : c.catalogue_id ? `catalogue ${c.catalogue_id}` : "";
      return `<tr data-change="${c.id}"><td>${when(c.created_at)}</td><td>${esc(c.key_name ?? "(no key)")}</td><td>${esc(c.action.replace(/_/g, " "))}</td><td>${esc(what)}</td></tr>`;
    });
    box.innerHTML = `<table class="list changes"><tr><th>time (UTC)</th><th>key name</th><th>action</th><th>on</th></tr>${rows.join("")}</table>`;
  }

  async function latestChanges(mapId) {
    // The latest N, newest first from the API, shown oldest first like the history.
    const page = await api(`/v1/changes?map_id=${mapId}&limit=${N_CHANGES}&order=newest`);
    return { ...page, items: page.items.slice().reverse() };
  }

  // ----------------------------------------------------------------------- loading
  async function part(id, load, render) {
    const box = $(id);
    try {
      render(await load());
      return true;
    } catch (err) {
      note(box, "error", esc(err.message));
      return false;
    }
  }

  async function loadFollowup(mapId) {
    const panel = $("tab-followup");
    const ticket = ++fu.request;
    panel.dataset.state = "loading";
    const stale = () => ticket !== fu.request;
    const results = await Promise.all([
      part("campaigns", () => api(`/v1/maps/${mapId}/campaigns`), (v) => stale() || renderCampaigns(mapId, v)),
      part("history-note", () => api(`/v1/maps/${mapId}/coverage/history`), (v) => stale() || renderHistory(mapId, v.snapshots)),
      part("changes", () => latestChanges(mapId), (v) => stale() || renderChanges(mapId, v)),
    ]);
    if (stale()) return;
    panel.dataset.state = results.every(Boolean) ? "ready" : "error";
    panel.dataset.map = String(mapId);
  }

  document.addEventListener("somcal:map", (ev) => {
    // The follow-up is the ledger's: another counted catalogue on the same map changes nothing.
    if (ev.detail.mapId === fu.mapId) return;
    fu.mapId = ev.detail.mapId;
    fu.snapshots = [];
    loadFollowup(fu.mapId);
  });
  document.addEventListener("somcal:tab", (ev) => { if (ev.detail.tab === "followup") drawHistory(); });
  $("history-x").addEventListener("change", drawHistory);
  $("followup-refresh").addEventListener("click", () => { if (fu.mapId !== null) loadFollowup(fu.mapId); });
  let resizeTimer = null;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(drawHistory, 150); });
  window.somcalFollowup = { reload: () => fu.mapId !== null && loadFollowup(fu.mapId) };
})();
