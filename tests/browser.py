"""A headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: no network,
no extra package): load a page from disk, collect console errors, check its images, take a screenshot."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


@dataclass
class PageCheck:
    """What the browser saw: console errors and exceptions, each image's (complete, naturalWidth), a PNG."""

    errors: list[str] = field(default_factory=list)
    images: list[tuple[bool, int]] = field(default_factory=list)
    screenshot: bytes = b""


class _Pipe:
    def __init__(self, write_fd: int, read_fd: int) -> None:
        self.write_fd, self.read_fd = write_fd, read_fd
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        while True:
            reply = self.receive(timeout)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def receive(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self.receive(timeout)
            self.events.append(event)
            if event.get("method") == method:
                return event


def check_page(page: Path, chromium: str, width: int = 1280, height: int = 1000) -> PageCheck:
    """Open ``page`` (a file) in headless Chromium and report what it saw."""
    to_child, from_parent = os.pipe()  # parent writes commands → the child's fd 3
    to_parent, from_child = os.pipe()  # the child's fd 4 → parent reads

    def wire() -> None:  # in the child: the protocol's fds are 3 (read) and 4 (write)
        a = fcntl.fcntl(to_child, fcntl.F_DUPFD, 10)
        b = fcntl.fcntl(from_child, fcntl.F_DUPFD, 10)
        os.dup2(a, 3)
        os.dup2(b, 4)

    with tempfile.TemporaryDirectory(prefix="revkit-chromium-") as profile:
        proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=wire)
        os.close(to_child)
        os.close(from_child)
        pipe = _Pipe(from_parent, to_parent)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                pipe.send(f"{domain}.enable", session=session)
            pipe.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
            pipe.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
            pipe.wait_for("Page.loadEventFired")
            result = pipe.send("Runtime.evaluate", {
                "expression": "JSON.stringify(Array.from(document.images).map(i => [i.complete, i.naturalWidth]))",
                "returnByValue": True}, session=session)
            images = [(bool(c), int(w)) for c, w in json.loads(result["result"]["value"])]
            shot = pipe.send("Page.captureScreenshot", {"format": "png"}, session=session)
            errors = []
            for event in pipe.events:
                method, params = event.get("method"), event.get("params", {})
                if method == "Runtime.exceptionThrown":
                    errors.append(str(params.get("exceptionDetails", {}).get("text")))
                elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                    errors.append(json.dumps(params.get("args")))
                elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                    errors.append(str(params["entry"].get("text")))
            return PageCheck(errors, images, base64.b64decode(shot["data"]))
        finally:
            try:
                pipe.send("Browser.close", timeout=5)
            except Exception:  # noqa: S110 - it may already be gone
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(from_parent)
            os.close(to_parent)
