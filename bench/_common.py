"""Helpers shared by the benchmark scripts (not a test module, not part of mailvet)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"  # git-ignored (see .gitignore: bench/out/)


@dataclass
class ChildRun:
    returncode: int
    wall: float  # seconds from spawn to reaped
    maxrss_mb: float  # peak RSS of that one child (MiB), from os.wait4
    user: float  # CPU seconds of the child
    system: float
    stdout: str
    stderr: str
    tree_rss_mb: float = 0.0  # peak of the summed PSS of the child and all its descendants
    tree_cpu: float = 0.0  # CPU seconds of the child and all its descendants (sampled)


def _descendants(pid: int) -> list[int]:
    """pid and every process below it (Linux /proc; [pid] elsewhere)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return [pid]
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _rss_kib(pid: int) -> int:
    """The process's proportional set size (shared pages split between the processes that
    share them, so a sum over forked workers does not count the fork server's pages
    three times); its RSS where smaps_rollup is missing."""
    for path, key in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith(key):
                        return int(line.split()[1])
        except OSError:
            continue
    return 0


class TreeRssSampler:
    """Samples the summed PSS (RSS without double-counted shared pages) of a process tree every
    `interval` s; `.peak_mb` at the end.
    (A fork server's workers are not the child's own children: os.wait4 misses them.)"""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.peak_kib = 0
        self.cpu: dict[int, float] = {}  # pid -> CPU seconds last seen (a process's own only)
        self._pid = pid
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = _descendants(self._pid)
            total = sum(_rss_kib(p) for p in pids)
            self.peak_kib = max(self.peak_kib, total)
            for p in pids:
                self.cpu[p] = max(self.cpu.get(p, 0.0), _cpu_seconds(p))
            self._stop.wait(self._interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kib / 1024.0


def mailvet_command() -> list[str]:
    """The `mailvet` console script of this venv (else `python -m mailvet`)."""
    script = Path(sys.executable).with_name("mailvet")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "mailvet"]


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The current environment without any MAILVET_* variable, plus *extra*.

    PYTHONDONTWRITEBYTECODE is dropped too: a child measures mailvet as installed, where
    Python keeps the compiled modules; with it set (some sandboxes do) every child compiled
    mailvet's sources again, ~40 ms of each start-up."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MAILVET_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(extra)
    return env


def run_child(
    cmd: list[str],
    env: dict[str, str],
    cwd: Path,
    log_prefix: Path,
    *,
    limit: float | None = None,
    sample_tree: bool = True,
) -> ChildRun:
    """Run *cmd*, time it and read ITS peak RSS with os.wait4(pid).

    os.wait4 returns the resource usage of exactly the reaped child (plus any
    grandchildren *it* waited for; mailvet starts none), unlike
    getrusage(RUSAGE_CHILDREN), which would fold in every earlier child of
    this process too.  stdout/stderr go to files next to *log_prefix*.
    *limit*: the child is killed after that many seconds (returncode -9), so a stuck run
    cannot hang the bench. *sample_tree* False: no sampler thread (tree_rss_mb and
    tree_cpu are then the child's own), for a bench that times this process's own CPU.
    """
    out_path = log_prefix.with_suffix(".stdout.txt")
    err_path = log_prefix.with_suffix(".stderr.txt")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL
        )
        sampler = TreeRssSampler(proc.pid) if sample_tree else None
        # a kill that fires after the reaping finds no child (Popen polls first): harmless
        killer = threading.Timer(limit, proc.kill) if limit is not None else None
        if killer is not None:
            killer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if killer is not None:
            killer.cancel()
        tree_rss = sampler.stop() if sampler is not None else 0.0
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
    # the child's own CPU from wait4; its descendants' (pool workers) as last sampled
    own = usage.ru_utime + usage.ru_stime
    seen = sampler.cpu.items() if sampler is not None else ()
    descendants = sum(cpu for pid, cpu in seen if pid != proc.pid)
    return ChildRun(
        returncode=proc.returncode,
        wall=wall,
        maxrss_mb=usage.ru_maxrss / 1024.0,  # Linux: KiB
        user=usage.ru_utime,
        system=usage.ru_stime,
        stdout=out_path.read_text(encoding="utf-8", errors="replace"),
        stderr=err_path.read_text(encoding="utf-8", errors="replace"),
        tree_rss_mb=max(tree_rss, usage.ru_maxrss / 1024.0),
        tree_cpu=own + descendants,
    )


def target_line(name: str, ok: bool, detail: str) -> str:
    return f"  [{'ok' if ok else 'MISSED'}] {name}: {detail}"


def report_targets(checks: list[tuple[str, bool, str]], *, exit_on_miss: bool = True) -> int:
    """Print each target as ok/MISSED; exit code 1 if any was missed (0 whatever the
    outcome when not *exit_on_miss*: a bench whose targets depend on the machine)."""
    print("targets:")
    for name, ok, detail in checks:
        print(target_line(name, ok, detail))
    missed = [name for name, ok, _ in checks if not ok]
    if missed:
        print(f"TARGET MISSED: {', '.join(missed)}")
        return 1 if exit_on_miss else 0
    print("all targets met")
    return 0
