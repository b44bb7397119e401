"""Harness shared by bench/load.py, bench/faults.py and the service tests
(access control, faults and races, workers).

* :class:`ServerProcess`: the real service (``uvicorn app.main:create_app --factory``) in a
  child process on a free loopback port, so it can be measured without sharing the
  client's GIL and killed with SIGKILL like a crashed host.
* :class:`ThreadServer`: the same app served by uvicorn in a thread of this process.
* :class:`WorkerProcess`: ``somcal worker`` in a child process, stopped with SIGTERM (its
  jobs handed back) or killed with SIGKILL (a host that died mid-job).
* :class:`ThrowawayPostgres`: a private PostgreSQL cluster (``initdb`` + ``pg_ctl``) in a
  temporary directory on a free port. Faults that need the database to *die* are injected
  here, never on the machine's shared cluster that other test sessions are using.
* :func:`pg_schema` / :func:`drop_pg_schema`: a schema of one's own on the shared cluster.
* What a client of the API does again and again: :func:`upload` a catalogue,
  :func:`wait_for_job` (the one polling loop), :func:`train` a map and wait for it,
  :func:`run_together` (calls released at the same instant). The tests use these too
  (``tests/app/conftest.py`` wraps them in fixtures), so nothing here imports pytest.

Nothing here listens anywhere but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
PG_BIN_CANDIDATES = [Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15, 14, 13)]
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s ({last!r})")


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)


def _stop(proc: subprocess.Popen, timeout: float) -> int:
    """SIGTERM, then SIGKILL if the process has not exited within ``timeout`` s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


class ServerProcess:
    """``uvicorn app.main:create_app --factory`` on 127.0.0.1:<free port> in a child process.

    ``env`` holds the ``SOMCAL_*`` settings. The server's output goes to ``log_path`` (a
    file, so a chatty server can never block on a full pipe).
    """

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        workers: int = 1,
        log_level: str = "warning",
        access_log: bool = False,
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        self.workers = workers
        self.log_level = log_level
        self.access_log = access_log
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> str:
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--log-level",
            self.log_level,
            "--access-log" if self.access_log else "--no-access-log",
            "--workers",
            str(self.workers),
        ]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            _wait_http(f"{self.base_url}/health", timeout, self.proc)
        except BaseException:
            self.kill()
            raise
        return self.base_url

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, as when a host or container dies."""
        if self.proc is not None:
            _kill(self.proc)
        self._close_log()

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc, timeout=20)
        self._close_log()

    def _close_log(self) -> None:
        log = getattr(self, "_log", None)
        if log is not None and not log.closed:
            log.close()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class WorkerProcess:
    """``somcal worker`` in a child process, its log in a file (``env``: the ``SOMCAL_*``
    settings and anything else the worker should see, e.g. ``NUMBA_NUM_THREADS``)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        """SIGKILL mid-job: no heartbeat, no release, as when its host dies."""
        _kill(self.proc)
        self._log.close()

    def stop(self) -> int:
        """SIGTERM (its running job handed back), SIGKILL after 60 s; the exit code."""
        code = _stop(self.proc, timeout=60)
        self._log.close()
        return code

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")


class ThreadServer:
    """An ASGI ``app`` served by uvicorn in a thread of this process on 127.0.0.1:<free port>.

    Unlike :class:`ServerProcess` there is no second start-up of numba and the app, and the
    caller keeps the app object; ``with ThreadServer(app) as base_url: ...``.
    """

    def __init__(self, app, log_level: str = "warning") -> None:
        import uvicorn

        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        config = uvicorn.Config(app, host=LOOPBACK, port=self.port, log_level=log_level)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self.base_url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def pg_bindir() -> Path | None:
    for candidate in PG_BIN_CANDIDATES:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


class ThrowawayPostgres:
    """A private PostgreSQL cluster that can be stopped and restarted at will.

    ``initdb`` refuses to run as root, so as root the cluster is created and run as the
    ``postgres`` system user (``runuser``); its directory is removed on exit. ``fsync`` is
    off: the cluster only lives for one test, and an immediate stop still exercises crash
    recovery of the server's own state (what matters here is what the *client* sees).
    """

    def __init__(self) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.bindir = bindir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="somcal-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    @staticmethod
    def unavailable_reason() -> str | None:
        if pg_bindir() is None:
            return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        if os.geteuid() == 0:
            try:
                import pwd

                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root without a 'postgres' user to run initdb as"
            if shutil.which("runuser") is None:
                return "running as root and runuser is missing"
        return None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{LOOPBACK}:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self._as_user, *args], capture_output=True, text=True, check=check, timeout=120
        )

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses={LOOPBACK} -c fsync=off "
            "-c max_connections=40 -c shared_buffers=16MB"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        """``immediate`` is a crash: backends are killed, no checkpoint, clients cut off."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def is_running(self) -> bool:
        r = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "status", check=False)
        return r.returncode == 0

    def __enter__(self) -> ThrowawayPostgres:
        try:
            self.init()
            self.start()
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.is_running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def pg_base_url() -> str:
    url = os.environ.get("DATABASE_URL_TEST", DEFAULT_PG)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def pg_reachable(base: str | None = None) -> str | None:
    """None if the shared PostgreSQL answers, else the reason it does not."""
    from sqlalchemy import text

    from app.core.db import make_engine

    base = base or pg_base_url()
    engine = make_engine(base, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"{type(exc).__name__}"
    finally:
        engine.dispose()


def pg_schema(base: str, prefix: str = "somcal_bench") -> tuple[str, str]:
    """A fresh schema on the shared cluster and a URL whose connections use it."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from app.core.db import make_engine

    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    engine = make_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), schema


def drop_pg_schema(base: str, schema: str) -> None:
    from sqlalchemy import text

    from app.core.db import make_engine

    engine = make_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def create_key(url: str, name: str = "bench") -> str:
    from app.core.db import make_engine, make_session_factory
    from app.services.apikeys import create_api_key

    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        _, key = create_api_key(s, name)
        s.commit()
    engine.dispose()
    return key


# ----------------------------------------------------------------------------- API client
def csv_bytes(frame) -> bytes:
    """A DataFrame as the CSV bytes of an upload (no index column)."""
    return frame.to_csv(index=False).encode()


def upload(client, auth: dict[str, str], kind: str, content, name: str, **fields):
    """``POST /v1/catalogues/{kind}`` with one file; the response, whatever its status.

    ``content`` is the file's bytes, or a DataFrame sent as CSV. Form fields that are dicts
    or lists (a column mapping, band lists) are sent as JSON, the others as they are.
    """
    if not isinstance(content, bytes | bytearray):
        content = csv_bytes(content)
    data = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in fields.items()}
    return client.post(
        f"/v1/catalogues/{kind}",
        files={"file": (name, bytes(content), "application/octet-stream")},
        data=data,
        headers=auth,
    )


def job_finished(job: dict) -> bool:
    return job["status"] in ("succeeded", "failed")


def wait_for_job(
    client,
    job_id: int,
    until: Callable[[dict], bool] = job_finished,
    timeout: float = 600.0,
    interval: float = 0.05,
) -> dict:
    """Poll ``GET /v1/jobs/{job_id}`` until ``until(job)`` holds; that job.

    Raises TimeoutError, with the job as last read, if it does not within ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if until(job):
            return job
        time.sleep(interval)
    raise TimeoutError(f"job {job_id} did not reach the expected state in {timeout:g} s: {job}")


#: a map that takes minutes to train on a few thousand mock rows: long enough to interrupt
LONG_TRAINING = {"n_rows": 30, "n_cols": 30, "n_epochs": 500}


def fitting(job: dict) -> bool:
    """The SOM itself is being fitted: a training job's progress 0.05-0.8 is its epochs."""
    return job["status"] == "running" and job["progress"] >= 0.05


def start_training(client, auth: dict[str, str], catalogue_id: int, **options) -> dict:
    """``POST /v1/maps``; its 202 answer (the queued map and job). RuntimeError otherwise."""
    r = client.post("/v1/maps", json={"catalogue_id": catalogue_id, **options}, headers=auth)
    if r.status_code != 202:
        raise RuntimeError(f"POST /v1/maps answered {r.status_code}: {r.text}")
    return r.json()


def train(
    client,
    auth: dict[str, str],
    catalogue_id: int,
    timeout: float = 1800.0,
    interval: float = 0.05,
    **options,
) -> tuple[int, dict]:
    """``POST /v1/maps`` and wait for its job: (map id, the finished job).

    Raises RuntimeError if the request is not accepted (202) or the training fails.
    """
    accepted = start_training(client, auth, catalogue_id, **options)
    job = wait_for_job(client, accepted["job"]["id"], timeout=timeout, interval=interval)
    if job["status"] != "succeeded":
        map_id = accepted["map"]["id"]
        raise RuntimeError(f"training of map {map_id} failed: {job.get('error')}")
    return accepted["map"]["id"], job


def run_together(*calls: Callable[[], object], timeout: float = 180.0) -> list:
    """Run the calls in threads released at the same instant; their results in order.

    The first exception a call raised is raised here, in the caller's thread.
    """
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list[BaseException] = []

    def run(k: int, fn: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=30)
            results[k] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k, fn)) for k, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    if errors:
        raise errors[0]
    return results
