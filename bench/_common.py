"""Helpers shared by the benches: thread pinning, median timing, peak memory, tables.

``pin_threads`` must run before numpy, numba or a peer library is imported: OpenMP and
BLAS read their thread counts once, when they load.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata

#: every variable a library here reads its thread count from
THREAD_VARIABLES = (
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def pin_threads(n: int) -> dict[str, str]:
    """Give numba, OpenMP (somoclu) and BLAS (numpy, MiniSom) ``n`` threads each.

    Sets the environment (inherited by subprocesses too). If numba is already loaded it
    is switched at run time; numpy's BLAS is not, so call this first. Returns the
    variables set.
    """
    if n < 1:
        raise ValueError(f"thread count must be at least 1, got {n}")
    env = {name: str(n) for name in THREAD_VARIABLES}
    os.environ.update(env)
    if "numba" in sys.modules:
        import numba

        if n > numba.config.NUMBA_NUM_THREADS:
            raise RuntimeError(
                f"numba was loaded with {numba.config.NUMBA_NUM_THREADS} threads, "
                f"cannot raise it to {n}: call pin_threads before importing numba"
            )
        numba.set_num_threads(n)
    return env


@dataclass
class Timing:
    """Wall-clock seconds of repeated runs of one thing."""

    seconds: list[float] = field(default_factory=list)
    #: process CPU seconds (all threads) of each run: cpu / wall below the thread count
    #: means the run waited for cores that other processes held
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the repeats were."""
        return (max(self.seconds) - min(self.seconds)) / self.median if self.median else 0.0

    @property
    def cores_used(self) -> float:
        """Median CPU seconds per wall second: the cores this process actually got."""
        return statistics.median(c / s for c, s in zip(self.cpu, self.seconds, strict=True))

    def __str__(self) -> str:
        runs = ", ".join(f"{s:.3g}" for s in self.seconds)
        cores = f", {self.cores_used:.2f} cores busy" if self.cpu else ""
        return f"median {self.median:.4g} s of [{runs}]{cores}"


def time_call(fn: Callable[[], object], repeat: int = 3, warmup: int = 0) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``repeat`` times timed."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    for _ in range(warmup):
        fn()
    t = Timing()
    for _ in range(repeat):
        cpu = time.process_time()
        start = time.perf_counter()
        fn()
        t.seconds.append(time.perf_counter() - start)
        t.cpu.append(time.process_time() - cpu)
    return t


def current_rss() -> int:
    """Resident set size of this process, bytes (from /proc, no psutil needed on Linux)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss


def max_rss() -> int:
    """High-water mark of this process's resident set, bytes.

    ``VmHWM`` from /proc where there is one (``reset_peak_rss`` can lower it), else
    ``ru_maxrss``. Beware that on Linux ``ru_maxrss`` carries the parent's peak across
    fork + exec, so in a child started by a big process it says nothing about the child.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes
    return kib if sys.platform == "darwin" else kib * 1024


def reset_peak_rss() -> bool:
    """Lower the high-water mark (``VmHWM``) to the current RSS; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class RssSampler:
    """Sample this process's RSS in a background thread; ``peak`` is the largest seen.

    Complements ``max_rss``: the high-water mark also remembers everything before the
    measured step, sampling sees only the step but can miss a spike shorter than
    ``interval`` seconds.
    """

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.peak = current_rss()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss())


def run_json(args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 3600) -> dict:
    """Run ``args`` in a fresh process and parse the JSON object on its last stdout line.

    Used for memory measurements, which need a process whose high-water mark holds
    nothing but the measured step. Raises with the child's stderr when it fails.
    """
    proc = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} exited with {proc.returncode}:\n{proc.stderr[-4000:]}"
        )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"{' '.join(args)} printed nothing; stderr:\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min)"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_state(repo: str | os.PathLike, paths: Sequence[str] = ()) -> str:
    """Commit of ``repo`` and whether ``paths`` differ from it: which code was timed."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", *paths],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    where = " ".join(paths) or "tree"
    return f"git {head}" + (f", {where} modified" if dirty else f", {where} clean")


def machine_info(packages: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(label, value) pairs describing the machine and the versions that were timed."""
    flags = cpu_flags()
    simd = [f for f in ("avx2", "avx512f", "fma") if f in flags]
    mem = "n/a"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                    break
    except OSError:
        pass
    rows = [
        ("cpu", f"{cpu_model()} ({', '.join(simd) or 'no avx2'})"),
        ("cores", f"{os.cpu_count()} logical, {len(os.sched_getaffinity(0))} usable"),
        ("memory", mem),
        ("load average", load_average()),
        ("python", platform.python_version()),
    ]
    rows += [(p, package_version(p)) for p in packages]
    return rows


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
