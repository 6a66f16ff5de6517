"""The live viewer in headless Chromium: a PNG of the page mid-conversation (``docs/viewer.png``).

    python -m runtime.viewer.screenshot --out docs/viewer.png [--at 8] [--size 1280x760] [-- mic_demo arguments]

Starts ``python -m runtime.viewer --browser 127.0.0.1:0`` (the demo conversation, real-time, on a free port), opens
the URL it logs in headless Chromium and saves the page once it shows the frame at ``--at`` seconds. Needs Debian's
``chromium`` and ``chromium-driver`` (``scripts/bootstrap.sh ...,dev`` installs them) and ``selenium`` (dev extra).
``tests/test_viewer.py`` drives the page with the same helpers.
"""

from __future__ import annotations

import argparse
import logging
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
URL_LINE = re.compile(r"browser viewer: open (http://\S+)")
# SwiftShader (CPU) WebGL: headless Chromium on a machine without a GPU refuses WebGL without the opt-in flag.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars",
                  "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--mute-audio")  # fmt: skip


def chromium_missing() -> str | None:
    """Why headless Chromium cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install 'interact-runtime[dev]'"
    for tool, package in (("chromium", "chromium"), ("chromedriver", "chromium-driver")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: sudo apt-get install {package} (or scripts/bootstrap.sh dev)"
    return None


def chromium(width: int = 1280, height: int = 760):
    """A headless Chromium WebDriver that keeps the page's console log (``driver.get_log("browser")``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in (*CHROMIUM_FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}  # the page, not the window
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    return driver


class ViewerProcess:
    """``python -m runtime.viewer ARGS`` in a subprocess; its log lines are collected, ``url`` waits for the URL."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "runtime.viewer", *args], cwd=REPO, text=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        self.lines: list[str] = []
        self._urls: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, name="viewer-log", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            if m := URL_LINE.search(line):
                self._urls.put(m[1])

    def url(self, timeout: float = 60.0) -> str:
        try:
            return self._urls.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise RuntimeError("the viewer logged no URL:\n" + "\n".join(self.lines[-20:])) from None

    def wait(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def wait_for(driver, script: str, timeout: float, what: str):
    """Poll a JavaScript expression until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := driver.execute_script(f"return {script}"):
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what}: `{script}` still false after {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m runtime.viewer.screenshot", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "viewer.png", help="PNG to write")
    ap.add_argument("--at", type=float, default=8.0, help="s into the conversation (default 8: both have spoken)")
    ap.add_argument("--size", default="1280x760", help="browser window WIDTHxHEIGHT")
    ap.add_argument("rest", nargs="*", help="more mic_demo arguments (after --)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if why := chromium_missing():
        log.error("%s", why)
        return 1
    width, height = (int(v) for v in args.size.lower().split("x"))
    viewer = ViewerProcess(["--browser", "127.0.0.1:0", "--seconds", f"{args.at + 1.5:g}", "--no-record", *args.rest])
    driver = None
    try:
        url = viewer.url()
        driver = chromium(width, height)
        driver.get(url)
        wait_for(driver, f"window.viewer && window.viewer.time >= {args.at}", args.at + 30, "the page")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(driver.get_screenshot_as_png())
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        for e in errors:
            log.warning("console: %s", e["message"])
        log.info("%s: %d KB, %s", args.out, args.out.stat().st_size // 1024, args.size)
        viewer.wait(30)
    finally:
        if driver is not None:
            driver.quit()
        viewer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
