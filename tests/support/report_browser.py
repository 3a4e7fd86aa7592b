"""Open a Snakemake HTML report in headless Chromium (Chrome DevTools Protocol over a websocket,
with aiohttp), click through its menu like a user, and read and screenshot what is shown.

Used by tests/test_report_workflow.py (skipped when no chromium binary is installed) and runnable by
hand:  python tests/support/report_browser.py report.html Summary results/html/report.html shot.png
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


class Page:
    """One browser tab driven over CDP."""

    def __init__(self, ws):
        self.ws, self.ids = ws, itertools.count(1)

    async def send(self, method: str, **params):
        message_id = next(self.ids)
        await self.ws.send_json({"id": message_id, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json(timeout=60)
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def js(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.2)
        raise TimeoutError(f"page never satisfied: {expression}")

    async def click_text(self, text: str, timeout: float = 30.0):
        """Click the innermost link or button whose visible text is exactly `text`."""
        expression = f"""(() => {{
            const hit = [...document.querySelectorAll('a, button, li, span')]
                .filter(el => el.textContent.trim() === {json.dumps(text)});
            if (!hit.length) return false;
            (hit[hit.length - 1].closest('a, button') || hit[hit.length - 1]).click();
            return true;
        }})()"""
        await self.wait_for(expression, timeout)

    async def view_result(self, path: str, timeout: float = 30.0):
        """Press the eye button of the result row `path` (as the category's table lists it)."""
        expression = f"""(() => {{
            const row = [...document.querySelectorAll('tr')]
                .find(tr => tr.cells.length && tr.cells[0].textContent.trim() === {json.dumps(path)});
            const eye = row && row.querySelector('a[iconname="eye"]');
            if (!eye) return false;
            eye.click();
            return true;
        }})()"""
        await self.wait_for(expression, timeout)

    async def frame_texts(self) -> list[str]:
        """The text of every frame's document (the report shows an HTML result in an iframe)."""
        tree = await self.send("Page.getFrameTree")
        frames, pending = [], [tree["frameTree"]]
        while pending:
            node = pending.pop()
            frames.append(node["frame"]["id"])
            pending.extend(node.get("childFrames", []))
        texts = []
        for frame_id in frames:
            world = await self.send("Page.createIsolatedWorld", frameId=frame_id)
            result = await self.send("Runtime.evaluate", expression="document.body ? document.body.innerText : ''",
                                     contextId=world["executionContextId"], returnByValue=True)
            texts.append(result.get("result", {}).get("value") or "")
        return texts

    async def screenshot(self, path: str | Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png")
        Path(path).write_bytes(base64.b64decode(shot["data"]))


async def _open_result(chromium: str, report: Path, category: str, result: str, screenshot: Path) -> list[str]:
    import aiohttp

    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        browser = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port_file = Path(profile, "DevToolsActivePort")
            deadline = time.monotonic() + 60
            while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
                if time.monotonic() > deadline or browser.poll() is not None:
                    raise RuntimeError(f"{chromium} did not start its DevTools endpoint")
                await asyncio.sleep(0.1)
            port = port_file.read_text().split("\n")[0]
            async with aiohttp.ClientSession() as client:
                async with client.get(f"http://127.0.0.1:{port}/json/list") as response:
                    target = next(t for t in await response.json() if t["type"] == "page")
                async with client.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    page = Page(ws)
                    await page.send("Page.enable")
                    await page.send("Page.navigate", url=report.resolve().as_uri())
                    await page.wait_for("!!document.querySelector('nav') && document.body.textContent.includes('Results')")
                    await page.click_text(category)
                    await page.view_result(result)
                    await page.wait_for("!!document.querySelector('iframe')")
                    await asyncio.sleep(1.0)  # let the frame lay out before the screenshot
                    await page.screenshot(screenshot)
                    return await page.frame_texts()
        finally:
            browser.terminate()
            browser.wait(timeout=30)


def open_result(report: str | Path, category: str, result: str, screenshot: str | Path,
                chromium: str | None = None) -> list[str]:
    """Texts of the page's frames after clicking `category`, then the eye button of `result` (its
    path, e.g. results/html/report.html); a PNG of the screen."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no chromium binary on PATH")
    return asyncio.run(_open_result(chromium, Path(report), category, result, Path(screenshot)))


if __name__ == "__main__":
    texts = open_result(*sys.argv[1:5])
    print("\n----- frame -----\n".join(texts))
