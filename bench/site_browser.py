"""The first visit to the public site in a real browser, on large track records (a benchmark).

    python bench/site_browser.py --trades 10000 [--trades 100000 --trades 1000000]
                                 [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

For each N: a brand-new PostgreSQL database filled as bench/site_load.py fills it (COPY, then the
summary tables), a new `signalproof site` process on it, and headless Chromium (the system's,
/usr/bin/chromium) opening the Overview. It reports:

    first visit   from `page.goto` to the "Total P/L" card showing the record's total (s): what
                  the first visitor of a freshly started site waits
    next visit    the same in a new browser page (the site's caches warm) (s)
    site RSS      the site process's peak resident memory after both visits (MiB, VmHWM)
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import site_load  # noqa: E402  (the same database fill as the data-layer benchmark)

CHROMIUM = Path("/usr/bin/chromium")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the site exited before it answered")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the site did not come up")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def visit(browser: object, url: str) -> float:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    started = time.perf_counter()
    page.goto(url)
    card = page.locator('[data-testid="stMetric"]', has_text="Total P/L")
    card.locator('[data-testid="stMetricValue"]').filter(has_text="$").wait_for(timeout=120_000)
    elapsed = time.perf_counter() - started
    page.close()
    return elapsed


def measure(url: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "SIGNALPROOF_DATABASE_URL": url}
    command = [sys.executable, "-m", "signalproof", "site", "--server.port", str(port), "--server.headless", "true"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    site = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(site, process)
        with sync_playwright() as playwright:
            args = ["--no-sandbox"] if os.geteuid() == 0 else []
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
            first = visit(browser, site)
            again = visit(browser, site)
            browser.close()
        return {"first_s": first, "next_s": again, "rss_mib": peak_rss_mib(process.pid)}
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trades", type=int, action="append", help="closed trades (repeatable; default 10000)")
    parser.add_argument("--postgres-url", default=os.environ.get("SIGNALPROOF_TEST_POSTGRES_URL",
                                                                 site_load.DEFAULT_ADMIN_URL))
    args = parser.parse_args()
    print(f"{'trades':>10}  {'first visit s':>13}  {'next visit s':>12}  {'site RSS MiB':>12}", flush=True)
    for count in args.trades or [10_000]:
        with site_load.bench_database(args.postgres_url) as url:
            site_load.fill(url, count)
            site_load.summarize(url)
            result = measure(url)
        print(f"{count:>10,}  {result['first_s']:>13.2f}  {result['next_s']:>12.2f}  {result['rss_mib']:>12.0f}",
              flush=True)
    print("\nfirst visit = a new site process's first page, from goto to the Total P/L card; next visit = a new "
          "page on the same process; RSS = the site process's peak.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
