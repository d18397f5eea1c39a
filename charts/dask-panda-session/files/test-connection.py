"""`helm test <release>`: a dask Client connects to the scheduler, waits for the workers, checks
that the versions match and runs a tiny computation on them.

Environment (set by templates/tests/test-connection.yaml):
    DASK_SCHEDULER_ADDRESS  the session's scheduler (tcp:// or tls://; TLS settings in DASK_* env)
    WORKERS_WANTED          how many workers must answer
    TEST_TIMEOUT_SECONDS    the Client's timeout for each step
"""

import os
import sys

from distributed import Client


def main() -> None:
    """Fail the test pod (non-zero exit) unless the workers answer and compute 1+..+100."""
    address = os.environ["DASK_SCHEDULER_ADDRESS"]
    want = int(os.environ["WORKERS_WANTED"])
    timeout = float(os.environ["TEST_TIMEOUT_SECONDS"])
    with Client(address, timeout=timeout) as client:
        client.wait_for_workers(want, timeout=timeout)
        client.get_versions(check=True)
        total = client.submit(sum, range(101)).result(timeout=timeout)
        if total != 5050:
            sys.exit(f"wrong result {total}")
        print(f"{len(client.scheduler_info()['workers'])} workers answered; 1+..+100 = {total}")


main()
