"""The report in a real headless Chromium (Debian's ``chromium``, driven from the command
line: ``--dump-dom`` and ``--screenshot``), with every outside request sent to a recording
proxy on loopback that answers nothing: the page loads with no console message, asks the
network for nothing, runs nothing from the data, and shows the expected elements. A
screenshot is written as a test artefact (``tests/artefacts/report.png``, or under
``$INFERSIGHT_ARTEFACTS``)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from test_report import EVIL, EVIL_CATEGORY, Page, files  # noqa: F401  (files is a fixture)

from infersight.cli import main

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} is not installed (Debian: apt-get install -y chromium); the browser test needs it",
)
# The browser's own background services (component updates, accounts, network time) may still
# knock on the proxy; anything else would have come from the page.
_BROWSER_OWN = re.compile(
    rb"^(?:CONNECT |GET |POST )(?:https?://)?[\w.-]*(?:google\.com|googleapis\.com|gvt1\.com)[:/]"
)


class Recorder:
    """A proxy that records the first line of every request and closes the connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    data = conn.recv(4096)
                except OSError:
                    continue
                if data:  # a connection opened and closed with nothing sent (a preconnect) asked for nothing
                    self.requests.append(data.split(b"\r\n", 1)[0])

    def close(self) -> None:
        self.sock.close()


def _chromium(page: Path, proxy: Recorder, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--proxy-server=http://127.0.0.1:{proxy.port}",
            "--proxy-bypass-list=<-loopback>",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
            *extra,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def opened(files, tmp_path_factory):  # noqa: F811  (the fixture imported above)
    tmp = tmp_path_factory.mktemp("browser")
    out = tmp / "report.html"
    assert main(["report", files["reference"], files["data"], "-o", str(out), "--chunk-size", "1000"]) == 0
    proxy = Recorder()
    try:
        dom = _chromium(out, proxy, tmp / "profile", "--dump-dom")
        artefacts = Path(os.environ.get("INFERSIGHT_ARTEFACTS", Path(__file__).parent / "artefacts"))
        artefacts.mkdir(parents=True, exist_ok=True)
        shot = artefacts / "report.png"
        taken = _chromium(out, proxy, tmp / "profile", f"--screenshot={shot}", "--window-size=1200,3000")
    finally:
        proxy.close()
    return {"dom": dom, "shot": shot, "taken": taken, "requests": proxy.requests}


def test_the_page_loads_with_no_console_message_and_no_network(opened):
    dom = opened["dom"]
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [ln for ln in dom.stderr.splitlines() if ":CONSOLE" in ln]
    assert console == []
    from_page = [r for r in opened["requests"] if not _BROWSER_OWN.match(r)]
    assert from_page == []


def test_the_rendered_dom_has_the_expected_elements_and_ran_nothing_from_the_data(opened):
    page = Page(opened["dom"].stdout)
    assert page.find("section", "summary") and page.find("table", "quality")
    assert len(page.find("table", "drift-table")) == 3  # the latest window and two folded earlier ones
    cards = {e["attrs"]["data-feature"] for e in page.find("section", "feature")}
    assert cards == {"age", "amount", "plan", EVIL, "gone"}
    assert len(page.find("svg", "plot")) == 2 * 4 + 1  # histogram and ECDF per number, bars for plan
    # the feature named like an <img> tag is text in the live DOM, not an element
    assert not page.find("img")
    assert any(e["text"] == EVIL for e in page.find("a"))
    assert EVIL_CATEGORY not in opened["dom"].stdout


def test_a_screenshot_is_written(opened):
    assert opened["taken"].returncode == 0, opened["taken"].stderr[-2000:]
    data = opened["shot"].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
