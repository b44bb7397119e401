"""The dashboard: its per-cell arrays (SQLite and PostgreSQL), its static page, and the page
end to end in headless Chromium against a real server.

The browser test uses Debian's ``chromium``. If it is missing the test installs it with
apt-get, but only when running as root with CI=true or SOMCAL_INSTALL_BROWSER=1; otherwise
it skips and says how to enable it. Nothing else is downloaded.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from app.api.routes.dashboard import STATIC_DIR
from app.core.db import make_engine, make_session_factory
from app.models import Map
from som import SOM

REPO = Path(__file__).resolve().parents[2]


def _ingest(client, auth, kind, frame, name):
    r = client.post(
        f"/v1/catalogs/{kind}",
        files={"file": (name, frame.to_csv(index=False).encode(), "text/csv")},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    return r.json()


def _train(client, auth, catalog_id, **grid) -> int:
    r = client.post(
        "/v1/maps",
        json={"catalog_id": catalog_id, "n_epochs": 3, "random_state": 3, **grid},
        headers=auth,
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["job"]["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    assert job["status"] == "succeeded", job
    return r.json()["map"]["id"]


def _ledger(client, auth, mock_catalogue, lattice="rect", n_rows=6, n_cols=9) -> int:
    frame = mock_catalogue(500, seed=11, spec_fraction=0.15)
    phot = _ingest(client, auth, "photometric", frame, "phot.csv")
    map_id = _train(client, auth, phot["id"], n_rows=n_rows, n_cols=n_cols, lattice=lattice)
    _ingest(client, auth, "spectroscopic", frame, "spec.csv")
    return map_id


# ----------------------------------------------------------------------------- arrays
def test_arrays_agree_with_cells_coverage_and_the_stored_map(
    client, auth, settings, mock_catalogue
):
    map_id = _ledger(client, auth, mock_catalogue, lattice="hex")
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
    js = client.get("/static/dashboard.js")
    css = client.get("/static/dashboard.css")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(app):
    """The app served by uvicorn on a free port of 127.0.0.1 (in a thread of this process,
    so no second start-up of numba and the app; the browser talks real HTTP to it)."""
    import threading

    import uvicorn

    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, name="test-uvicorn", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    with urllib.request.urlopen(f"{base}/health", timeout=5) as r:
        assert r.status == 200
    try:
        yield base
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def _browse(chrome: str, profile: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    # --virtual-time-budget lets the page's fetches and scripts finish before the dump or
    # screenshot; the other switches keep Chromium from reaching the network on its own.
    cmd = [
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
        f"--user-data-dir={profile}",
        "--window-size=1440,1000",
        "--virtual-time-budget=30000",
        *extra,
        url,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


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


def test_dashboard_in_headless_chromium(server, client, auth, mock_catalogue, tmp_path):
    chrome = _chromium()
    map_id = _ledger(client, auth, mock_catalogue, lattice="hex", n_rows=8, n_cols=12)
    cells = client.get(f"/v1/maps/{map_id}/cells?limit=10000&covered=false&occupied=true")
    gap = max(cells.json()["items"], key=lambda c: c["n_phot"])
    detail = client.get(f"/v1/maps/{map_id}/cells/{gap['cell']}").json()
    url = f"{server}/dashboard#map={map_id}&color=coverage&cell={gap['cell']}"

    dom = _browse(chrome, tmp_path / "profile", url, "--dump-dom").stdout
    page = _Elements()
    page.feed(dom)
    assert page.attrs["body"].get("data-state") == "ready", dom[:3000]
    canvas = page.attrs["map-canvas"]
    assert canvas.get("data-rendered") == "96" and canvas.get("data-color") == "coverage"
    panel = page.attrs["cell-panel"]
    assert panel.get("data-cell") == str(gap["cell"]) and panel.get("data-loaded") == "true"
    stats = page.text["cell-stats"]
    assert f"galaxies{gap['n_phot']:,}" in stats.replace("\n", "")
    assert "uncovered gap" in page.text["cell-badge"]
    for name, value in zip(
        detail["weights"]["feature_names"], detail["weights"]["values"], strict=True
    ):
        assert f"{name}{value:.3f}" in page.text["cell-colours"]
    # The gap's own target, from the target list the dashboard loaded.
    targets = client.get(f"/v1/maps/{map_id}/targets").json()
    mine = [t for t in targets["targets"] if t["cell"] == gap["cell"]]
    assert mine and str(mine[0]["source_id"]) in page.text["cell-targets"]
    assert page.attrs["body"].get("data-targets") == str(targets["n_targets"])
    assert page.attrs["download-csv"]["href"].endswith(
        f"/v1/maps/{map_id}/targets?per_cell=1&format=csv"
    )
    summary = page.text["summary"]
    cov = client.get(f"/v1/maps/{map_id}/coverage").json()["summary"]
    assert f"{cov['n_cells_occupied_covered']} of {cov['n_cells_occupied']}" in summary

    shot = tmp_path / "dashboard.png"
    _browse(chrome, tmp_path / "profile", url, f"--screenshot={shot}")
    image = imread(shot)
    assert image.shape[:2] == (1000, 1440)
    # The map area holds many distinct colours: the cells were drawn, not a blank canvas.
    region = (image[120:560, 40:900, :3] * 255).astype(np.uint8).reshape(-1, 3)
    assert len(np.unique(region, axis=0)) > 30
    print(f"dashboard screenshot: {shot}")
