"""somcal installed like any Python package: the wheel built from this tree, installed into a
fresh virtual environment, runs ``somcal db upgrade`` and ``somcal quickstart`` from an empty
folder, with no checkout anywhere on its path.

The source is copied to a temporary directory first, so that a stale ``build/`` of the
checkout cannot leak into the wheel and the checkout is left as it was. Dependencies come
from the package index pip is configured with (its cache makes this quick).
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# What the CLI and the service read from the package at run time besides Python modules.
RUNTIME_FILES = [
    "app/migrations/env.py",
    "app/migrations/script.py.mako",
    "app/static/index.html",
    "app/static/dashboard.js",
    "app/static/dashboard.css",
]


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would point the installed somcal back at this
    checkout or at the developer's database."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOMCAL_", "PYTHON", "VIRTUAL_ENV")) and k != "DATABASE_URL"
    }
    env.update(extra)
    return env


def _run(cmd: list[str | Path], cwd: Path, timeout: float, **env: str):
    done = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {done.returncode}\n"
        f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    )
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "venv",
            "build",
            "dist",
            "var",
            "out",
            "*.egg-info",
            "__pycache__",
            "*.pyc",
            ".pytest_cache",
            ".ruff_cache",
            "results",
        ),
    )
    dist = work / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, src], work, 300)
    (found,) = dist.glob("somcal-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Iterator[Path]:
    """The bin directory of a fresh virtual environment holding only the wheel and its
    dependencies (removed afterwards: numpy, scipy, pyarrow and friends weigh hundreds of MB)."""
    env_dir = tmp_path_factory.mktemp("venv") / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    try:
        # --no-compile: byte-compiling every dependency slows the install, proves nothing here.
        _run(
            [bin_dir / "python", "-m", "pip", "install", "-q", "--no-compile", wheel], env_dir, 900
        )
        yield bin_dir
    finally:
        shutil.rmtree(env_dir, ignore_errors=True)


def test_developers_alembic_ini_reads_the_migrations_the_package_runs():
    """``alembic revision --autogenerate`` and friends, run by hand from the checkout, work on
    the same scripts that ``somcal db upgrade`` applies."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from app.core import migrate

    scripts = ScriptDirectory.from_config(Config(str(REPO / "alembic.ini")))
    assert Path(scripts.dir).resolve() == migrate.MIGRATIONS_DIR
    assert tuple(scripts.get_heads()) == migrate.head_revisions()
    assert migrate.MIGRATIONS_DIR.is_relative_to(REPO / "app")


@pytest.mark.slow
def test_wheel_holds_the_migrations_and_files_read_at_run_time(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in RUNTIME_FILES if f not in names]
    assert not missing, f"not in {wheel.name}: {missing}"
    versions = sorted(p.name for p in (REPO / "app/migrations/versions").glob("*.py"))
    assert versions and all(f"app/migrations/versions/{v}" in names for v in versions)
    # The mock's SEDs, filters and selection: everything quickstart reads to make its data.
    data = [
        p.relative_to(REPO).as_posix()
        for p in (REPO / "som/data").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc")
    ]
    assert data and not [d for d in data if d not in names]
    assert not any(n.startswith(("tests/", "bench/", "migrations/")) for n in names)


@pytest.mark.slow
def test_installed_wheel_migrates_and_runs_quickstart_from_an_empty_folder(installed, tmp_path):
    here = tmp_path / "empty"
    here.mkdir()
    # The package that runs is the installed one, not this checkout.
    where = _run(
        [installed / "python", "-c", "import app, som; print(app.__file__); print(som.__file__)"],
        here,
        120,
    ).stdout.split()
    assert all("site-packages" in w and not w.startswith(str(REPO)) for w in where), where

    somcal = installed / "somcal"
    # numba compiles into a cache of its own, not into the installed package's directory.
    cache = {"NUMBA_CACHE_DIR": str(tmp_path / "numba"), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    up = _run([somcal, "db", "upgrade"], here, 300, **cache)
    assert (here / "var" / "somcal.db").is_file(), up.stdout + up.stderr

    # The smallest run quickstart allows: the step is about the package, not the science.
    small = ["--no-serve", "-n", "1000", "--rows", "4", "--cols", "6", "--epochs", "1"]
    _run(
        [somcal, "quickstart", *small],
        here,
        600,
        **cache,
    )
    listing = _run([somcal, "maps"], here, 120, **cache).stdout
    assert "ready" in listing, listing
    with sqlite3.connect(here / "var" / "somcal.db") as db:
        (status,) = db.execute("SELECT status FROM maps").fetchone()
        n_phot, n_spec = db.execute(
            "SELECT SUM(kind = 'photometric'), SUM(kind = 'spectroscopic') FROM catalogues"
        ).fetchone()
    assert status == "ready" and n_phot == 1 and n_spec == 1
    assert list((here / "var").glob("targets_map*.csv")), sorted((here / "var").iterdir())

    # And it serves: the schema is current (/ready reads the packaged migrations), the
    # dashboard's files and the API docs' assets come out of installed packages.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(somcal), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=here,
        env=_clean_env(**cache),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    pytest.fail(f"somcal serve did not come up: {server.communicate()[1][-2000:]}")
                time.sleep(0.2)
        for path, marker in [
            ("/ready", b'"ready"'),
            ("/dashboard", b"/static/dashboard.js"),
            ("/static/dashboard.js", b""),
            ("/docs", b"/static-offline-docs/swagger-ui-bundle.js"),
            ("/static-offline-docs/swagger-ui-bundle.js", b"SwaggerUIBundle"),
        ]:
            with urllib.request.urlopen(base + path, timeout=30) as r:
                body = r.read()
            assert r.status == 200 and marker in body, (path, body[:300])
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
