/* somcal dashboard: what every panel script shares (window.somcalKit).
 *
 * The dashboard is several plain scripts, no build step and no third-party code, loaded in
 * order by index.html: this one, cell.js (a pinned cell's colours and p(z) chart),
 * dashboard.js (the map, its cells and target list),
 * occupation.js (which catalogue is counted, the sky map), followup.js (campaigns, coverage
 * history, change log) and calibrations.js (deep/wide calibrations). One file grew past
 * what is comfortable to read (800+ lines), so each panel is a file of its own; they talk
 * through window.somcal (the map's state) and DOM events on `document`:
 *   somcal:map   {mapId, data}   a map (or its counted catalogue) was loaded and drawn
 * Panels report progress in data attributes (data-state, data-loaded) for the browser tests.
 */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const fmt = (v, d = 3) => (v === null || v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(d));
  const int = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"));
  const pct = (v) => (v === null || v === undefined || !Number.isFinite(v) ? "–" : `${(100 * v).toFixed(1)}%`);
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
  const when = (iso) => {
    if (!iso) return "–";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().slice(0, 16).replace("T", " ");
  };

  let apiKey = sessionStorage.getItem("somcal-api-key") || "";
  let declined = false;

  /* GET with the API key when one was given; on 401/403 ask for one and retry. The panels
     load in parallel: a request refused while another one already got a key retries with
     it, and after a cancelled prompt the page does not ask again until reloaded. */
  async function request(path) {
    const sent = apiKey;
    const headers = sent ? { "X-API-Key": sent } : {};
    const res = await fetch(path, { headers });
    if (res.status === 401 || res.status === 403) {
      if (apiKey && apiKey !== sent) return request(path);
      const key = declined ? null : window.prompt("This somcal server needs an API key to read (X-API-Key):");
      if (key) {
        apiKey = key.trim();
        sessionStorage.setItem("somcal-api-key", apiKey);
        return request(path);
      }
      declined = true;
    }
    if (!res.ok) {
      let detail = `${res.status} ${res.statusText}`;
      try {
        const body = await res.json();
        if (body.detail) detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      } catch (_) { /* not JSON */ }
      const err = new Error(`${path}: ${detail}`);
      err.status = res.status;
      throw err;
    }
    return res;
  }
  const api = async (path) => (await request(path)).json();

  /* An image from the API into an <img>: fetched (so the key travels in a header and an
     error can be shown where the image would be), then shown from a blob URL. */
  async function loadImage(img, path) {
    img.dataset.loaded = "false";
    const res = await request(path);
    const url = URL.createObjectURL(await res.blob());
    await new Promise((resolve, reject) => {
      img.onload = resolve;
      img.onerror = () => reject(new Error(`${path}: not an image`));
      img.src = url;
    });
    img.dataset.loaded = "true";
  }

  /* A download link that also works when reads need a key (a plain link sends no header). */
  function keyedDownload(link, filename) {
    link.addEventListener("click", async (ev) => {
      if (!apiKey) return;
      ev.preventDefault();
      try {
        const res = await request(link.getAttribute("href"));
        const url = URL.createObjectURL(await res.blob());
        const a = document.createElement("a");
        a.href = url;
        a.download = typeof filename === "function" ? filename() : filename;
        a.click();
        URL.revokeObjectURL(url);
      } catch (err) {
        showBanner(`download failed: ${err.message}`);
      }
    });
  }

  function showBanner(message) {
    const b = $("banner");
    b.textContent = message;
    b.hidden = !message;
  }

  /* A panel's message box: an error (red) or an empty state (what to do next). */
  function note(box, kind, html) {
    box.innerHTML = `<div class="note ${kind}">${html}</div>`;
  }

  /* Fresh canvas pixels at the element's laid-out width (crisp on any screen). */
  function sizeCanvas(canvas, ratio) {
    const dpr = window.devicePixelRatio || 1;
    const W = canvas.clientWidth || 480;
    const H = Math.round(W * ratio);
    canvas.width = Math.round(W * dpr);
    canvas.height = Math.round(H * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    return { ctx, W, H };
  }

  const hasKey = () => Boolean(apiKey);
  const key = () => apiKey;
  const setKey = (k) => { apiKey = k; };
  window.somcalKit = {
    $, fmt, int, pct, esc, when, api, request, loadImage, keyedDownload, showBanner, note,
    sizeCanvas, hasKey, key, setKey,
  };
})();
