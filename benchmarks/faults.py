"""Faults injected into a running service under load, and what callers saw (a script).

    .venv/bin/python benchmarks/faults.py [--model TAG]

Starts `socialcare serve` with its review queue on a small tmpfs of its own (mounting
needs root; without it the two storage faults are skipped and say so), drives it with
4 callers through the typed client (which retries 503s) and 2 callers with plain HTTP (which
do not), and injects one fault at a time:

1. the review queue's file system read-only when the service starts, writable again 5 s
   into the load (Linux refuses a read-only remount while a file is open for writing);
2. the service worker killed with SIGKILL;
3. the review queue locked by another writer for 5 s;
4. the review queue's disk full for 5 s;
5. the policy file rewritten (half-written, then replaced) while the service runs.

For each: what callers saw (statuses, errors after retries), /readyz, and the posts lost:
flagged posts answered minus those that reached the queue once it was writable again and
those the service still keeps in memory for it (0: none lost).
Prints and writes benchmarks/results/faults.{md,json}.
"""

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from results_io import write_results  # noqa: E402  (same folder)

from serving.child import ServiceProcess  # noqa: E402
from serving.client import SocialCareClient  # noqa: E402
from serving.review_writer import RETRY_S  # noqa: E402
from socialcare.core import paths  # noqa: E402
from socialcare.core.review_queue import ReviewQueue  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "faults"
FAULT_SECONDS = 5.0
# Posts in a language the model does not know are always flagged, so each one must reach
# the queue: counting them is how the script knows nothing was lost.
FLAGGED = {"text": "Where is my refund? Nobody answers my emails.", "lang": "en"}
ORDINARY = {"text": "Hej, när får jag besked om min skadeanmälan?", "lang": "sv"}


class Load:
    """Callers sending requests until stopped: what they saw, and flagged posts answered."""

    def __init__(self, url: str):
        self.url = url
        self.seen: Counter[str] = Counter()
        self.failures: list[str] = []
        self.flagged_answered = 0
        self.policy_versions: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._typed) for _ in range(4)] + [
            threading.Thread(target=self._plain) for _ in range(2)
        ]

    def _note(self, key: str, flagged: int = 0, version: str | None = None) -> None:
        with self._lock:
            self.seen[key] += 1
            self.flagged_answered += flagged
            if version:
                self.policy_versions.add(version)

    def _typed(self) -> None:
        with SocialCareClient(self.url, timeout=60, backoff=0.25) as api:
            while not self._stop.is_set():
                try:
                    response = api.predict_batch([FLAGGED, ORDINARY])
                except Exception as err:  # what a caller of the typed client would see
                    with self._lock:
                        self.failures.append(type(err).__name__)
                    continue
                flagged = sum(p.needs_review and p.lang == "en" for p in response.predictions)
                self._note("client: answered", flagged, response.policy_version)

    def _plain(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as http:
            while not self._stop.is_set():
                try:
                    response = http.post("/predict", json={"posts": [FLAGGED]})
                except httpx.HTTPError as err:
                    self._note(f"plain: {type(err).__name__}")
                    continue
                flagged = 0
                if response.status_code == 200:
                    body = response.json()
                    flagged = int(body["predictions"][0]["needs_review"])
                    self._note("plain: 200", flagged, body["policy_version"])
                else:
                    self._note(f"plain: {response.status_code}")

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)


def readiness_while(action, url: str, until_ready: bool) -> list[int]:
    """/readyz every 0.25 s while ``action`` runs (and until it is 200 again if asked)."""
    statuses: list[int] = []
    thread = threading.Thread(target=action)
    thread.start()
    deadline = time.monotonic() + 120
    while thread.is_alive() or (until_ready and (not statuses or statuses[-1] != 200)):
        try:
            statuses.append(httpx.get(f"{url}/readyz", timeout=10).status_code)
        except httpx.HTTPError:
            statuses.append(0)
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    thread.join()
    return statuses


def queued(queue_path: Path) -> int:
    if not queue_path.exists():
        return 0
    queue = ReviewQueue(queue_path)
    try:
        return len(queue)
    finally:
        queue.close()


def mount_tmpfs(directory: Path) -> bool:
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(directory)], capture_output=True
    )
    return done.returncode == 0


def run_fault(name: str, service: ServiceProcess, queue_path: Path, inject, restore=None) -> dict:
    """Load, inject for FAULT_SECONDS (or until the fault ends), restore, count."""
    before = queued(queue_path)
    with Load(service.url) as load:
        time.sleep(1.0)

        def fault() -> None:
            inject()
            time.sleep(FAULT_SECONDS)
            if restore:
                restore()

        readyz = readiness_while(fault, service.url, until_ready=True)
        time.sleep(RETRY_S + 1.5)  # the kept posts go with the next flagged one
    # One more flagged post, so that a backlog kept until now is written too.
    with SocialCareClient(service.url) as api:
        last = api.predict_batch([FLAGGED]).predictions[0]
    flagged = load.flagged_answered + int(last.needs_review)
    reached = queued(queue_path) - before
    waiting = metric(service.url, "socialcare_review_backlog")
    return {
        "fault": name,
        "callers_saw": dict(load.seen),
        "client_failures_after_retries": len(load.failures),
        "readyz": dict(Counter(readyz)),
        "flagged_answered": flagged,
        "flagged_queued": reached,
        "still_in_memory": waiting,
        "lost": flagged - reached - waiting,
        "policy_versions": sorted(load.policy_versions),
    }


def metric(url: str, name: str) -> int:
    """One unlabelled sample of the service's /metrics."""
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="production")
    args = parser.parse_args()
    from socialcare.runtime.resolver import resolve_model

    model = resolve_model(None if args.model == "production" else args.model).tag
    scratch = Path(tempfile.mkdtemp(prefix="socialcare-faults-"))
    store = scratch / "store"
    store.mkdir()
    on_tmpfs = mount_tmpfs(store)
    queue_path = store / "queue.sqlite"
    policy = scratch / "policy.yaml"
    shutil.copy(paths.POLICY_FILE, policy)
    rows = []
    if on_tmpfs:
        # Read-only from the start: Linux refuses to remount a file system read-only while
        # a process has a file open on it for writing, as the service does once it runs.
        subprocess.run(["mount", "-o", "remount,ro", str(store)], check=True)
    service = ServiceProcess(
        model, scratch, "--review-queue", str(queue_path), "--policy", str(policy)
    )
    try:
        service.wait_until_ready()
        if on_tmpfs:
            rows.append(
                run_fault(
                    f"review queue's file system read-only until {FAULT_SECONDS:g} s into the load",
                    service,
                    queue_path,
                    lambda: None,
                    lambda: subprocess.run(["mount", "-o", "remount,rw", str(store)], check=True),
                )
            )
        rows.append(
            run_fault(
                "service worker killed (SIGKILL)",
                service,
                queue_path,
                lambda: os.kill(service.worker_pid(), signal.SIGKILL),
            )
        )
        blocker = sqlite3.connect(queue_path, isolation_level=None, check_same_thread=False)
        rows.append(
            run_fault(
                f"review queue locked by another writer for {FAULT_SECONDS:g} s",
                service,
                queue_path,
                lambda: blocker.execute("BEGIN IMMEDIATE"),
                lambda: blocker.execute("ROLLBACK"),
            )
        )
        blocker.close()
        if on_tmpfs:
            filler = store / "filler"

            def fill() -> None:
                with filler.open("wb") as out:
                    try:
                        while True:
                            out.write(b"\0" * 65536)
                            out.flush()
                    except OSError:
                        pass

            rows.append(
                run_fault(
                    f"review queue's disk full for {FAULT_SECONDS:g} s",
                    service,
                    queue_path,
                    fill,
                    lambda: filler.unlink(),
                )  # fmt: skip
            )
        else:
            for name in ("read-only file system", "disk full"):
                rows.append({"fault": f"review queue: {name}", "skipped": "needs root (mount)"})
        original = policy.read_text(encoding="utf-8")

        def rewrite_policy() -> None:
            policy.write_text("version: half-written\nrules: [", encoding="utf-8")
            time.sleep(1)
            policy.write_text(original.replace("version:", "version: edited-", 1), "utf-8")

        rows.append(run_fault("policy file rewritten while serving", service, queue_path,
                              rewrite_policy))  # fmt: skip
        metrics = httpx.get(f"{service.url}/metrics", timeout=10).text
        log = service.log()
    finally:
        service.stop()
        if on_tmpfs:
            subprocess.run(["umount", str(store)], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)

    queue_metrics = [line for line in metrics.splitlines() if line.startswith("socialcare_review_")]
    lines = [
        "# Faults under load",
        "",
        f"Model `{model}`; {datetime.now(UTC).isoformat(timespec='seconds')}. Callers: 4 with "
        "the typed client (retries 503), 2 with plain HTTP (no retries). Lost = flagged posts "
        "answered − posts that reached the queue − posts still kept in memory.",
        "",
        "| fault | callers saw | client errors after retries | /readyz during | "
        "flagged answered | queued | in memory | lost | policy version served |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['fault']} | skipped: {row['skipped']} | | | | | | | |")
            continue
        lines.append(
            f"| {row['fault']} | {row['callers_saw']} | {row['client_failures_after_retries']} "
            f"| {row['readyz']} | {row['flagged_answered']} | {row['flagged_queued']} | "
            f"{row['still_in_memory']} | {row['lost']} | {', '.join(row['policy_versions'])} |"
        )
    lines += [
        "",
        "The queue's metrics at the end:",
        "",
        "```",
        *queue_metrics,
        "```",
        "",
        f"Service log: {log.count('status=500')} answers with status 500, "
        f"{log.count('Traceback')} tracebacks.",
    ]
    text = "\n".join(lines) + "\n"
    write_results(RESULTS, text, rows)
    measured = [row for row in rows if "skipped" not in row]
    five_hundreds = any(key.endswith(": 500") for row in measured for key in row["callers_saw"])
    ok = all(r["lost"] == 0 and r["client_failures_after_retries"] == 0 for r in measured)
    return 0 if ok and not five_hundreds else 1


if __name__ == "__main__":
    sys.exit(main())
