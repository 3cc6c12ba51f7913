"""A real headless Chromium driven over the DevTools protocol (a websocket, no extra driver).

``load_page(path, screenshot)`` starts Debian's ``chromium`` with a private profile, opens the
file, waits for the load event and for every image to decode, and returns what the page said on
its console, each image's natural size, and a full-page PNG screenshot written to ``screenshot``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from websockets.sync.client import connect

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageReport:
    console_errors: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)  # {alt, naturalWidth, naturalHeight, complete}
    title: str = ""
    size: tuple[int, int] = (0, 0)  # css width, height of the whole page


class _Session:
    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return ev
        while time.monotonic() < deadline:
            ev = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            self.events.append(ev)
            if ev.get("method") == method:
                return ev
        raise TimeoutError(f"no {method} within {timeout}s")


def _console_errors(events: list[dict]) -> list[str]:
    errors = []
    for ev in events:
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            errors.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description")))
                                                               for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            errors.append("exception: " + d.get("exception", {}).get("description", d.get("text", "")))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            errors.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}".strip())
    return errors


_IMAGES_JS = """
(async () => {
  await Promise.all([...document.images].map(i => i.decode().catch(() => null)));
  return [...document.images].map(i => ({alt: i.alt, complete: i.complete,
    naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight}));
})()
"""


def load_page(page: Path, screenshot: Path, width: int = 1280, timeout: float = 60) -> PageReport:
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError(f"none of {', '.join(CANDIDATES)} is on PATH")
    # chromium's helper processes may still write to the profile as it exits: stop its whole
    # process group, and do not fail the test on a leftover file of the throwaway profile
    with tempfile.TemporaryDirectory(prefix="fashionrec-chromium-", ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + timeout
            while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
                if proc.poll() is not None:
                    raise RuntimeError(f"chromium exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"chromium did not open its DevTools port within {timeout}s")
                time.sleep(0.1)
            port, path = port_file.read_text().splitlines()[:2]
            with connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=timeout) as ws:
                return _drive(_Session(ws), page, screenshot, width, timeout)
        finally:
            _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    """Terminate chromium and every helper it started (its own session), then reap it."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(0.3)  # helpers of the group exit just after the browser process


def _drive(cdp: _Session, page: Path, screenshot: Path, width: int, timeout: float) -> PageReport:
    target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    sid = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        cdp.send(f"{domain}.enable", session=sid)
    cdp.send("Emulation.setDeviceMetricsOverride",
             {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=sid)
    cdp.send("Page.navigate", {"url": page.resolve().as_uri()}, session=sid)
    cdp.wait_for("Page.loadEventFired", timeout)
    images = cdp.send("Runtime.evaluate", {"expression": _IMAGES_JS, "awaitPromise": True,
                                           "returnByValue": True}, session=sid, timeout=timeout)
    title = cdp.send("Runtime.evaluate", {"expression": "document.title", "returnByValue": True},
                     session=sid)["result"]["value"]
    metrics = cdp.send("Page.getLayoutMetrics", session=sid)["cssContentSize"]
    size = (int(metrics["width"]), int(metrics["height"]))
    cdp.send("Emulation.setDeviceMetricsOverride",
             {"width": width, "height": size[1], "deviceScaleFactor": 1, "mobile": False}, session=sid)
    shot = cdp.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                    session=sid, timeout=timeout)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    time.sleep(0.2)  # let late console/log events arrive
    try:
        while True:
            cdp.events.append(json.loads(cdp.ws.recv(timeout=0.2)))
    except TimeoutError:
        pass
    return PageReport(_console_errors(cdp.events), images["result"]["value"], title, size)
