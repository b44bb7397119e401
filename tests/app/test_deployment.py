"""What the Dockerfile and docker-compose.yml rely on, checked against the code they run
(the CLI, the settings, the wheel's contents, a live server) rather than against their own
text: an option renamed in the CLI, a package added to pyproject.toml but not to the image,
or a healthcheck that can never pass fails here, while a comment or a reordering does not.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import Settings
from app.main import create_app

REPO = Path(__file__).resolve().parents[2]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(instruction, arguments) of a Dockerfile, continuation lines joined, comments out."""
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current += (" " if current else "") + line.rstrip("\\").strip()
        if not line.endswith("\\"):
            word, _, rest = current.partition(" ")
            lines.append((word.upper(), rest.strip()))
            current = ""
    return lines


def _stages() -> dict[str, list[tuple[str, str]]]:
    """The Dockerfile's build stages by name (an unnamed stage by its index)."""
    stages: dict[str, list[tuple[str, str]]] = {}
    for op, args in _instructions((REPO / "Dockerfile").read_text()):
        if op == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(stages))
            stages[name] = []
        stages[name].append((op, args))
    return stages


def _assert_somcal_command(argv: list[str]) -> None:
    """``argv`` is a somcal command whose subcommands and options the CLI has (``--help`` is
    eager: parsing still rejects an unknown command or option, nothing runs)."""
    assert argv[0] == "somcal", argv
    result = CliRunner().invoke(cli, [*argv[1:], "--help"])
    assert result.exit_code == 0, f"{argv}: {result.output}"


def _compose() -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _somcal_services(spec: dict) -> dict[str, dict]:
    """The services that run the image built from this tree (built there, or by its tag)."""
    built = {svc.get("image") for svc in spec["services"].values() if "build" in svc}
    return {
        name: svc
        for name, svc in spec["services"].items()
        if "build" in svc or (svc.get("image") and svc["image"] in built)
    }


def _with_defaults(value: str) -> str:
    """Compose's ``${VAR:-default}`` with the defaults, as an empty environment gets it."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def _dockerignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return any(fnmatch.fnmatch(path, p.removeprefix("**/")) for p in patterns)


# ----------------------------------------------------------------------------- compose
def test_every_compose_service_of_the_image_runs_a_real_somcal_command():
    services = _somcal_services(_compose())
    assert {"migrate", "api"} <= set(services)
    for name, svc in services.items():
        assert isinstance(svc["command"], list), f"{name}: exec form, no shell in between"
        _assert_somcal_command(svc["command"])
    # The image's own default command too.
    cmd = next(a for op, a in reversed(_stages()[list(_stages())[-1]]) if op == "CMD")
    _assert_somcal_command(json.loads(cmd))


def test_compose_services_use_the_database_the_db_service_creates_once_migrated(monkeypatch):
    spec = _compose()
    databases = {
        name: svc
        for name, svc in spec["services"].items()
        if str(svc.get("image", "")).startswith("postgres")
    }
    assert databases
    for name, svc in _somcal_services(spec).items():
        url = _with_defaults(svc["environment"]["DATABASE_URL"])
        # The variable the file sets is one somcal's settings read.
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.delenv("SOMCAL_DATABASE_URL", raising=False)
        assert Settings().database_url == url
        parsed = make_url(url)
        assert parsed.drivername == "postgresql+psycopg", name
        db = databases[parsed.host]["environment"]
        assert parsed.username == db["POSTGRES_USER"] and parsed.database == db["POSTGRES_DB"]
        assert parsed.password == _with_defaults(db["POSTGRES_PASSWORD"])
        deps = svc.get("depends_on", {})
        assert deps[parsed.host]["condition"] == "service_healthy", name
        if svc["command"][1:3] != ["db", "upgrade"]:
            # Nothing else starts on a schema that is not migrated yet.
            migrators = [
                n
                for n, s in _somcal_services(spec).items()
                if s["command"][1:3] == ["db", "upgrade"]
            ]
            assert any(
                deps.get(m, {}).get("condition") == "service_completed_successfully"
                for m in migrators
            ), name


# ----------------------------------------------------------------------------- Dockerfile
def test_image_installs_the_wheel_built_from_everything_the_wheel_is_made_of():
    """The image installs the same wheel tests/app/test_packaging.py builds and runs, from
    the files pyproject.toml builds it from, and no editable checkout beside it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    roots = {
        p.rstrip("*").rstrip(".")
        for p in project["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    needed = {"pyproject.toml", project["project"]["readme"], *roots}

    stages = _stages()
    builders = [n for n, steps in stages.items() if any("pip wheel" in a for _, a in steps)]
    assert len(builders) == 1, "one stage builds the wheel"
    builder = stages[builders[0]]
    copied = set()
    for op, args in builder:
        if op == "COPY":
            assert not args.startswith("--from"), args
            copied.update(args.split()[:-1])
    assert needed <= copied, f"the wheel stage lacks {needed - copied}"
    for path in copied:
        assert (REPO / path).exists(), path
        assert not _dockerignored(path), f"{path} is in .dockerignore: COPY would fail"

    final = stages[list(stages)[-1]]
    steps = " && ".join(a for op, a in final if op == "RUN")
    assert f"COPY --from={builders[0]}" in " ".join(f"{op} {a}" for op, a in final)
    assert re.search(r"pip install [^&]*somcal-\*\.whl", steps), steps
    assert not re.search(r"pip install [^&]*(-e|--editable)\b", steps), steps
    # No package source in the final stage that could shadow the installed package.
    sources = {a.split()[0] for op, a in final if op == "COPY" and not a.startswith("--from")}
    assert not sources & roots, sources


def test_image_runs_as_a_non_root_user_with_a_healthcheck_that_works(tmp_path, harness):
    final = _stages()[list(_stages())[-1]]
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    last_user = max(i for i, (op, _) in enumerate(final) if op == "USER")
    # Nothing is installed after dropping root (the numba warm-up only runs code).
    assert all("pip install" not in args for op, args in final[last_user:] if op == "RUN")

    health = next(a for op, a in final if op == "HEALTHCHECK")
    probe = json.loads(health[health.index("CMD") + 3 :].strip())
    assert probe[0] == "python"
    # The probe, run as the container runs it, passes against a live somcal and fails
    # against a closed port.
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'h.db'}"))
    server = harness.ThreadServer(app, log_level="error")
    env = {**os.environ, "SOMCAL_PORT": str(server.port)}
    with server:
        assert subprocess.run([sys.executable, *probe[1:]], env=env, timeout=30).returncode == 0
    down = subprocess.run([sys.executable, *probe[1:]], env=env, timeout=30, capture_output=True)
    assert down.returncode != 0
