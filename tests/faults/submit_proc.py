"""One submit in a process of its own, for the tests that kill the orchestrator process or race
several processes: ``python -m tests.faults.submit_proc SPEC.json``.

SPEC holds the service settings, the job, the values files and optionally ``go_file``: the
process imports everything, then waits for that file to exist before it submits, so several
processes start their submit at the same moment. Prints one JSON line: the result or the error.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from orchestrator.service import SessionService, Settings, is_temporary


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    svc = SessionService(Settings(**spec["settings"]))
    go_file = spec.get("go_file")
    if go_file:
        print(json.dumps({"ready": True}), flush=True)
        deadline = time.monotonic() + 120
        while not Path(go_file).exists():
            if time.monotonic() > deadline:
                print(json.dumps({"ok": False, "error": "NoGo", "message": "the go file never came"}))
                return 3
            time.sleep(0.005)
    try:
        result = svc.submit(spec["job"], values_files=spec.get("values_files", []))
    except Exception as err:
        print(
            json.dumps(
                {
                    "ok": False,
                    "error": type(err).__name__,
                    "temporary": is_temporary(err),
                    "message": str(err)[:500],
                }
            ),
            flush=True,
        )
        return 1
    print(json.dumps({"ok": True, "release": result.release, "created": result.created}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
