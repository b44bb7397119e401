/* somcal dashboard: the deep/wide calibrations that use the selected map (issue 11).
 *
 * GET /v1/calibrations lists them all; those whose deep or wide map is the selected one are
 * shown with their per-bin ⟨z⟩ ± ensemble spread, N_eff and the share of weight in deep
 * cells without spectra, and the n(z) figure (GET /v1/calibrations/{id}/plots/nz.png).
 * While a calibration waits for or runs its job (created, recomputed, or after new spectra)
 * the panel follows the job (GET /v1/jobs/{id}) and refreshes when it ends.
 */
"use strict";

(() => {
  const { $, int, fmt, pct, esc, when, api, loadImage, note } = window.somcalKit;
  const cal = { mapId: null, request: 0, timer: null };
  const POLL_MS = 1500;
  const RUNNING = new Set(["queued", "computing"]);

  function role(c, mapId) {
    const roles = [];
    if (c.deep_map_id === mapId) roles.push("deep");
    if (c.wide_map_id === mapId) roles.push("wide");
    return roles.join(" + ");
  }

  function binsTable(c) {
    if (!c.bins || !c.bins.length) return '<p class="muted small">No bins computed yet.</p>';
    const rows = c.bins.map((b) => {
      const spread = b.mean_z_std !== null && b.mean_z_std !== undefined ? ` ± ${fmt(b.mean_z_std, 4)}` : "";
      const ci = b.mean_z_68_low !== null && b.mean_z_68_low !== undefined
        ? `<span class="muted small"> [${fmt(b.mean_z_68_low, 3)}, ${fmt(b.mean_z_68_high, 3)}]</span>` : "";
      return `<tr data-bin="${b.bin}"><td>${b.bin}</td><td>${fmt(b.z_lo, 2)}–${fmt(b.z_hi, 2)}</td>`
        + `<td class="num mean-z">${fmt(b.mean_z, 4)}${spread}${ci}</td><td class="num">${fmt(b.width, 3)}</td>`
        + `<td class="num">${int(b.n_galaxies)}</td><td class="num">${fmt(b.n_eff, 0)}</td><td class="num">${pct(b.no_spec_fraction)}</td></tr>`;
    });
    return `<table class="list bins"><tr><th>bin</th><th>photo-z / z range</th><th class="num">⟨z⟩ ± spread [68%]</th><th class="num">width</th><th class="num">galaxies</th><th class="num">N_eff</th><th class="num">no spectrum</th></tr>${rows.join("")}</table>`;
  }

  function statusLine(c, job) {
    if (RUNNING.has(c.status)) {
      const progress = job ? Math.round(100 * job.progress) : 0;
      const message = job && job.message ? ` · ${esc(job.message)}` : "";
      return `<div class="job" data-job="${c.job_id ?? ""}"><span class="badge running">${esc(c.status)}</span> job ${c.job_id ?? "–"}${job ? ` (${esc(job.status)})` : ""}${message}<div class="progress"><div style="width:${progress}%"></div></div></div>`;
    }
    if (c.status === "failed") {
      return `<div class="note error">Failed: ${esc(c.error || "no reason given")} <span class="muted">— fix the input, then <code>somcal calibration recompute ${c.id}</code>.</span></div>`;
    }
    if (c.missing && c.missing.length) {
      return `<div class="note error">Inputs deleted since: ${esc(c.missing.join(", "))}; this calibration cannot be used.</div>`;
    }
    return "";
  }

  function card(c, mapId, job) {
    const counts = c.counts || {};
    const head = `<div class="cal-head"><div><b>${esc(c.name)}</b> <span class="muted small">calibration ${c.id} · this map is its ${role(c, mapId)} map · deep ${c.deep_map_id ?? "–"}, wide ${c.wide_map_id ?? "–"} · ${esc(c.binning)} binning, ${esc(c.ensemble_method)} ensemble</span></div>`
      + `<span class="badge ${c.status === "ready" ? "covered" : c.status === "failed" ? "gap" : "running"}">${esc(c.status)}</span></div>`;
    const meta = `<p class="muted small">version ${int(c.version)}${c.computed_at ? ` · computed ${when(c.computed_at)}` : ""}${counts.n_spectra !== undefined ? ` · ${int(counts.n_spectra)} spectra` : ""}${counts.n_transfer_paired !== undefined ? ` · ${int(counts.n_transfer_paired)} transfer pairs` : ""}</p>`;
    const ready = c.status === "ready" && !(c.missing && c.missing.length);
    const body = ready
      ? `<div class="cal-body">${binsTable(c)}<div><img class="figure nz" data-calibration="${c.id}" alt="n(z) of calibration ${c.id}"><p class="small"><a href="/v1/calibrations/${c.id}/nz?format=sacc" download>SACC</a> · <a href="/v1/calibrations/${c.id}/nz?format=fits" download>2pt FITS</a> · <a href="/v1/calibrations/${c.id}/nz?format=qp" download>qp</a></p></div></div>`
      : (c.bins && c.bins.length ? `<p class="muted small">Last computed result:</p>${binsTable(c)}` : "");
    const warned = (c.warnings || []).map((w) => `<div class="note warning">${esc(w)}</div>`).join("");
    return `<article class="calibration" data-calibration="${c.id}" data-status="${esc(c.status)}" data-version="${c.version}">${head}${meta}${statusLine(c, job)}${warned}${body}</article>`;
  }

  async function loadCalibrations(mapId) {
    const panel = $("tab-calibrations");
    const box = $("calibrations");
    const ticket = ++cal.request;
    clearTimeout(cal.timer);
    panel.dataset.state = "loading";
    let mine;
    try {
      const list = await api("/v1/calibrations");
      mine = list.items.filter((c) => c.deep_map_id === mapId || c.wide_map_id === mapId);
    } catch (err) {
      if (ticket !== cal.request) return;
      panel.dataset.state = "error";
      note(box, "error", `Cannot list calibrations: ${esc(err.message)}`);
      return;
    }
    if (ticket !== cal.request) return;
    $("calibrations-count").textContent = mine.length ? `${mine.length} calibration${mine.length > 1 ? "s use" : " uses"} map ${mapId}` : "";
    if (!mine.length) {
      note(box, "empty", `No deep/wide calibration uses this map: <code>somcal calibration create --deep-map ${mapId} --wide-map W --deep D --wide S --transfer T</code> (or <code>POST /v1/calibrations</code>) ties a deep and a wide map, their catalogues and a transfer catalogue; its n(z) is computed as a job.`);
      panel.dataset.state = "ready";
      return;
    }
    // The jobs of the calibrations still waiting or running, for their progress.
    const jobs = {};
    await Promise.all(mine.filter((c) => RUNNING.has(c.status) && c.job_id).map(async (c) => {
      try { jobs[c.id] = await api(`/v1/jobs/${c.job_id}`); } catch (_) { /* shown without */ }
    }));
    if (ticket !== cal.request) return;
    box.innerHTML = mine.map((c) => card(c, mapId, jobs[c.id])).join("");
    const running = mine.some((c) => RUNNING.has(c.status));
    panel.dataset.state = running ? "running" : "ready";
    await Promise.all([...box.querySelectorAll("img.nz")].map(async (img) => {
      try {
        await loadImage(img, `/v1/calibrations/${img.dataset.calibration}/plots/nz.png`);
      } catch (err) {
        const div = document.createElement("div");
        note(div, "error", `n(z) figure unavailable: ${esc(err.message)}`);
        img.replaceWith(div);
      }
    }));
    if (running && ticket === cal.request) {
      cal.timer = setTimeout(() => { if (ticket === cal.request) loadCalibrations(mapId); }, POLL_MS);
    }
  }

  document.addEventListener("somcal:map", (ev) => {
    if (ev.detail.mapId === cal.mapId) return;
    cal.mapId = ev.detail.mapId;
    loadCalibrations(cal.mapId);
  });
  $("calibrations-refresh").addEventListener("click", () => { if (cal.mapId !== null) loadCalibrations(cal.mapId); });
  window.somcalCalibrations = { reload: () => cal.mapId !== null && loadCalibrations(cal.mapId) };
})();
