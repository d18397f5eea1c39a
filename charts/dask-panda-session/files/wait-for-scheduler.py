"""Start gate: block until the session's scheduler accepts TCP connections.

Run as an init container of the workers, the pilot and JupyterLab (`python -c`), so that each
starts after the scheduler, in the order of the original system, without racing it. The address
is the scheduler Service's DNS name, never a pod IP.

Environment (set by templates/_helpers.tpl, dps.schedulerGate):
    GATE_HOST             the scheduler's Service host name
    GATE_PORT             its comm port
    GATE_TIMEOUT_SECONDS  how long to wait before failing the pod (timeouts.gateSeconds)
"""

import os
import socket
import sys
import time


def main() -> None:
    """Connect once a second until the scheduler answers or the deadline passes."""
    host, port = os.environ["GATE_HOST"], int(os.environ["GATE_PORT"])
    deadline = time.monotonic() + float(os.environ["GATE_TIMEOUT_SECONDS"])
    while True:
        try:
            socket.create_connection((host, port), timeout=3).close()
            print(f"scheduler {host}:{port} accepts connections", flush=True)
            return
        except OSError as err:
            if time.monotonic() > deadline:
                sys.exit(f"gave up waiting for the scheduler {host}:{port}: {err}")
            time.sleep(1)


main()
