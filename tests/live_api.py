"""A real `das api serve` process for tests that talk HTTP to it, as a client would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from das.authoring.queue import Queue, new_proposal_id
from das.contracts import Proposal
from das.identity import Users
from das.store import open_store


class LiveApi:
    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if k != "DAS_ENGINE_URL"}  # local registry by default
        self.env.update({"DAS_HOME": str(home), "DAS_MODEL": "test/auto", **(env or {})})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "das", "api", "serve", "--port", "0", *args],
            env=self.env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 60
        port = None
        self.log: list[str] = []
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            match = re.search(r"http://[^:]+:(\d+)/", line)
            if match:
                port = int(match.group(1))
                break
        if port is None:
            self.proc.kill()
            raise RuntimeError(f"das api serve did not start: {''.join(self.log)}")
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(self.url + "/openapi.json", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)

    @property
    def queue(self) -> Queue:
        return Queue(open_store(self.home / "das.db"))

    def token(self, name: str, role: str) -> str:
        return Users(open_store(self.home / "das.db")).add(name, role)[1]

    def file(self, author: str = "alice", key: str = "demo", **extra: object) -> Proposal:
        from das.bpmn.compile import compile_to_xml

        xml = compile_to_xml({"key": key, "name": key, "steps": [{"type": "user", "name": "Review"}]})
        fields: dict[str, object] = {
            "id": new_proposal_id(),
            "key": key,
            "version": "1.0.0",
            "artifact": xml,
            "author": author,
            "validation": {"file": f"{key}.bpmn", "valid": True},
            **extra,
        }
        return self.queue.file(Proposal.model_validate(fields))

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, follow_redirects=False)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return "".join(self.log) + (err or "")
