"""The dashboard: its per-cell arrays (SQLite and PostgreSQL), its static page, and the page
end to end in headless Chromium against a real server.

The browser test uses Debian's ``chromium``. If it is missing the test installs it with
apt-get, but only when running as root with CI=true or SOMCAL_INSTALL_BROWSER=1; otherwise
it skips and says how to enable it. Nothing else is downloaded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from app.api.routes.dashboard import STATIC_DIR
from app.core.db import make_engine, make_session_factory
from app.models import Map
from som import SOM
from som.plotting import cell_centres, map_colormap_stops

REPO = Path(__file__).resolve().parents[2]


def _ledger(trained_map, ingest, mock_catalogue, lattice="rect", n_rows=6, n_cols=9) -> int:
    """A map trained on a mock's photometry, and the mock's spectra after it."""
    frame = mock_catalogue(500, seed=11, spec_fraction=0.15)
    map_id, _ = trained_map(frame, random_state=3, n_rows=n_rows, n_cols=n_cols, lattice=lattice)
    ingest("spectroscopic", frame, "spec.csv")
    return map_id


# ----------------------------------------------------------------------------- arrays
def test_arrays_agree_with_cells_coverage_and_the_stored_map(
    client, settings, mock_catalogue, trained_map, ingest
):
    map_id = _ledger(trained_map, ingest, mock_catalogue, lattice="hex")
    r = client.get(f"/v1/maps/{map_id}/arrays")
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["n_rows"], d["n_cols"], d["n_cells"], d["lattice"]) == (6, 9, 54, "hex")
    a = d["arrays"]
    assert all(len(v) == 54 for v in a.values())

    cells = client.get(f"/v1/maps/{map_id}/cells?limit=10000").json()["items"]
    for key in ("n_phot", "n_spec", "n_spec_secure"):
        assert a[key] == [c[key] for c in cells]
    nan = float("nan")
    for key in ("zphot_median", "zphot_nmad", "zspec_median"):
        np.testing.assert_allclose(
            [nan if v is None else v for v in a[key]],
            [nan if c[key] is None else c[key] for c in cells],
            atol=5e-5,
        )
    cov = client.get(f"/v1/maps/{map_id}/coverage").json()
    assert [bool(c) for c in a["covered"]] == cov["cells"]["covered"]
    assert d["summary"] == cov["summary"] and sum(a["covered"]) > 0
    assert d["feature_names"][0] == "u-g" and d["k"] == 1

    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as s:
        som = SOM.from_bytes(s.get(Map, map_id).weights)
    engine.dispose()
    np.testing.assert_allclose(
        np.array(a["umatrix"], dtype=float), som.distance_map().ravel(), atol=5e-5
    )

    assert client.get(f"/v1/maps/{map_id + 1}/arrays").status_code == 404


def test_pages_are_served_and_load_nothing_from_outside(client):
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/dashboard"
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/dashboard.js">' in page.text
    # Every script the page loads is served (the dashboard is several plain files).
    scripts = re.findall(r'<script src="(/static/[\w.]+\.js)">', page.text)
    assert {"/static/common.js", "/static/followup.js", "/static/calibrations.js"} <= set(scripts)
    for src in scripts:
        js = client.get(src)
        assert js.status_code == 200 and "javascript" in js.headers["content-type"], src
    css = client.get("/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    # Every asset is local: no http(s):// or protocol-relative URL in src/href/url()/fetch.
    external = re.compile(
        r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|"""
        r"""fetch\(\s*["'`](?:https?:)?//|import\s.*from\s+["'](?:https?:)?//"""
    )
    for path in sorted(STATIC_DIR.iterdir()):
        if path.suffix in (".html", ".js", ".css"):
            assert not external.search(path.read_text()), path.name
    assert client.get("/static/nope.js").status_code == 404


def test_dashboard_colours_are_the_figures_colour_maps(client):
    """The page draws with the stops the API samples from matplotlib, keyed by plot kind,
    not with a copy of them: change a figure's colour map and the dashboard follows."""
    r = client.get("/v1/plots/colormaps")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == {"n": 256, "colormaps": map_colormap_stops(256)}
    assert set(body["colormaps"]) == {"redshift", "dispersion", "occupation", "coverage", "umatrix"}
    assert body["colormaps"]["redshift"][0] == "#440154"  # viridis, as the PNG draws it
    js = (STATIC_DIR / "dashboard.js").read_text()
    modes = set(re.findall(r'cmap: "(\w+)"', js))
    assert modes and modes <= set(body["colormaps"]), modes
    assert not re.search(r"[0-9a-f]{60}", js), "a colour table copied into the script"


# ----------------------------------------------------------------------------- browser
def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    allowed = os.environ.get("CI") == "true" or os.environ.get("SOMCAL_INSTALL_BROWSER") == "1"
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and allowed):
        pytest.skip(
            "Chromium is not installed: `apt-get install chromium`, or run the tests as root "
            "with CI=true or SOMCAL_INSTALL_BROWSER=1 to let this test install it"
        )
    if not shutil.which("apt-get"):
        pytest.skip("Chromium is not installed and there is no apt-get to install it with")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    found = shutil.which("chromium")
    if done.returncode != 0 or not found:
        pytest.skip(f"could not install chromium with apt-get: {done.stderr.strip()[-300:]}")
    return found


@pytest.fixture
def server(app, harness):
    """The app served by uvicorn on a free port of 127.0.0.1 (in a thread of this process,
    so no second start-up of numba and the app; the browser talks real HTTP to it)."""
    with harness.ThreadServer(app) as base:
        with urllib.request.urlopen(f"{base}/health", timeout=5) as r:
            assert r.status == 200
        yield base


class DevTools:
    """A headless Chromium driven over the Chrome DevTools protocol (a websocket)."""

    def __init__(
        self,
        chrome: str,
        profile: Path,
        width: int = 1440,
        height: int = 1000,
        args: tuple[str, ...] = (),
    ):
        from websockets.sync.client import connect

        profile.mkdir(parents=True, exist_ok=True)
        # The switches keep Chromium from reaching the network on its own.
        self.proc = subprocess.Popen(
            [
                chrome,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                *args,
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail("Chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(
            connect(pages[0]["webSocketDebuggerUrl"], max_size=64 * 2**20)
        )
        self._id = 0
        self.events: list[dict] = []  # what the page reported between calls (Network.*, ...)
        # The window includes browser chrome even headless: fix the page's own viewport.
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self._id:
                assert "error" not in msg, (method, msg["error"])
                return msg["result"]
            if "method" in msg:
                self.events.append(msg)

    def eval(self, expression: str):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in r, r["exceptionDetails"]
        return r["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        # While the page loads, parts of it (even document.body) may not exist yet.
        guarded = f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return null; }} }})()"
        while True:
            value = self.eval(guarded)
            if value:
                return value
            if time.monotonic() > deadline:
                state = self.eval(
                    "document.body && document.body.dataset.state + ' ' + "
                    "(window.banner ? banner.textContent : document.body.innerText.slice(0, 300))"
                )
                pytest.fail(f"timed out waiting for {expression!r}; page: {state}")
            time.sleep(0.05)

    def mouse(self, kind: str, x: float, y: float) -> None:
        extra = {"button": "left", "clickCount": 1} if kind != "mouseMoved" else {}
        self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(
            base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        )

    def close(self) -> None:
        try:
            if hasattr(self, "_stack"):
                self._stack.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _cell_pixel(rect: dict, n_rows: int, n_cols: int, lattice: str, cell: int):
    """Where a cell's centre is on the page: the lattice positions of som.plotting (the same
    as som.grid) in the dashboard's layout (map bounding box plus a 0.35-cell margin)."""
    margin = 0.35
    hex_r = 1 / np.sqrt(3)
    x, y = cell_centres(n_rows, n_cols, lattice)[cell]
    if lattice == "hex":
        span_x = n_cols + 0.5 + 2 * margin
        span_y = (n_rows - 1) * np.sqrt(3) / 2 + 2 * hex_r + 2 * margin
        x0, y0 = 0.5 + margin, hex_r + margin
    else:
        span_x, span_y = n_cols + 2 * margin, n_rows + 2 * margin
        x0 = y0 = 0.5 + margin
    scale = rect["width"] / span_x
    return rect["left"] + (x + x0) * scale, rect["top"] + (span_y - (y + y0)) * scale


class _Elements(HTMLParser):
    """Attributes of the elements that have an id, and the text inside each of them."""

    def __init__(self) -> None:
        super().__init__()
        self.attrs: dict[str, dict[str, str]] = {}
        self.text: dict[str, str] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.attrs["body"] = a
        if "id" in a:
            self.attrs[a["id"]] = a
            self.text.setdefault(a["id"], "")
        if tag not in ("br", "img", "input", "meta", "link", "col", "hr"):
            self._open.append(a.get("id"))

    def handle_endtag(self, tag):
        if self._open and tag not in ("br", "img", "input", "meta", "link", "col", "hr"):
            self._open.pop()

    def handle_data(self, data):
        for ident in self._open:
            if ident:
                self.text[ident] += data


def test_dashboard_in_headless_chromium(
    server, client, mock_catalogue, tmp_path, trained_map, ingest
):
    chrome = _chromium()
    n_rows, n_cols = 8, 12
    map_id = _ledger(
        trained_map, ingest, mock_catalogue, lattice="hex", n_rows=n_rows, n_cols=n_cols
    )
    items = client.get(f"/v1/maps/{map_id}/cells?limit=10000").json()["items"]
    gap = max((c for c in items if not c["covered"] and c["n_phot"]), key=lambda c: c["n_phot"])
    covered = max((c for c in items if c["covered"]), key=lambda c: c["n_spec_secure"])
    detail = client.get(f"/v1/maps/{map_id}/cells/{gap['cell']}").json()
    targets = client.get(f"/v1/maps/{map_id}/targets").json()
    cov = client.get(f"/v1/maps/{map_id}/coverage").json()["summary"]

    browser = DevTools(chrome, tmp_path / "profile")
    try:
        # A shared link opens the map, the colouring and a cell.
        url = f"{server}/dashboard#map={map_id}&color=coverage&cell={covered['cell']}"
        browser.call("Page.enable")
        browser.call("Page.navigate", url=url)
        browser.wait_for("document.body.dataset.state === 'ready'")
        canvas = browser.eval("({...document.getElementById('map-canvas').dataset})")
        assert canvas == {"rendered": str(n_rows * n_cols), "color": "coverage"}
        browser.wait_for("document.getElementById('cell-panel').dataset.loaded === 'true'")
        assert browser.eval("document.getElementById('cell-panel').dataset.cell") == str(
            covered["cell"]
        )
        assert browser.eval("document.getElementById('cell-badge').textContent") == "covered"
        summary = browser.eval("document.getElementById('summary').innerText")
        assert f"{cov['n_cells_occupied_covered']} of {cov['n_cells_occupied']}" in summary
        assert f"{cov['n_outside_training']:,}\noutside the training set" in summary

        # Hover over the most populated gap: the tooltip names it; click: its panel fills.
        rect = browser.eval(
            "document.getElementById('map-canvas').getBoundingClientRect().toJSON()"
        )
        x, y = _cell_pixel(rect, n_rows, n_cols, "hex", gap["cell"])
        browser.mouse("mouseMoved", x, y)
        tip = browser.wait_for(
            "!tooltip.hidden && tooltip.textContent.startsWith('cell ') && tooltip.textContent"
        )
        assert tip.startswith(f"cell {gap['cell']} ") and "uncovered" in tip
        browser.mouse("mousePressed", x, y)
        browser.mouse("mouseReleased", x, y)
        browser.wait_for(
            f"document.getElementById('cell-panel').dataset.cell === '{gap['cell']}' && "
            "document.getElementById('cell-panel').dataset.loaded === 'true'"
        )
        assert f"cell={gap['cell']}" in browser.eval("location.hash")
        panel = browser.eval("document.getElementById('cell-panel').innerText")
        assert "uncovered gap" in panel
        assert re.search(rf"galaxies\s+{gap['n_phot']:,}\n", panel), panel
        colours = browser.eval("document.getElementById('cell-colours').innerText")
        for name, value in zip(
            detail["weights"]["feature_names"], detail["weights"]["values"], strict=True
        ):
            assert re.search(rf"{re.escape(name)}\s+{value:.3f}\s", colours), colours
        # Its target, from the list the dashboard loaded, and the list's download link.
        browser.wait_for(f"document.body.dataset.targets === '{targets['n_targets']}'")
        mine = [t for t in targets["targets"] if t["cell"] == gap["cell"]]
        cell_targets = browser.eval("document.getElementById('cell-targets').innerText")
        assert mine and str(mine[0]["source_id"]) in cell_targets
        href = browser.eval("document.getElementById('download-csv').getAttribute('href')")
        assert href == f"/v1/maps/{map_id}/targets?per_cell=1&format=csv"
        assert client.get(href).headers["content-type"].startswith("text/csv")
        # The p(z) chart was drawn (its canvas holds more than one colour).
        assert (
            browser.eval(
                "(() => { const c = document.getElementById('pz-canvas');"
                " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                " const seen = new Set(); for (let i = 0; i < d.length; i += 4)"
                " seen.add(d[i] + ',' + d[i + 1] + ',' + d[i + 2] + ',' + d[i + 3]);"
                " return seen.size; })()"
            )
            > 3
        )

        # Another colouring redraws the map.
        browser.eval(
            "const s = document.getElementById('color-select'); s.value = 'zphot';"
            " s.dispatchEvent(new Event('change'))"
        )
        assert browser.eval("document.getElementById('map-canvas').dataset.color") == "zphot"
        browser.mouse("mouseMoved", 5, 5)  # off the map: no tooltip in the picture
        shot = tmp_path / "dashboard.png"
        browser.screenshot(shot)
    finally:
        browser.close()
    image = imread(shot)
    assert image.shape[:2] == (1000, 1440)
    # The map area holds many distinct colours: the cells were drawn, not a blank canvas.
    top, left = int(rect["top"]), int(rect["left"])
    region = image[top : top + int(rect["height"]), left : left + int(rect["width"]), :3]
    assert len(np.unique((region * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 30
    print(f"dashboard screenshot: {shot}")


# ----------------------------------------------------------------------------- API docs
# Chromium resolves no host name but the server's address: a page that needs a CDN stays
# blank, as it would on a network with no outside access.
_OFFLINE = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the pages need no data
def test_api_docs_render_every_operation_in_headless_chromium_offline(server, client, tmp_path):
    chrome = _chromium()
    spec = client.get("/openapi.json").json()
    operations = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert ("GET", "/v1/maps") in operations
    browser = DevTools(chrome, tmp_path / "profile", args=_OFFLINE)
    try:
        browser.call("Network.enable")
        browser.call("Page.navigate", url=f"{server}/docs")
        browser.wait_for(
            f"document.querySelectorAll('.opblock').length >= {len(operations)}", timeout=60
        )
        shown = browser.eval(
            "[...document.querySelectorAll('.opblock')].map(b => ["
            " b.querySelector('.opblock-summary-method').textContent,"
            " b.querySelector('.opblock-summary-path').dataset.path])"
        )
        assert {tuple(op) for op in shown} == operations
        assert browser.eval("document.title") == "somcal - Swagger UI"

        # Every schema the operations refer to is in the document (Swagger UI cannot show
        # a request body whose schema it does not hold).
        names = set(spec["components"]["schemas"])
        refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(spec)))
        assert refs <= names, refs - names
    finally:
        browser.close()
    requested = {
        e["params"]["request"]["url"]
        for e in browser.events
        if e["method"] == "Network.requestWillBeSent"
    }
    assert f"{server}/static-offline-docs/swagger-ui-bundle.js" in requested
    outside = [u for u in requested if not u.startswith((server + "/", "data:", "blob:"))]
    assert not outside, outside


# ----------------------------------------------------------------------------- panels
def _canvas_colours(browser: DevTools, element_id: str) -> int:
    """How many distinct colours a canvas holds (1: blank)."""
    return browser.eval(
        f"(() => {{ const c = document.getElementById('{element_id}');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " const seen = new Set(); for (let i = 0; i < d.length; i += 4)"
        " seen.add(d[i] + ',' + d[i + 1] + ',' + d[i + 2] + ',' + d[i + 3]);"
        " return seen.size; })()"
    )


def _choose(browser: DevTools, select_id: str, value: str) -> None:
    browser.eval(
        f"(() => {{ const s = document.getElementById('{select_id}');"
        f" s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change')); }})()"
    )


def _occupation(som, frame, tmp_path, name: str, healpix_order: int | None) -> Path:
    """The occupation of ``frame`` on the map as the table `somcal occupation --output`
    writes (computed in this process on Dask's synchronous scheduler)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from som.distributed import occupation_parquet

    root = tmp_path / f"{name}_dataset"
    root.mkdir()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), root / "part0.parquet")
    sky = {"healpix_order": healpix_order, "ra_column": "ra", "dec_column": "dec"}
    occ = occupation_parquet(
        som, root, mag_column="mag_i", mag_edges=[18, 21, 22, 23, 24, 27],
        z_column="z_phot", z_edges=[0, 0.5, 1, 2.5], progress=False,
        **(sky if healpix_order is not None else {}),
    )  # fmt: skip
    path = tmp_path / f"{name}.parquet"
    occ.write_parquet(path)
    return path


def test_followup_and_occupation_panels_in_headless_chromium(
    server,
    client,
    auth,
    settings,
    harness,
    mock_catalogue,
    tmp_path,
    trained_map,
    ingest,
    stored_map,
):
    """A campaign with outcomes, the coverage history and change log it leaves, and two
    occupation catalogues (one split by HEALPix pixel) are shown; choosing an occupation
    recounts the map's coverage summary and gaps from it."""
    chrome = _chromium()
    map_id = _ledger(trained_map, ingest, mock_catalogue, lattice="rect", n_rows=8, n_cols=10)

    # A campaign, and what the telescope gave: secure, failed, not observed.
    r = client.post(
        f"/v1/maps/{map_id}/campaigns",
        json={"name": "night 1", "per_cell": 1, "budget": 15, "strategy": "c3r2"},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    campaign = r.json()
    ids = [t["target_id"] for t in campaign["targets"]]
    assert len(ids) == 15
    outcomes = (
        [{"target_id": t, "outcome": "secure"} for t in ids[:5]]
        + [{"target_id": t, "outcome": "failed", "exposure_hours": 1.5} for t in ids[5:9]]
        + [{"target_id": t, "outcome": "not_observed"} for t in ids[9:11]]
    )
    r = client.post(
        f"/v1/maps/{map_id}/campaigns/{campaign['id']}/outcomes",
        json={"outcomes": outcomes},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    history = client.get(f"/v1/maps/{map_id}/coverage/history").json()["snapshots"]
    changes = client.get("/v1/changes", params={"map_id": map_id}).json()
    assert len(history) >= 3 and changes["total"] >= 3

    # Two occupation catalogues of another, bigger survey of the same colours.
    survey = mock_catalogue(3000, seed=12)
    rng = np.random.default_rng(12)
    survey["ra"] = rng.uniform(0, 90, len(survey))
    survey["dec"] = rng.uniform(-40, 20, len(survey))
    som = stored_map(settings.database_url, map_id)
    occupations = {}
    for name, order in (("wide-survey", 3), ("no-sky", None)):
        path = _occupation(som, survey if order else survey.iloc[:1200], tmp_path, name, order)
        r = client.post(
            f"/v1/maps/{map_id}/occupations",
            files={"file": (path.name, path.read_bytes(), "application/octet-stream")},
            data={"name": name},
            headers=auth,
        )
        assert r.status_code == 201, r.text
        occupations[name] = r.json()["catalogue"]["id"]
    wide = occupations["wide-survey"]
    rows_cov = client.get(f"/v1/maps/{map_id}/coverage").json()["summary"]
    occ_cov = client.get(f"/v1/maps/{map_id}/coverage", params={"catalogue_id": wide}).json()
    occ_sum = occ_cov["summary"]
    assert occ_cov["catalogue"]["catalogue_id"] == wide
    assert occ_sum["n_galaxies"] != rows_cov["n_galaxies"]

    browser = DevTools(chrome, tmp_path / "profile", height=1800)
    try:
        browser.call("Page.enable")
        browser.call("Page.navigate", url=f"{server}/dashboard#map={map_id}")
        browser.wait_for("document.body.dataset.state === 'ready'")
        assert browser.eval("document.getElementById('summary').dataset.catalogue") == "rows"
        assert "every photometric row" in browser.eval(
            "document.getElementById('counted-from').textContent"
        )

        # Follow-up: the campaign, its outcomes, its downloads; the history; the change log.
        browser.wait_for("document.getElementById('tab-followup').dataset.state === 'ready'")
        row = browser.eval(
            f"document.querySelector('#campaigns tr[data-campaign=\"{campaign['id']}\"]').innerText"
        )
        assert "night 1" in row and "c3r2" in row
        cells = row.split("\t")
        assert cells[2].strip() == "15"  # targets
        assert cells[3].startswith("11") and "4 pending" in cells[3]  # outcomes recorded
        assert "55.6%" in cells[4] and "(5/9)" in cells[4]  # success so far
        href = browser.eval(
            f'document.querySelector(\'#campaigns tr[data-campaign="{campaign["id"]}"] '
            "a[data-format=\"csv\"]').getAttribute('href')"
        )
        assert href == f"/v1/maps/{map_id}/campaigns/{campaign['id']}?format=csv"
        csv = client.get(href)
        assert csv.headers["content-type"].startswith("text/csv")
        assert all(str(t) in csv.text for t in ids)
        radec = browser.eval(
            "document.querySelector('#campaigns a[data-format=\"radec\"]').getAttribute('href')"
        )
        assert client.get(radec).text.count("\n") >= 15
        canvas = "document.getElementById('history-canvas')"
        assert browser.eval(f"{canvas}.dataset.points") == str(len(history))
        assert _canvas_colours(browser, "history-canvas") > 3
        _choose(browser, "history-x", "time")
        assert _canvas_colours(browser, "history-canvas") > 3
        log = browser.eval("document.getElementById('changes').innerText")
        for action in ("catalogue ingested", "campaign created", "outcomes recorded"):
            assert action in log, log
        assert "tests" in log  # the key's name
        assert browser.eval("document.querySelectorAll('#changes tr[data-change]').length") == (
            min(changes["total"], 12)
        )
        # A campaign saved meanwhile appears on Refresh.
        r = client.post(
            f"/v1/maps/{map_id}/campaigns",
            json={"name": "night 2", "budget": 5, "strategy": "brightest"},
            headers=auth,
        )
        assert r.status_code == 201, r.text
        browser.eval("document.getElementById('followup-refresh').click()")
        row2 = f"#campaigns tr[data-campaign='{r.json()['id']}']"
        browser.wait_for(f"document.querySelector({json.dumps(row2)}) !== null")
        assert browser.eval("document.getElementById('campaigns').dataset.count") == "2"

        # Choose the occupation with a sky split: the summary and gaps are its counts.
        options = browser.eval(
            "[...document.getElementById('occ-select').options].map(o => o.value)"
        )
        photometric = [
            str(c["id"]) for c in client.get("/v1/catalogues?kind=photometric").json()["items"]
        ]
        assert photometric and options == ["", *photometric, str(wide), str(occupations["no-sky"])]

        # A photometric catalogue counts its own rows (the API's numbers, named as such).
        own = client.get(
            f"/v1/maps/{map_id}/coverage", params={"catalogue_id": photometric[0]}
        ).json()
        _choose(browser, "occ-select", photometric[0])
        browser.wait_for(
            f"document.getElementById('summary').dataset.catalogue === '{photometric[0]}' && "
            "document.body.dataset.state === 'ready'"
        )
        assert f"photometric catalogue {photometric[0]}" in browser.eval(
            "document.getElementById('counted-from').textContent"
        )
        summary = browser.eval("document.getElementById('summary').innerText")
        assert f"{own['summary']['n_galaxies']:,}\ngalaxies on the map" in summary
        # Its targets are weighted by its own rows too (candidates stay the ledger's).
        browser.wait_for(
            "document.getElementById('download-csv').getAttribute('href')"
            f".includes('catalogue_id={photometric[0]}')"
        )

        _choose(browser, "occ-select", str(wide))
        browser.wait_for(
            f"document.getElementById('summary').dataset.catalogue === '{wide}' && "
            "document.body.dataset.state === 'ready'"
        )
        summary = browser.eval("document.getElementById('summary').innerText")
        assert f"{occ_sum['n_galaxies']:,}\ngalaxies on the map" in summary, summary
        assert f"{occ_sum['n_cells_occupied_covered']} of {occ_sum['n_cells_occupied']}" in summary
        gaps = occ_sum["n_cells_occupied"] - occ_sum["n_cells_occupied_covered"]
        assert f"{gaps:,}\ngaps to fill" in summary, summary
        assert f"occupation catalogue {wide} “wide-survey”" in browser.eval(
            "document.getElementById('counted-from').textContent"
        )
        assert f"occ={wide}" in browser.eval("location.hash")
        browser.wait_for(
            f"document.body.dataset.targets !== undefined && "
            f"document.getElementById('download-csv').getAttribute('href').includes('occupation_id={wide}')"
        )

        # Its tab: the list with the counted one marked, and the sky map of the uncovered share.
        browser.eval("document.querySelector('.tab[data-tab=\"occupation\"]').click()")
        browser.wait_for("document.getElementById('sky').dataset.state === 'ready'")
        assert browser.eval("document.getElementById('sky-image').naturalWidth") > 200
        assert browser.eval(
            "document.querySelector('#occupations tr.chosen').dataset.catalogue"
        ) == str(wide)
        browser.eval("document.getElementById('work-panel').scrollIntoView()")
        browser.mouse("mouseMoved", 5, 5)
        shot = tmp_path / "dashboard_occupation.png"
        browser.screenshot(shot)

        # An occupation without a sky split says how to get one.
        browser.eval(
            f"document.querySelector('#occupations button[data-count=\"{occupations['no-sky']}\"]')"
            ".click()"
        )
        browser.wait_for(
            f"document.getElementById('summary').dataset.catalogue === '{occupations['no-sky']}'"
            " && document.getElementById('sky').dataset.state === 'none'"
        )
        assert "no sky split" in browser.eval("document.getElementById('sky').innerText")

        # Back to the ledger's rows: the first summary again.
        _choose(browser, "occ-select", "")
        browser.wait_for("document.getElementById('summary').dataset.catalogue === 'rows'")
        summary = browser.eval("document.getElementById('summary').innerText")
        assert f"{rows_cov['n_galaxies']:,}\ngalaxies on the map" in summary

        # A link to an occupation that is not there: the rows, and the reason, in the page.
        browser.call("Page.navigate", url=f"{server}/dashboard#map={map_id}&occ=999999")
        browser.wait_for("document.body.dataset.state === 'ready'")
        browser.wait_for("!document.getElementById('occ-error').hidden")
        assert "999999" in browser.eval("document.getElementById('occ-error').textContent")
        assert browser.eval("document.getElementById('summary').dataset.catalogue") == "rows"
        browser.eval("document.querySelector('.tab[data-tab=\"followup\"]').click()")
        browser.wait_for("document.getElementById('tab-followup').dataset.state === 'ready'")
        browser.eval("document.getElementById('work-panel').scrollIntoView()")
        browser.mouse("mouseMoved", 5, 5)
        followup_shot = tmp_path / "dashboard_followup.png"
        browser.screenshot(followup_shot)
    finally:
        browser.close()
    for path in (shot, followup_shot):
        image = imread(path)
        assert image.shape[:2] == (1800, 1440)
        print(f"dashboard screenshot: {path}")

    # Where reads need a key too, the page asks for it once and sends it with every request,
    # the images and downloads included (a plain <img> or link could not send the header).
    from app.main import create_app

    closed = create_app(settings.model_copy(update={"read_auth": True}))
    browser = DevTools(chrome, tmp_path / "profile-auth")
    try:
        with harness.ThreadServer(closed) as base:
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{base}/v1/maps/{map_id}/campaigns", timeout=10)
            assert refused.value.code == 401
            browser.call("Page.enable")
            browser.call(
                "Page.addScriptToEvaluateOnNewDocument",
                source="window.asked = 0; window.prompt = () => "
                f"(window.asked++, {json.dumps(auth['X-API-Key'])});",
            )
            browser.call("Page.navigate", url=f"{base}/dashboard#map={map_id}&occ={wide}")
            browser.wait_for("document.body.dataset.state === 'ready'")
            browser.wait_for(f"document.getElementById('summary').dataset.catalogue === '{wide}'")
            browser.wait_for("document.getElementById('tab-followup').dataset.state === 'ready'")
            assert browser.eval("document.getElementById('campaigns').dataset.count") == "2"
            browser.eval("document.querySelector('.tab[data-tab=\"occupation\"]').click()")
            browser.wait_for("document.getElementById('sky').dataset.state === 'ready'")
            assert browser.eval("document.getElementById('sky-image').src").startswith("blob:")
            assert browser.eval("document.getElementById('banner').hidden") is True
            assert browser.eval("window.asked") == 1
            # A key revoked mid-session: the follow-up's three requests at once ask once.
            browser.eval("somcalKit.setKey('revoked'); window.asked = 0")
            browser.eval("document.getElementById('followup-refresh').click()")
            browser.wait_for("document.getElementById('tab-followup').dataset.state === 'ready'")
            assert browser.eval("window.asked") == 1
    finally:
        browser.close()


def test_panels_say_what_to_do_on_a_map_without_follow_up(
    server, mock_catalogue, tmp_path, trained_map, ingest
):
    chrome = _chromium()
    map_id = _ledger(trained_map, ingest, mock_catalogue, lattice="rect", n_rows=5, n_cols=6)
    browser = DevTools(chrome, tmp_path / "profile")
    try:
        browser.call("Page.navigate", url=f"{server}/dashboard#map={map_id}")
        browser.wait_for("document.getElementById('tab-followup').dataset.state === 'ready'")
        assert "No campaigns yet: somcal campaign create" in browser.eval(
            "document.getElementById('campaigns').innerText"
        )
        # No occupation yet: the picker offers the ledger and its photometric catalogue.
        browser.wait_for("document.getElementById('tab-occupation').dataset.state === 'ready'")
        options = browser.eval(
            "[...document.getElementById('occ-select').options].map(o => o.text)"
        )
        assert options[0].startswith("every photometric row") and len(options) == 2
        assert options[1].startswith("photometric ")
        assert "No occupation catalogue on this map yet" in browser.eval(
            "document.getElementById('occupations').innerText"
        )
        browser.eval("document.querySelector('.tab[data-tab=\"calibrations\"]').click()")
        browser.wait_for("document.getElementById('tab-calibrations').dataset.state === 'ready'")
        assert "somcal calibration create --deep-map" in browser.eval(
            "document.getElementById('calibrations').innerText"
        )
        browser.eval("document.querySelector('.tab[data-tab=\"occupation\"]').click()")
        assert "somcal occupation DATASET" in browser.eval(
            "document.getElementById('occupations').innerText"
        )
        # An API error shows in its panel, not only in the console.
        browser.eval(
            "window.fetch = ((f) => (url, o) => String(url).startsWith('/v1/calibrations') ?"
            " Promise.resolve(new Response(JSON.stringify({detail: 'database on fire'}),"
            " {status: 500, headers: {'content-type': 'application/json'}})) : f(url, o))"
            "(window.fetch)"
        )
        browser.eval("document.getElementById('calibrations-refresh').click()")
        browser.wait_for("document.getElementById('tab-calibrations').dataset.state === 'error'")
        assert "database on fire" in browser.eval(
            "document.getElementById('calibrations').innerText"
        )
    finally:
        browser.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # two maps and a job: costly
def test_calibrations_panel_and_a_recompute_job_in_headless_chromium(
    settings, auth, harness, tmp_path
):
    """A deep/wide calibration on the mock: its bins (⟨z⟩ ± spread) and n(z) figure; then a
    recompute queued on a server without workers shows as a waiting job, and the panel
    follows it to the new version once a server with workers runs it."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from som.mock import make_mock, observe_wide, transfer_catalogue

    chrome = _chromium()
    deep_bands = ("u", "g", "r", "i", "z", "Y", "J", "H")
    wide_bands = ("u_lsst", "g_lsst", "r_lsst", "i_lsst", "z_lsst", "y_lsst")

    def phot(frame, bands, prefix="", extra=("ra", "dec")):
        cols = {"id": frame["id"], **{c: frame[c] for c in extra if c in frame.columns}}
        for b in bands:
            cols[f"mag_{b}"] = frame[f"{prefix}mag_{b}"]
            cols[f"magerr_{b}"] = frame[f"{prefix}magerr_{b}"]
        return pd.DataFrame(cols)

    deep = make_mock(700, seed=3, truth=True)
    wide = observe_wide(deep, "lsst", seed=4)
    transfer = transfer_catalogue(deep, "lsst", n_injections=3, seed=5)
    has_z = np.isfinite(deep["z_spec"].to_numpy())
    spectra = phot(deep[has_z], deep_bands)
    spectra.insert(3, "z_spec", deep.loc[has_z, "z_spec"].to_numpy())

    with TestClient(create_app(settings)) as client:  # with workers: it computes

        def upload(kind, frame, name):
            r = harness.upload(client, auth, kind, frame, name)
            assert r.status_code == 201, r.text
            return r.json()["id"]

        deep_id = upload("photometric", phot(deep, deep_bands), "deep.csv")
        wide_id = upload("photometric", phot(wide, wide_bands), "wide.csv")
        transfer_id = upload("photometric", phot(transfer, wide_bands, "wide_", ()), "transfer.csv")
        upload("spectroscopic", spectra, "spec.csv")
        maps = [
            harness.train(client, auth, cat, timeout=180.0, n_rows=n, n_cols=n, n_epochs=3)[0]
            for cat, n in ((deep_id, 5), (wide_id, 4))
        ]
        body = {
            "name": "lsst y1", "deep_map_id": maps[0], "wide_map_id": maps[1],
            "deep_catalogue_id": deep_id, "wide_catalogue_id": wide_id,
            "transfer_catalogue_id": transfer_id, "bin_edges": [0.0, 0.5, 0.9, 1.5],
            "n_realisations": 10,
        }  # fmt: skip
        r = client.post("/v1/calibrations", json=body, headers=auth)
        assert r.status_code == 202, r.text
        cal_id = r.json()["id"]
        harness.wait_for_job(client, r.json()["job_id"], timeout=120.0)
        cal = client.get(f"/v1/calibrations/{cal_id}").json()
        assert cal["status"] == "ready", cal

    # A server whose jobs wait for a worker: a recompute stays queued while it serves.
    idle = create_app(settings.model_copy(update={"embedded_workers": 0}))
    card = f"document.querySelector('article.calibration[data-calibration=\"{cal_id}\"]')"
    browser = DevTools(chrome, tmp_path / "profile", height=1400)
    try:
        with harness.ThreadServer(idle) as base:
            browser.call("Page.enable")
            browser.call("Page.navigate", url=f"{base}/dashboard#map={maps[1]}")
            browser.wait_for("document.body.dataset.state === 'ready'")
            browser.eval("document.querySelector('.tab[data-tab=\"calibrations\"]').click()")
            panel = "document.getElementById('tab-calibrations')"
            browser.wait_for(f"{panel}.dataset.state === 'ready'")
            assert browser.eval(f"{card}.dataset.status") == "ready"
            assert "this map is its wide map" in browser.eval(f"{card}.innerText")
            # per bin ⟨z⟩ ± the ensemble's spread, as the API gives them
            shown = browser.eval(
                f"[...{card}.querySelectorAll('tr[data-bin] td.mean-z')].map(td => td.innerText)"
            )
            assert len(shown) == len(cal["bins"]) == 3
            for text, b in zip(shown, cal["bins"], strict=True):
                assert text.startswith(f"{b['mean_z']:.4f} ± {b['mean_z_std']:.4f}"), text
            browser.wait_for(f"{card}.querySelector('img.nz').dataset.loaded === 'true'")
            assert browser.eval(f"{card}.querySelector('img.nz').naturalWidth") > 200
            browser.eval("document.getElementById('work-panel').scrollIntoView()")
            browser.mouse("mouseMoved", 5, 5)
            shot = tmp_path / "dashboard_calibrations.png"
            browser.screenshot(shot)

            request = urllib.request.Request(
                f"{base}/v1/calibrations/{cal_id}/recompute", method="POST", headers=auth
            )
            with urllib.request.urlopen(request, timeout=30) as r:
                job_id = json.load(r)["job_id"]
            browser.eval("document.getElementById('calibrations-refresh').click()")
            browser.wait_for(f"{panel}.dataset.state === 'running'")
            assert browser.eval(f"{card}.dataset.status") == "queued"
            assert browser.eval(f"{card}.querySelector('.job').dataset.job") == str(job_id)
            assert f"job {job_id} (queued)" in browser.eval(f"{card}.innerText")

            # A server with workers runs it; the panel, polling, shows the second version.
            with TestClient(create_app(settings)):
                browser.wait_for(
                    f"{card} && {card}.dataset.version === '2' && "
                    f"{card}.dataset.status === 'ready'",
                    timeout=120,
                )
            assert browser.eval(f"{panel}.dataset.state") == "ready"
    finally:
        browser.close()
    assert imread(shot).shape[:2] == (1400, 1440)
    print(f"dashboard screenshot: {shot}")
