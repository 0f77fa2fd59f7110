"""Run one page's code blocks in order, as a reader would: ``python run_page.py blocks.json``.

Python blocks share one namespace (a later block may use ``result`` from an earlier one); shell blocks run
with ``bash -eu -o pipefail`` in the same working directory, so files made by one block are there for the
next. The first failing block stops the page with its location (docs/<page>:<line>) on stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import traceback


def main(path: str) -> int:
    with open(path, encoding="utf-8") as handle:
        blocks = json.load(handle)
    namespace: dict[str, object] = {"__name__": "__main__"}
    for block in blocks:
        where = block["where"]
        print(f"=== {where} ({block['lang']})", flush=True)
        started = time.perf_counter()
        if block["lang"] == "python":
            try:
                exec(compile(block["code"], where, "exec"), namespace)
            except BaseException:
                traceback.print_exc()
                print(f"FAILED: the Python block at {where}", file=sys.stderr, flush=True)
                return 1
        else:
            done = subprocess.run(["bash", "-eu", "-o", "pipefail", "-c", block["code"]], check=False)
            if done.returncode != 0:
                print(f"FAILED: the shell block at {where} exited {done.returncode}", file=sys.stderr, flush=True)
                return 1
        sys.stdout.flush()
        print(f"=== {where}: {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
