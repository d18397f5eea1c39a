"""Start gate of an interactive pilot: wait for JupyterLab's external address, then put it into the
pilot's job definition as session_ip.

Why: a LoadBalancer without a reserved IP gets its address from the cloud after the install, so
the definition the orchestrator released carries the in-cluster URL; the pilot reports session_ip
to the PanDA job page (jobMetrics) only from what its definition holds when it starts. This init
container runs after the scheduler and job-definition gates, with a token of the release's own
ServiceAccount, whose Role allows nothing but `get` on this release's JupyterLab Service.

Order: the job-definition gate has checked the file against job.definitionSha256; this gate reads
it once more, refuses unless those bytes are still the released ones, and only then rewrites it
with session_ip changed and nothing else (scheduler_ip stays as released; a batch session never
runs this gate). The new file is written next to the old one (a fresh name, created exclusively,
so no symbolic link is followed) and renamed over it, so the pilot sees either definition whole.

When no address can be had (the cloud is slow beyond timeouts.gateSeconds, or the API server
stays unreachable, e.g. a NetworkPolicy plug-in that blocks the control plane, for
ADDRESS_GATE_UNREACHABLE_SECONDS), the gate says why and lets the pilot start on the released
definition (the in-cluster URL): the session itself does not depend on the job page's link, and
Harvester reports the external URL anyway. What waiting cannot change (no right to read the
Service, missing credentials, a definition that is not the released one) fails the pod.

The URL is built as the orchestrator builds jupyter_url from the same Service
(orchestrator/session/services.py): the first ingress entry with a hostname or ip; the port named
https or http (else the first); https for a port named https or port 443; no port in the URL when
it is the scheme's default. A chart test keeps the two equal.

Environment (set by templates/_helpers-address-gate.tpl; the last three have defaults, and
ADDRESS_GATE_API exists for running this script outside a pod):
    PILOT_RUN_DIR           the pilot's private directory, holding pandaJobData.out (writable here)
    JOB_DEFINITION_SHA256   the released definition's sha256
    JUPYTER_SERVICE         the release's JupyterLab Service
    GATE_TIMEOUT_SECONDS    how long to wait for the address (timeouts.gateSeconds)
    ADDRESS_GATE_CREDENTIALS  directory holding token, ca.crt and namespace (the chart's projected
                              volume; default: a pod's /var/run/secrets/kubernetes.io/serviceaccount)
    ADDRESS_GATE_API        the API server's base URL (https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)
    ADDRESS_GATE_POLL_SECONDS seconds between two reads of the Service (5)
    ADDRESS_GATE_UNREACHABLE_SECONDS  how long the API server may not answer before the gate gives up (60)
"""

import hashlib
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

DEFINITION = "pandaJobData.out"
CREDENTIALS = "/var/run/secrets/kubernetes.io/serviceaccount"


class Refused(Exception):
    """A condition that waiting cannot change (no right, a changed definition): fail at once."""


def external_url(service):
    """http(s)://<address>[:port]/ of a LoadBalancer Service, None before it has an address."""
    spec = service.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return None
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress")
    if not isinstance(ingress, list):
        return None
    address = None
    for entry in ingress:
        if isinstance(entry, dict):
            value = entry.get("hostname") or entry.get("ip")
            if isinstance(value, str) and value:
                address = value
                break
    if address is None:
        return None
    port, scheme = 80, "http"
    ports = spec.get("ports")
    if isinstance(ports, list):
        mappings = [p for p in ports if isinstance(p, dict)]
        chosen = [p for p in mappings if p.get("name") in ("https", "http")] or mappings
        if chosen and isinstance(chosen[0].get("port"), int):
            port = chosen[0]["port"]
            scheme = "https" if chosen[0].get("name") == "https" or port == 443 else "http"
    host = "[%s]" % address if ":" in address else address
    default = (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
    return "%s://%s/" % (scheme, host) if default else "%s://%s:%d/" % (scheme, host, port)


def api_base():
    """The API server's base URL: ADDRESS_GATE_API, else the in-cluster service's address."""
    base = os.environ.get("ADDRESS_GATE_API")
    if base:
        return base.rstrip("/")
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    if not host:
        raise Refused("KUBERNETES_SERVICE_HOST is not set: this gate runs in a pod, or with ADDRESS_GATE_API")
    host = "[%s]" % host if ":" in host else host
    return "https://%s:%s" % (host, os.environ.get("KUBERNETES_SERVICE_PORT", "443"))


def read_credential(directory, name):
    path = os.path.join(directory, name)
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as err:
        raise Refused("cannot read %s: %s" % (path, err.strerror)) from None


def get_service(base, credentials, context, name):
    """The Service as JSON; None while it does not exist yet. The token is read on every call
    (the kubelet renews a projected token)."""
    namespace = read_credential(credentials, "namespace")
    url = "%s/api/v1/namespaces/%s/services/%s" % (
        base,
        urllib.parse.quote(namespace, safe=""),
        urllib.parse.quote(name, safe=""),
    )
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    request.add_header("Authorization", "Bearer " + read_credential(credentials, "token"))
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        if err.code in (401, 403):
            raise Refused(
                "the API server refused to show Service %s/%s (HTTP %d): this pod's ServiceAccount may read "
                "its own release's JupyterLab Service only" % (namespace, name, err.code)
            ) from None
        raise


def wait_for_url(name, timeout, poll, unreachable_limit):
    """Poll the Service until it has an external address: (its URL, None), or (None, why not)
    once `timeout` has passed or the API server has not answered for `unreachable_limit`."""
    credentials = os.environ.get("ADDRESS_GATE_CREDENTIALS") or CREDENTIALS
    cafile = os.path.join(credentials, "ca.crt")
    try:
        context = ssl.create_default_context(cafile=cafile)
    except OSError as err:
        raise Refused("cannot read the cluster's CA %s: %s" % (cafile, err.strerror or err)) from None
    base = api_base()
    started = time.monotonic()
    deadline = started + timeout
    answered = started  # when the API server last answered
    last = "the Service has no status.loadBalancer.ingress yet"
    while True:
        try:
            service = get_service(base, credentials, context, name)
        except (OSError, ValueError) as err:  # URLError, HTTPError 5xx, a half-read answer
            service, last = None, "the API server at %s did not answer: %s" % (base, err)
            if time.monotonic() - answered >= unreachable_limit:
                return None, (
                    "gave up after %d s: %s (with NetworkPolicies on, the pilot needs "
                    "jupyterlab.addressGate.apiServerEgress)" % (time.monotonic() - started, last)
                )
        else:
            answered = time.monotonic()
            if service is None:
                last = "the Service does not exist (yet)"
            else:
                url = external_url(service)
                if url is not None:
                    return url, None
                last = "the Service has no status.loadBalancer.ingress yet"
        if time.monotonic() + poll > deadline:
            return None, "gave up after %d s waiting for the external address of JupyterLab's Service %s: %s" % (
                timeout,
                name,
                last,
            )
        time.sleep(poll)


def rewrite_definition(run_dir, want_sha256, url):
    """Set session_ip in the released definition; refuse a file that is not the released one."""
    path = os.path.join(run_dir, DEFINITION)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != want_sha256:
        raise Refused(
            "refusing to rewrite %s: it has sha256 %s, the release expects %s (job.definitionSha256)"
            % (path, digest, want_sha256)
        )
    document = json.loads(data.decode("utf-8"))
    if not isinstance(document, dict) or len(document) != 1:
        raise Refused("refusing to rewrite %s: not one {PandaID: definition} object" % path)
    (definition,) = document.values()
    if not isinstance(definition, dict) or "session_ip" not in definition:
        raise Refused("refusing to rewrite %s: it has no session_ip (not an interactive session)" % path)
    definition["session_ip"] = url
    text = json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    temp = os.path.join(run_dir, ".%s.%d" % (DEFINITION, os.getpid()))
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def main():
    """Wait for the address and rewrite the definition; without an address, leave the released
    one and say why (exit 0); exit non-zero with one message on what waiting cannot change."""
    try:
        url, why_not = wait_for_url(
            os.environ["JUPYTER_SERVICE"],
            float(os.environ["GATE_TIMEOUT_SECONDS"]),
            float(os.environ.get("ADDRESS_GATE_POLL_SECONDS") or 5),
            float(os.environ.get("ADDRESS_GATE_UNREACHABLE_SECONDS") or 60),
        )
        if url is None:
            print(
                "address gate: %s; the pilot starts with the released session_ip (the in-cluster URL)" % why_not,
                file=sys.stderr,
                flush=True,
            )
            return
        rewrite_definition(os.environ["PILOT_RUN_DIR"], os.environ["JOB_DEFINITION_SHA256"], url)
    except (Refused, OSError, ValueError) as err:
        sys.exit("address gate: %s" % err)
    print("address gate: session_ip is %s" % url, flush=True)


if __name__ == "__main__":
    main()
