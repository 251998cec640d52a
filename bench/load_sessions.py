"""Ten browser sessions at once against one ``streamlit run`` server, each starting a comparison.

Opens N Chromium contexts (separate browsers, as far as the server can tell) on the Compare
page, each with its own small comparison, and presses Run in each, one after the other (each
press waits until its page shows the job: that fixes the submit order). While they train, a
probe opens the Compare page again and again and times it until its Run button shows. Then:

- all finish, none lost or doubled: every session's page reaches "finished: 100%", and the
  MLflow store holds exactly one comparison of exactly its runs per session, all FINISHED;
- the queue is fair (first come, first served): the order in which the comparisons started
  (their first run's start time in MLflow) against the order they were submitted;
- page load while busy: p50 / p95 / max of the probe's loads;
- the server process's resident memory, threads and open file descriptors (by kind) before
  the sessions, at their peak, just after they close and after a settling pause; the worker
  processes' memory beside it.

``run_sessions`` is the measurement; ``tests/test_load_sessions.py`` asserts its invariants.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import math
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from browser import CHROMIUM, CHROMIUM_ARGS, compare_url, start_streamlit  # noqa: E402

OPTIMIZERS = ["sgd:lr=0.1", "adam:lr=0.01"]
FIRST_SEED = 1000  # session i runs seed FIRST_SEED + i: every session its own comparison (its own job key)
WARMUP_SEED = 999
FINISHED = "finished: 100%"
# A job shows on its page as a progress bar ("waiting for a free worker", "training", "finished").
JOB_SHOWN = re.compile(r"^(waiting for a free worker|training|finished): ")
RUN_READY_JS = "() => !document.querySelector('[data-testid=stStatusWidget]')"


# -- the server process, from /proc -----------------------------------------------------------


@dataclass(frozen=True)
class ProcStats:
    """One look at the server process (and, for memory, the processes it started)."""

    at: float
    rss_mb: float
    threads: int
    fds: int
    fd_kinds: dict[str, int]
    children_rss_mb: float
    cpu_s: float  # the server process's user + system CPU seconds so far (all its threads)


def _status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def _fd_kind(link: str) -> str:
    if link.startswith("socket:"):
        return "socket"
    if link.startswith("pipe:"):
        return "pipe"
    if link.startswith("anon_inode:"):
        return link.removeprefix("anon_inode:").strip("[]")
    return "file"


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children[ppid].append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def proc_stats(pid: int) -> ProcStats:
    kinds: collections.Counter[str] = collections.Counter()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            kinds[_fd_kind(os.readlink(fd))] += 1
        except OSError:  # closed while we looked
            continue
    children = 0
    for child in _descendants(pid):
        try:
            children += _status_field(child, "VmRSS")
        except OSError:
            continue
    return ProcStats(
        at=time.time(), rss_mb=_status_field(pid, "VmRSS") / 1024, threads=_status_field(pid, "Threads"),
        fds=sum(kinds.values()), fd_kinds=dict(kinds), children_rss_mb=children / 1024, cpu_s=_cpu_seconds(pid),
    )


def browser_cpu_seconds() -> float:
    """CPU seconds so far of the Chromium processes this process started (through Playwright)."""
    total = 0.0
    for child in _descendants(os.getpid()):
        try:
            if Path(f"/proc/{child}/comm").read_text().startswith("chrom"):
                total += _cpu_seconds(child)
        except OSError:
            continue
    return total


class Sampler:
    """Samples :func:`proc_stats` every ``every`` seconds on a thread, for the peak while busy."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        self.pid, self.every = pid, every
        self.samples: list[ProcStats] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(proc_stats(self.pid))
            except OSError:
                return
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, start: float, end: float) -> dict[str, float]:
        window = [s for s in self.samples if start <= s.at <= end] or self.samples[-1:]
        span = window[-1].at - window[0].at
        return {
            "cpu_share": (window[-1].cpu_s - window[0].cpu_s) / span if span > 0 else 0.0,
            "rss_mb": max(s.rss_mb for s in window), "threads": max(s.threads for s in window),
            "fds": max(s.fds for s in window), "children_rss_mb": max(s.children_rss_mb for s in window),
        }


# -- the sessions ------------------------------------------------------------------------------


@dataclass
class LoadResult:
    sessions: int
    submitted_at: dict[int, float] = field(default_factory=dict)  # seed -> when its page showed the job
    finished_at: dict[int, float] = field(default_factory=dict)
    idle_loads: list[float] = field(default_factory=list)  # the Compare page with nothing running
    idle_load_cpu_s: float = 0.0  # the server's CPU seconds per idle page load
    browser_cpu_share: float = 0.0  # Chromium's CPU while busy, in cores
    first_loads: list[float] = field(default_factory=list)  # the N pages opened at once
    load_average: tuple[float, float] = (0.0, 0.0)  # the machine's 1-minute load at the start and the end
    busy_loads: list[float] = field(default_factory=list)  # the probe's loads while jobs ran
    browser_sessions: int = 0  # every page load opens a server session: N + probes + warm-up
    stats: dict[str, ProcStats | dict[str, float]] = field(default_factory=dict)
    runs: dict[int, list[dict]] = field(default_factory=dict)  # seed -> its MLflow runs
    comparisons: dict[int, set[str]] = field(default_factory=dict)  # seed -> comparison ids
    extra_runs: int = 0  # runs in the store that belong to no session
    stalled: dict[int, str] = field(default_factory=dict)  # seed -> what its page showed instead of finished
    page_errors: dict[str, list[str]] = field(default_factory=dict)  # page -> its uncaught script errors
    session_ttl_s: int = 120  # Streamlit's server.disconnectedSessionTTL for this run
    settle_s: float = 10.0  # the pause after the sessions closed

    @property
    def submit_order(self) -> list[int]:
        return sorted(self.submitted_at, key=self.submitted_at.__getitem__)

    def started_at(self, seed: int) -> float:
        return min(r["start"] for r in self.runs[seed])

    @property
    def start_order(self) -> list[int]:
        return sorted(self.runs, key=self.started_at)

    def inversions(self, tolerance: float = 0.0) -> list[tuple[int, int]]:
        """Pairs (a, b), a submitted before b, where b started more than ``tolerance`` s before a."""
        order = self.submit_order
        return [
            (a, b) for i, a in enumerate(order) for b in order[i + 1:]
            if a in self.runs and b in self.runs and self.started_at(b) + tolerance < self.started_at(a)
        ]


async def _open(browser, url: str, errors: list[str] | None = None) -> tuple[object, object, float]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    if errors is not None:  # a tab the app broke (a bad delta) reports it here
        page.on("pageerror", lambda exc: errors.append(str(exc)))
    seconds = await _load(page, url)
    return context, page, seconds


async def _load(page, url: str, timeout_s: float = 120.0) -> float:
    """Seconds from navigation to a usable page: its Run button shown and the script run done."""
    start = time.perf_counter()
    await page.goto(url, timeout=timeout_s * 1000)
    await page.get_by_role("button", name="Run").wait_for(timeout=timeout_s * 1000)
    await page.wait_for_function(RUN_READY_JS, timeout=timeout_s * 1000)
    return time.perf_counter() - start


async def _press_run(page) -> float:
    """Press Run; return when (wall clock) it was pressed, once the page shows the job."""
    pressed = time.time()
    await page.get_by_role("button", name="Run").click()
    await page.get_by_text(JOB_SHOWN).first.wait_for(timeout=120_000)
    return pressed


async def _drive(url: str, pid: int, result: LoadResult, *, epochs: int, settle_s: float,
                 job_timeout_s: float, measure: bool) -> None:
    from playwright.async_api import async_playwright

    def config_url(seed: int) -> str:
        return compare_url(url, OPTIMIZERS, epochs=epochs, seeds=seed, dataset="moons", model="mlp")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # Warm-up: the first Run imports the pages and starts the worker processes; the
        # baseline is a server that has served one comparison, with its workers warm.
        context, page, _ = await _open(browser, config_url(WARMUP_SEED))
        await _press_run(page)
        await page.get_by_text(FINISHED).wait_for(timeout=job_timeout_s * 1000)
        # The same page load with nothing running, for scale (this machine may be busy with
        # other work: the load average is in the report).
        cpu = proc_stats(pid).cpu_s
        for _ in range(3 if measure else 0):
            result.idle_loads.append(await _load(page, f"{url}/Compare_optimizers"))
            result.browser_sessions += 1
        result.idle_load_cpu_s = (proc_stats(pid).cpu_s - cpu) / max(1, len(result.idle_loads))
        await context.close()
        result.browser_sessions += 1
        await asyncio.sleep(3.0)
        result.stats["before"] = proc_stats(pid)

        sampler = Sampler(pid)
        opened = await asyncio.gather(*(
            _open(browser, config_url(FIRST_SEED + i), result.page_errors.setdefault(f"seed {FIRST_SEED + i}", []))
            for i in range(result.sessions)
        ))
        result.browser_sessions += len(opened)
        result.first_loads = [seconds for _, _, seconds in opened]
        busy_start, browser_cpu = time.time(), browser_cpu_seconds()
        done = asyncio.Event()

        async def probe() -> None:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            while not done.is_set():
                result.busy_loads.append(await _load(page, f"{url}/Compare_optimizers"))
                result.browser_sessions += 1
                await asyncio.sleep(0.5)
            await context.close()

        # From the first press until the last job ends.
        prober = asyncio.create_task(probe() if measure else done.wait())
        for i, (_, page, _) in enumerate(opened):
            # One after the other, each once its page shows the job: the submit order is known.
            result.submitted_at[FIRST_SEED + i] = await _press_run(page)

        async def finish(i: int, page) -> None:
            from playwright.async_api import TimeoutError as PlaywrightTimeout

            try:
                await page.get_by_text(FINISHED).wait_for(timeout=job_timeout_s * 1000)
            except PlaywrightTimeout:  # reported with what the page showed instead
                try:
                    shown = await page.locator("[data-testid=stProgress]").first.inner_text(timeout=5_000)
                except PlaywrightTimeout:
                    shown = (await page.inner_text("body", timeout=5_000))[-300:]
                result.stalled[FIRST_SEED + i] = shown.strip()
                return
            result.finished_at[FIRST_SEED + i] = time.time()

        await asyncio.gather(*(finish(i, page) for i, (_, page, _) in enumerate(opened)))
        done.set()
        await prober
        busy_end = time.time()
        result.stats["peak"] = sampler.peak(busy_start, busy_end)
        result.browser_cpu_share = (browser_cpu_seconds() - browser_cpu) / (busy_end - busy_start)
        for context, _, _ in opened:
            await context.close()
        if not measure:
            await browser.close()
            sampler.stop()
            return
        await asyncio.sleep(1.0)
        result.stats["closed"] = proc_stats(pid)
        await asyncio.sleep(settle_s)
        result.stats["settled"] = proc_stats(pid)
        # Streamlit keeps a closed session for a reconnect (server.disconnectedSessionTTL) and
        # drops the expired ones only when it stores the next: one more session, opened and
        # closed, shows what remains once the retention time has passed.
        context, _, _ = await _open(browser, f"{url}/Compare_optimizers")
        await context.close()
        result.browser_sessions += 1
        await browser.close()
    await asyncio.sleep(2.0)
    result.stats["reaped"] = proc_stats(pid)
    sampler.stop()


def _read_store(home: Path, result: LoadResult) -> None:
    from mlflow import MlflowClient

    from tracking.store import EXPERIMENT

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], max_results=10_000) if experiment else []
    for run in runs:
        tags, params = run.data.tags, run.data.params
        if "optimizer" not in tags:  # a comparison's parent run
            continue
        seed = int(params.get("seed", tags.get("seed", -1)))
        if seed == WARMUP_SEED:
            continue
        if seed not in result.submitted_at:
            result.extra_runs += 1
            continue
        result.runs.setdefault(seed, []).append({
            "optimizer": tags["optimizer"], "status": run.info.status, "start": run.info.start_time / 1000,
        })
        result.comparisons.setdefault(seed, set()).add(tags.get("comparison_id", ""))


def _app_session_ttl() -> int:
    import tomllib

    config = Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml"
    return int(tomllib.loads(config.read_text()).get("server", {}).get("disconnectedSessionTTL", 120))


def run_sessions(*, sessions: int = 10, epochs: int = 150, settle_s: float = 10.0, job_timeout_s: float = 300.0,
                 session_ttl_s: int | None = None, measure: bool = True) -> LoadResult:
    """Start a server, drive ``sessions`` browsers at it, read its MLflow store; stop the server.

    ``measure=False``: only the sessions and the store (no page-load probe, nothing after they close).

    ``session_ttl_s``: Streamlit's ``server.disconnectedSessionTTL``, how long a closed browser
    session is kept for a reconnect (default: the app's ``.streamlit/config.toml``).
    """
    result = LoadResult(sessions, session_ttl_s=session_ttl_s or _app_session_ttl(), settle_s=settle_s)
    env = {} if session_ttl_s is None else {"STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": str(session_ttl_s)}
    with tempfile.TemporaryDirectory(prefix="dlopt-load-") as tmp:
        home = Path(tmp)
        proc, url = start_streamlit(home, **env)
        try:
            # Its own thread: asyncio.run must not meet a sync Playwright of the caller's thread.
            failure: list[BaseException] = []

            def drive() -> None:
                try:
                    asyncio.run(_drive(url, proc.pid, result, epochs=epochs, settle_s=settle_s,
                                       job_timeout_s=job_timeout_s, measure=measure))
                except BaseException as exc:  # noqa: BLE001  (re-raised in the caller's thread)
                    failure.append(exc)

            start_load = os.getloadavg()[0]
            thread = threading.Thread(target=drive, name="load-sessions")
            thread.start()
            thread.join()
            result.load_average = (start_load, os.getloadavg()[0])
            if failure:
                log = (home / "server.log").read_text(errors="replace")[-4000:]
                raise RuntimeError(f"the load run failed; server log tail:\n{log}") from failure[0]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        _read_store(home, result)
    return result


# -- the report --------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _times(values: list[float]) -> str:
    if not values:
        return "none"
    return (f"p50 {statistics.median(values):.2f} s  p95 {_percentile(values, 0.95):.2f} s  "
            f"max {max(values):.2f} s  (n={len(values)})")


def report(result: LoadResult) -> str:
    expected = len(OPTIMIZERS)
    lost = [s for s in result.submitted_at if len(result.runs.get(s, [])) < expected]
    doubled = [s for s in result.submitted_at
               if len(result.runs.get(s, [])) > expected or len(result.comparisons.get(s, ())) > 1]
    unfinished = [s for s in result.submitted_at if any(r["status"] != "FINISHED" for r in result.runs.get(s, []))]
    order = result.submit_order
    started = result.start_order
    waits = [result.started_at(s) - result.submitted_at[s] for s in order if s in result.runs]
    before, closed, settled, reaped = (result.stats[k] for k in ("before", "closed", "settled", "reaped"))
    peak, settle_s = result.stats["peak"], result.settle_s
    assert isinstance(peak, dict)
    assert all(isinstance(s, ProcStats) for s in (before, closed, settled, reaped))
    # The warm-up's sessions (its page and three reloads) closed before "before"; the last one is open.
    closed_sessions = result.browser_sessions - 5
    kinds = sorted(set(before.fd_kinds) | set(settled.fd_kinds))
    kind_change = ", ".join(f"{k} {settled.fd_kinds.get(k, 0) - before.fd_kinds.get(k, 0):+d}" for k in kinds
                            if settled.fd_kinds.get(k, 0) != before.fd_kinds.get(k, 0)) or "none"
    lines = [
        f"load_sessions: {result.sessions} browser sessions at once, each a {'+'.join(o.split(':')[0] for o in OPTIMIZERS)} "
        f"comparison; {os.cpu_count()} CPU cores, load average {result.load_average[0]:.1f} at the start, "
        f"{result.load_average[1]:.1f} at the end",
        f"  finished                 {len(result.finished_at)}/{result.sessions}   lost {len(lost)}   doubled {len(doubled)}"
        f"   not FINISHED in MLflow {len(unfinished)}   stray runs {result.extra_runs}",
        *(f"  page of seed {seed} never showed {FINISHED!r}; it showed: {shown!r}" for seed, shown in result.stalled.items()),
        f"  tabs broken (uncaught script errors in the page): {sum(1 for e in result.page_errors.values() if e)}",
        *(f"    {page}: {errors[0][:200]}" for page, errors in result.page_errors.items() if errors),
        f"  queue (first come, first served): submit order == start order: {order == started}; "
        f"pairs started out of order: {len(result.inversions())} (beyond 0.5 s: {len(result.inversions(0.5))})",
        f"  wait from submit to start by place in the queue: {' '.join(f'{w:.1f}' for w in waits)} s",
        f"  page load, server idle     {_times(result.idle_loads)}   server CPU {result.idle_load_cpu_s:.2f} s a load",
        f"  first load of {result.sessions} pages at once  {_times(result.first_loads)}",
        f"  page load while busy       {_times(result.busy_loads)}   (target p95 < 3 s)",
        f"  CPU while busy: server process {peak['cpu_share']:.0%} of one core (its threads share one interpreter "
        f"lock), Chromium {result.browser_cpu_share:.0%}, of {os.cpu_count()} cores",
        f"  server process             before    peak  closed+1s  +{settle_s:.0f}s  +1 session",
        f"    RSS MB                   {before.rss_mb:7.0f} {peak['rss_mb']:7.0f} {closed.rss_mb:10.0f} "
        f"{settled.rss_mb:5.0f} {reaped.rss_mb:11.0f}",
        f"    threads                  {before.threads:7d} {peak['threads']:7.0f} {closed.threads:10d} "
        f"{settled.threads:5d} {reaped.threads:11d}",
        f"    open fds                 {before.fds:7d} {peak['fds']:7.0f} {closed.fds:10d} {settled.fds:5d} {reaped.fds:11d}",
        f"    worker processes RSS MB  {before.children_rss_mb:7.0f} {peak['children_rss_mb']:7.0f} "
        f"{closed.children_rss_mb:10.0f} {settled.children_rss_mb:5.0f} {reaped.children_rss_mb:11.0f}",
        f"  fds held {settle_s:.0f} s after {closed_sessions} browser sessions closed: {settled.fds - before.fds:+d} "
        f"({(settled.fds - before.fds) / max(1, closed_sessions):.1f} per session; by kind: {kind_change}); "
        f"after one more session: {reaped.fds - before.fds:+d} (session TTL {result.session_ttl_s} s)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench load_sessions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=150, help="per comparison (moons MLP, SGD and Adam)")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds to wait after the sessions close")
    parser.add_argument("--session-ttl", type=int, default=None,
                        help="Streamlit's server.disconnectedSessionTTL in seconds (default: the app's setting)")
    opts = parser.parse_args(argv)
    print(report(run_sessions(sessions=opts.sessions, epochs=opts.epochs, settle_s=opts.settle,
                              session_ttl_s=opts.session_ttl)))


if __name__ == "__main__":
    main()
