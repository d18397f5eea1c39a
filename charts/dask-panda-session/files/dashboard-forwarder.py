"""The scheduler's dashboard on a loopback port of the JupyterLab pod, for jupyter-server-proxy.

Why: jupyter-server-proxy serves a named entry (JupyterLab's `<base>dask/`) only from a local
port; its other form, `/proxy/<host>:<port>/`, holds a ':' that jupyter_server's login redirect
turns into '://', so a logged-out user who opens the dashboard lands on a 404 after the login.
jupyter-server-proxy starts this forwarder on the first request to `<base>dask/` (after the lab's
login) and proxies HTTP and the dashboard's websockets to it; the forwarder copies bytes to the
session's scheduler dashboard and back.

It listens on 127.0.0.1 only: nothing outside the pod reaches it, and inside the pod it gives no
more than the pod already has (the NetworkPolicy lets JupyterLab reach the scheduler). It ends
when JupyterLab (its parent) ends.

Usage (written by files/jupyterlab-config.py into jupyter-server-proxy's entry):
    python dashboard-forwarder.py <listen-port> <scheduler-host>:<dashboard-port>
"""

import asyncio
import os
import sys

# How often the forwarder checks that JupyterLab, its parent, is still there.
PARENT_CHECK_SECONDS = 5.0
CHUNK = 65536


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction until its end, then end the other side's writing half only (the
    answer may still be on its way back)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


async def main(listen_port: int, host: str, port: int) -> None:
    """Serve until the parent process is gone."""

    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        except OSError as err:
            print(f"dashboard {host}:{port} unreachable: {err}", file=sys.stderr, flush=True)
            client_writer.close()
            return
        try:
            await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))
        finally:
            upstream_writer.close()
            client_writer.close()

    parent = os.getppid()
    server = await asyncio.start_server(relay, "127.0.0.1", listen_port)
    print(f"forwarding 127.0.0.1:{listen_port} to the dashboard {host}:{port}", flush=True)
    async with server:
        while os.getppid() == parent:
            await asyncio.sleep(PARENT_CHECK_SECONDS)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: dashboard-forwarder.py <listen-port> <scheduler-host>:<dashboard-port>")
    target_host, _, target_port = sys.argv[2].rpartition(":")
    asyncio.run(main(int(sys.argv[1]), target_host, int(target_port)))
