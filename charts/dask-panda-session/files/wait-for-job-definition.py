"""Start gate of the pilot: wait for its job definition and check it before the pilot may read it.

The pre-install hook places pandaJobData.out in the pilot's private directory; this init container
waits for it and compares its sha256 with job.definitionSha256, so the pilot never starts on a
definition other than the one the orchestrator released. The file is opened without following
a symbolic link.

Environment (set by templates/_helpers.tpl, dps.jobDefinitionGate):
    PILOT_RUN_DIR          the pilot's private directory (mounted read-only here)
    JOB_DEFINITION_SHA256  the expected sha256
    GATE_TIMEOUT_SECONDS   how long to wait before failing the pod (timeouts.gateSeconds)
"""

import hashlib
import os
import sys
import time


def main() -> None:
    """Wait for the file, then refuse (non-zero exit) unless its checksum is the released one."""
    path = os.path.join(os.environ["PILOT_RUN_DIR"], "pandaJobData.out")
    want = os.environ["JOB_DEFINITION_SHA256"]
    deadline = time.monotonic() + float(os.environ["GATE_TIMEOUT_SECONDS"])
    while not os.path.isfile(path):
        if time.monotonic() > deadline:
            sys.exit(f"gave up waiting for the job definition {path}")
        time.sleep(1)
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    if digest.hexdigest() != want:
        sys.exit(
            f"refusing to start the pilot: {path} has sha256 {digest.hexdigest()}, "
            f"the release expects {want} (job.definitionSha256)"
        )
    print(f"job definition {path} is in place, sha256 {want}", flush=True)


main()
