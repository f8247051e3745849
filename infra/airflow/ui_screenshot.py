"""Log in to the Airflow UI with headless Chromium, as a person would, and save a screenshot of the
DAG list (each DAG with its last runs).

    .venv/airflow/bin/python infra/airflow/ui_screenshot.py --url http://127.0.0.1:8080 \\
        --passwords-file <AIRFLOW_HOME>/passwords.json --out bench-results/airflow-ui.png

Drives Chromium over the DevTools protocol (``websockets``, which the Airflow environment has): opens
the UI, which sends it to the login form, types the user and password into the form, submits it,
then opens the DAG list and waits until every DAG asked for (``--expect``) is on the page. Chromium is
Debian's ``chromium`` package; when it is missing and this runs as root, it is installed with
apt-get (and says so). Exit 1, with the page's text, when the login or the DAG list does not show.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from websockets.asyncio.client import connect

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("ui_screenshot: no Chromium found: installing Debian's chromium package with apt-get", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
            subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env, check=True)
        if found := shutil.which("chromium"):
            return found
    raise SystemExit("ui_screenshot: no Chromium; install Debian's chromium package")


class Page:
    """One browser tab over the DevTools protocol: send a command, wait for its answer."""

    def __init__(self, ws) -> None:
        self.ws, self.next_id = ws, 0

    async def send(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def js(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.5)
        text = await self.js("document.body ? document.body.innerText.slice(0, 1500) : ''")
        raise SystemExit(f"ui_screenshot: timed out waiting for {what}; the page shows:\n{text}")


async def login_and_capture(ws_url: str, url: str, user: str, password: str, expect: list[str], out: Path) -> None:
    async with connect(ws_url, max_size=64 * 2**20) as ws:
        page = Page(ws)
        await page.send("Page.enable")
        await page.send("Emulation.setDeviceMetricsOverride", width=1500, height=950, deviceScaleFactor=1, mobile=False)
        await page.send("Page.navigate", url=f"{url}/")
        # Not logged in: the UI sends the browser to the simple auth manager's login form.
        await page.wait_for("!!document.querySelector('input[name=username]')", "the login form")
        for name, value in (("username", user), ("password", password)):
            await page.js(f"document.querySelector('input[name={name}]').focus()")
            await page.send("Input.insertText", text=value)
        await page.js("document.querySelector('button[type=submit]').click()")
        await page.wait_for("!document.querySelector('input[name=password]')", "the login to go through")
        await page.send("Page.navigate", url=f"{url}/dags")
        checks = " && ".join(f"document.body.innerText.includes({json.dumps(d)})" for d in expect)
        await page.wait_for(f"!!document.body && {checks}", f"the DAG list with {', '.join(expect)}")
        await asyncio.sleep(3)  # the run bars and states load after the names
        shot = await page.send("Page.captureScreenshot", format="png")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot["data"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the Airflow UI, e.g. http://127.0.0.1:8080")
    parser.add_argument("--passwords-file", required=True, help="the simple auth manager's JSON passwords file")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--expect", action="append", help="a DAG id the list must show (repeatable)")
    parser.add_argument("--out", default="bench-results/airflow-ui.png")
    args = parser.parse_args()
    password = json.loads(Path(args.passwords_file).read_text())[args.user]
    expect = args.expect or ["lakecart_pipeline", "lakecart_training"]
    with tempfile.TemporaryDirectory(prefix="lakecart-chromium-") as profile:
        browser = subprocess.Popen(
            [
                chromium(),
                "--headless=new",
                "--no-sandbox",  # root in a container has no user namespace sandbox
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            active = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 60
            while not (active.is_file() and active.read_text().strip()):
                if browser.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("ui_screenshot: Chromium did not start")
                time.sleep(0.2)
            port = active.read_text().split()[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                targets = [t for t in json.loads(response.read()) if t.get("type") == "page"]
            asyncio.run(
                login_and_capture(
                    targets[0]["webSocketDebuggerUrl"], args.url, args.user, password, expect, Path(args.out)
                )
            )
        finally:
            browser.terminate()
            try:
                browser.wait(timeout=10)
            except subprocess.TimeoutExpired:
                browser.kill()
    print(f"ui_screenshot: logged in as {args.user}; saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
