"""JupyterLab's server configuration, written at container start into a private file.

Why: the user's password must open the lab, but must never be the lab's token (jupyter_server
embeds its token in every lab page it serves and hints at it on the login page), nor appear on a
command line, in the environment or in a Helm value. This script reads the password from the
per-job Secret's file, hashes it with jupyter_server's own `passwd` (argon2, or salted sha1
where argon2-cffi is missing), and writes the hash, an empty token and the dashboard's proxy
entry into a JSON config file of mode 0600 that `jupyter lab --config=<file>` reads.

The dashboard entry: jupyter-server-proxy serves `<base>dask/` (an address without ':', which
jupyter_server's login redirect keeps intact) from files/dashboard-forwarder.py, a loopback
forwarder to the session's scheduler dashboard that it starts on the first request. The
`/proxy/<host>:<port>/` form is closed (an empty host allowlist): it reaches no other host.

Usage (files/jupyterlab-start.sh): python -c <this> <config-file> <forwarder-file>
Environment (set by templates/jupyterlab.yaml):
    DPS_JUPYTER_PASSWORD_FILE  the password file mounted from the per-job Secret
    DPS_DASHBOARD_TARGET       <scheduler-host>:<dashboard-port>
    DPS_DASHBOARD_PROXY_NAME   the proxy entry's name, the dashboard's path under the lab's base URL
"""

import json
import os
import sys


def hashed(password: str) -> str:
    """jupyter_server's hash of the password: argon2 when the image has it, else salted sha1."""
    from jupyter_server.auth import passwd

    try:
        return str(passwd(password, algorithm="argon2"))
    except ImportError:
        return str(passwd(password, algorithm="sha1"))


def config(password: str, forwarder: str) -> dict[str, object]:
    """The server's settings: password login only, and the dashboard's proxy entry."""
    name = os.environ["DPS_DASHBOARD_PROXY_NAME"]
    return {
        "IdentityProvider": {"token": ""},
        "PasswordIdentityProvider": {
            "hashed_password": hashed(password),
            "password_required": True,
            "allow_password_change": False,
        },
        "ServerProxy": {
            "host_allowlist": [],
            "servers": {
                name: {
                    "command": [sys.executable, forwarder, "{port}", os.environ["DPS_DASHBOARD_TARGET"]],
                    "timeout": 30,
                    "launcher_entry": {"title": "Dask dashboard", "path_info": f"{name}/status"},
                }
            },
        },
    }


def main(path: str, forwarder: str) -> None:
    """Write the file with mode 0600 from its creation: the hash is never readable by others."""
    with open(os.environ["DPS_JUPYTER_PASSWORD_FILE"], encoding="utf-8") as secret:
        password = secret.read()  # verbatim, as jupyter_server read its token file before
    if not password:
        sys.exit("the JupyterLab password file is empty: refusing to start a lab without a login")
    text = json.dumps(config(password, forwarder), indent=1)
    if os.path.exists(path):
        os.unlink(path)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: jupyterlab-config.py <config-file> <forwarder-file>")
    main(sys.argv[1], sys.argv[2])
