"""Runs the end-to-end guests (scripts/test-e2e calls this): python3 run.py MTKIT [GUEST...].

GUEST is media, appliance, powercut-ext4 or powercut-xfs (default: all, E2E_JOBS at once). Every guest keeps its
serial and QEMU logs under $E2E_LOGS; a failure names its step, its guest and the log, and
the run exits 1 after the other guests ran."""

import os
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from guest import GuestError, assets, initramfs  # noqa: E402


def one(name, run, logs):
    """Runs one guest; returns its failure text, or None."""
    work = logs / name
    work.mkdir(exist_ok=True)
    results = []
    t0 = time.monotonic()
    print(f"e2e: {name} ...", file=sys.stderr, flush=True)
    failure = None
    try:
        run(work, results)
    except (GuestError, AssertionError) as e:
        failure = f"{name}: {e}"
    except Exception:  # a harness bug still names its guest
        failure = f"{name}: {traceback.format_exc()}"
    took = time.monotonic() - t0
    lines = [f"  {name}: {r}" for r in results]
    lines.append(f"e2e: {name} {'FAILED' if failure else 'ok'} in {took:.0f} s (logs: {work})")
    print("\n".join(lines), flush=True)
    if not failure:  # disk images are large and made again each run; the logs stay
        for img in work.glob("*.img"):
            img.unlink()
    return failure


def main():
    mtkit, wanted = sys.argv[1], sys.argv[2:]
    a = assets()
    logs = Path(os.environ.get("E2E_LOGS") or Path(a["E2E_CACHE"]) / "logs" / time.strftime("%Y%m%d-%H%M%S"))
    logs.mkdir(parents=True, exist_ok=True)
    initrd = initramfs(a, mtkit)
    from appliance import run_appliance
    from powercut import run_powercut
    from media_boot import run_media
    guests = {
        "media": lambda w, r: run_media(a, w, r, mtkit),
        "appliance": lambda w, r: run_appliance(a, w, initrd, r),
        "powercut-ext4": lambda w, r: run_powercut(a, w, initrd, r, "ext4"),
        "powercut-xfs": lambda w, r: run_powercut(a, w, initrd, r, "xfs"),
    }
    for name in wanted:
        if name not in guests:
            sys.exit(f"e2e: no guest {name!r}; guests: {', '.join(guests)}")
    # Each guest is one single-threaded TCG QEMU: E2E_JOBS of them (default 2, the CI
    # machine's cores) run at once.
    jobs = int(os.environ.get("E2E_JOBS") or 2)
    with ThreadPoolExecutor(jobs) as pool:
        failed = [f for f in pool.map(lambda n: one(n, guests[n], logs), wanted or list(guests)) if f]
    for f in failed:
        print(f"e2e: FAILED {f}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
