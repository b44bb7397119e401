/* somcal dashboard: which catalogue the map's counts come from (issue 15), the tabs of the
 * work panel, and the "Occupation & sky" tab.
 *
 * The picker lists the photometric catalogues (GET /v1/catalogues) and the map's
 * occupation catalogues (GET /v1/maps/{id}/occupations): a
 * survey's per-cell counts, stored without rows. Choosing one reloads the map's arrays and
 * coverage summary with ?catalogue_id= (dashboard.js, somcal.setCatalogue); the answer
 * names the catalogue it counted, shown under the picker. An occupation split by HEALPix
 * pixel has a sky map of the share of its galaxies in uncovered cells
 * (GET /v1/maps/{id}/occupations/{cid}/sky?format=png).
 */
"use strict";

(() => {
  const { $, int, esc, when, api, loadImage, note } = window.somcalKit;
  const occ = { mapId: null, items: [], rowCatalogues: [], request: 0 };

  // ----------------------------------------------------------------------- tabs
  function showTab(name) {
    for (const tab of document.querySelectorAll("#work-panel .tab")) {
      tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
    }
    for (const body of document.querySelectorAll("#work-panel .tab-body")) {
      body.hidden = body.id !== `tab-${name}`;
    }
    document.dispatchEvent(new CustomEvent("somcal:tab", { detail: { tab: name } }));
  }
  for (const tab of document.querySelectorAll("#work-panel .tab")) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
  }
  window.somcalKit.showTab = showTab;

  // ----------------------------------------------------------------------- picker
  function splits(o) {
    const parts = [];
    if (o.mag_edges) parts.push(`${o.mag_edges.length - 1} ${esc(o.mag_band || "mag")} bins`);
    if (o.z_edges) parts.push(`${o.z_edges.length - 1} photo-z bins`);
    if (o.healpix_order !== null && o.healpix_order !== undefined) parts.push(`HEALPix order ${o.healpix_order}`);
    return parts.length ? parts.join(", ") : "none";
  }

  function fillPicker(selected) {
    const select = $("occ-select");
    // A photometric catalogue counts its own rows (a deep field beside the survey).
    select.innerHTML = '<option value="">every photometric row (ledger)</option>'
      + occ.rowCatalogues
        .map((c) => `<option value="${c.id}">photometric ${c.id}: ${esc(c.name)} (${int(c.n_rows)} rows)</option>`)
        .join("")
      + occ.items
        .map((o) => `<option value="${o.catalogue.id}">occupation ${o.catalogue.id}: ${esc(o.catalogue.name)} (${int(o.n_galaxies)} galaxies)</option>`)
        .join("");
    select.value = selected === null ? "" : String(selected);
    const choices = occ.items.length + occ.rowCatalogues.length;
    select.disabled = !choices;
    select.title = choices ? "" : "No catalogue to count on this map yet";
  }

  function renderList(selected) {
    const box = $("occupations");
    if (!occ.items.length) {
      note(box, "empty", `No occupation catalogue on this map yet: count a survey with <code>somcal occupation DATASET --map ${occ.mapId} --healpix-order 5</code> (add <code>--dask ADDRESS</code> for a cluster), or upload a table it wrote with <code>POST /v1/maps/${occ.mapId}/occupations</code>. Coverage is counted from the ledger's photometric rows meanwhile.`);
      return;
    }
    const rows = occ.items.map((o) => {
      const id = o.catalogue.id;
      return `<tr class="${id === selected ? "chosen" : ""}" data-catalogue="${id}"><td>${id}</td><td>${esc(o.catalogue.name)}</td>`
        + `<td title="${esc(o.dataset)}">${esc(o.dataset.split("/").pop())}</td><td class="num">${int(o.n_rows)}</td>`
        + `<td class="num">${int(o.n_galaxies)}</td><td>${splits(o)}</td><td>${when(o.created_at)}</td>`
        + `<td><button type="button" class="link-button" data-count="${id}">${id === selected ? "counted" : "count this"}</button></td></tr>`;
    });
    box.innerHTML = `<table class="list"><tr><th>id</th><th>name</th><th>dataset</th><th class="num">rows</th><th class="num">galaxies</th><th>splits</th><th>created (UTC)</th><th></th></tr>${rows.join("")}</table>`;
    for (const b of box.querySelectorAll("button[data-count]")) {
      b.addEventListener("click", () => choose(Number(b.dataset.count)));
    }
  }

  async function renderSky(selected) {
    const box = $("sky");
    box.dataset.state = "none";
    if (selected === null) {
      box.innerHTML = occ.items.length
        ? '<p class="muted small">Choose an occupation catalogue above (or in the picker under the map) to see its sky map.</p>'
        : "";
      return;
    }
    const o = occ.items.find((x) => x.catalogue.id === selected);
    if (!o) return;
    if (o.healpix_order === null || o.healpix_order === undefined) {
      note(box, "empty", `Occupation ${selected} has no sky split: count it again with <code>--healpix-order N</code> (and <code>--ra-column</code>/<code>--dec-column</code>) to map the uncovered share across the footprint.`);
      return;
    }
    box.dataset.state = "loading";
    box.innerHTML = `<h3>Share of galaxies in uncovered cells, per HEALPix pixel (order ${o.healpix_order})</h3><img id="sky-image" class="figure" alt="sky map of the uncovered share">`;
    try {
      await loadImage($("sky-image"), `/v1/maps/${occ.mapId}/occupations/${selected}/sky?format=png`);
      box.dataset.state = "ready";
    } catch (err) {
      box.dataset.state = "error";
      note(box, "error", `Sky map unavailable: ${esc(err.message)}`);
    }
  }

  function choose(catalogueId) {
    $("occ-select").value = catalogueId === null ? "" : String(catalogueId);
    return window.somcal.setCatalogue(catalogueId);
  }

  async function onMap(ev) {
    const { mapId, data, error } = ev.detail;
    const selected = data.catalogue && data.catalogue.catalogue_id !== null ? data.catalogue.catalogue_id : null;
    const errBox = $("occ-error");
    errBox.hidden = !error;
    errBox.textContent = error ? `Could not count that catalogue, showing the ledger's rows instead: ${error.message}` : "";
    const panel = $("tab-occupation");
    if (mapId !== occ.mapId) {
      occ.mapId = mapId;
      occ.items = [];
      occ.rowCatalogues = [];
      const ticket = ++occ.request;
      panel.dataset.state = "loading";
      fillPicker(null);
      try {
        const items = await api(`/v1/maps/${mapId}/occupations`);
        const rows = await api("/v1/catalogues?kind=photometric&limit=1000");
        if (ticket !== occ.request) return;
        occ.items = items;
        occ.rowCatalogues = rows.items;
      } catch (err) {
        if (ticket !== occ.request) return;
        panel.dataset.state = "error";
        fillPicker(null);
        note($("occupations"), "error", `Cannot list the map's occupation catalogues: ${esc(err.message)}`);
        $("sky").innerHTML = "";
        return;
      }
    }
    fillPicker(selected);
    renderList(selected);
    panel.dataset.state = "ready";
    panel.dataset.selected = selected === null ? "" : String(selected);
    await renderSky(selected);
  }

  document.addEventListener("somcal:map", (ev) => { onMap(ev); });
  $("occ-select").addEventListener("change", (ev) => {
    choose(ev.target.value === "" ? null : Number(ev.target.value));
  });
})();
