"""`socialcare serve` as a child process, for the tests and the benchmarks that need the
real thing (several processes, HTTP, signals): start it, wait until it is ready, find its
workers, measure its memory, stop it with all its workers."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from serving.client import SocialCareClient


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """`socialcare serve --model MODEL [options]` on a free port, logging to a file in
    ``directory``, with its review queue there unless the options name one."""

    def __init__(self, model: str, directory: Path, *options: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.queue = Path(directory) / "queue.sqlite"
        self.log_path = Path(directory) / "serve.log"
        self._log = self.log_path.open("w")
        if "--review-queue" not in options:
            options = ("--review-queue", str(self.queue), *options)
        command = [sys.executable, "-m", "socialcare.cli", "serve", "--port", str(self.port),
                   "--model", model, *options]  # fmt: skip
        # Its own process group, so that stopping it stops BentoML's workers too.
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_until_ready(self, timeout: float = 180) -> None:
        with SocialCareClient(self.url) as api:
            api.wait_until_ready(timeout=timeout)

    def worker_pid(self) -> int:
        """The service worker's process id (BentoML restarts it with a new one)."""
        import psutil

        for child in psutil.Process(self.process.pid).children(recursive=True):
            if "_bentoml_impl.worker.service" in " ".join(child.cmdline()):
                return child.pid
        raise LookupError("no service worker is running")

    def rss_bytes(self) -> int:
        """Resident memory of the server and all its workers."""
        import psutil

        server = psutil.Process(self.process.pid)
        processes = [server, *server.children(recursive=True)]
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self._log.close()

    def __enter__(self) -> "ServiceProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
