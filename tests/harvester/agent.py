"""Harvester's own agent (``pandaharvester``), configured for a test and run in its own venv.

Why a real agent: the unit and cluster tiers drive the plugins with stand-ins for Harvester's
bodies and WorkSpec; only the real agent shows how its JobFetcher, Submitter, Monitor, Propagator
and Sweeper really call them, what reaches PanDA, and how clean-up goes.

The configuration is what a site admin writes, with the test's paths: ``panda_harvester.cfg``
(sqlite, short loops, the stub as PanDA), ``panda_common.cfg`` (logger) and
``panda_queueconfig.json`` taken from the example in docs/harvester.md. The agent runs
``master --foreground`` in a process group of its own and is stopped by that group.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

HARVESTER_VENV = ROOT / ".venv-harvester"
HARVESTER_ID = "dps-harvester-tier"
QUEUE = "GOOGLE_DASK"
DOCS = ROOT / "docs" / "harvester.md"


def site_packages(venv: Path = HARVESTER_VENV) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise FileNotFoundError(f"{venv} has no site-packages: run scripts/bootstrap.sh --harvester")
    return found[0]


def documented_queue_config() -> dict[str, Any]:
    """The panda_queueconfig.json example of docs/harvester.md, as a site admin copies it."""
    text = DOCS.read_text()
    match = re.search(r"### Example: `panda_queueconfig.json`.*?```json\n(.*?)```", text, re.DOTALL)
    if match is None:
        raise AssertionError("docs/harvester.md has no panda_queueconfig.json example")
    config: dict[str, Any] = json.loads(match.group(1))
    return config


def queue_config(site: Mapping[str, Any], workdirs: Path, values_files: list[str]) -> dict[str, Any]:
    """The documented example with this site's paths (the keys a site admin fills in)."""
    config = documented_queue_config()
    queue = config[QUEUE]
    queue["common"] = {**{k: v for k, v in queue["common"].items() if k != "kubeContext"}, **site}
    queue["messenger"]["accessPoint"] = str(workdirs / "${workerID}")
    queue["submitter"]["valuesFiles"] = values_files
    return config


def harvester_cfg(home: Path, api_url: str, cert: Path, key: Path) -> str:
    """panda_harvester.cfg: sqlite, the stub as PanDA, short loops, nothing kept after the rules."""
    sections = {
        "master": f"uname = root\ngname = root\nloggername = harvester\nharvester_id = {HARVESTER_ID}\n"
        "debugger_port = 0\ndynamic_plugin_change = False",
        "db": f"verbose = False\nuseInspect = False\nnConnections = 2\nengine = sqlite\n"
        f"database_filename = {home / 'harvester.db'}\nuseMySQLdb = False\nreconnectTimeout = 30\n"
        "syncMaxWorkerID = False",
        "fifo": f"fifoModule = pandaharvester.harvesterfifo.sqlite_fifo\nfifoClass = SqliteFifo\n"
        f"database_filename = {home / '$(TITLE)_fifo.db'}",
        "communicator": "moduleName = pandaharvester.harvestercommunicator.panda_communicator\n"
        "className = PandaCommunicator\nnConnections = 2",
        "pandacon": f"timeout = 30\nauth_type = x509\nca_cert = False\ncert_file = {cert}\nkey_file = {key}\n"
        f"auth_token = none\nauth_origin = none\n"
        f"pandaURL = {api_url}/server/panda\nserver_api_url = {api_url}/api/v1\n"
        f"pandaURLSSL = {api_url}/server/panda\nserver_api_url_ssl = {api_url}/api/v1\n"
        f"pandaCacheURL_W = {api_url}/server/panda\ncache_api_url_ssl = {api_url}/api/v1\n"
        f"pandaCacheURL_R = {api_url}/cache\nverbose = False\nuseInspect = False\ngetEventsChunkSize = 5120",
        "qconf": f"configFile = {home / 'etc' / 'panda' / 'panda_queueconfig.json'}\nconfigFromCacher = False\n"
        f"queueList =\n {QUEUE}\nresolverModule = pandaharvester.harvestermisc.info_utils\n"
        "resolverClass = PandaQueuesDict\nautoBlacklist = False\nupdateInterval = 600\ncheckInterval = 3",
        "commandmanager": "commands_bulk_size = 20\nsleepTime = 3",
        "jobfetcher": "nThreads = 1\nnQueues = 5\nmaxJobs = 10\nlookupTime = 1\nsleepTime = 3",
        "propagator": "nThreads = 1\nmaxJobs = 100\nnJobsInBulk = 100\nmaxWorkers = 100\nnWorkersInBulk = 100\n"
        "maxDialogs = 50\nminMessageLevel = WARNING\nlockInterval = 30\nupdateInterval = 3\nsleepTime = 3",
        "preparator": "nThreads = 1\nmaxJobsToCheck = 100\nmaxJobsToTrigger = 100\nmaxFilesPerJobToCheck = 0\n"
        "maxFilesPerJobToPrepare = 0\nlockInterval = 30\ncheckInterval = 2\ntriggerInterval = 2\nsleepTime = 3",
        "submitter": "nThreads = 1\nnQueues = 3\nlookupTime = 1\nqueueLockInterval = 30\nlockInterval = 30\n"
        "checkInterval = 2\nminSubmissionInterval = 0\nsleepTime = 3\nmaxNewWorkers = 10\nrespectSleepTime = False",
        "monitor": "nThreads = 1\nmaxWorkers = 100\nlockInterval = 30\ncheckInterval = 3\ncheckTimeout = 3600\n"
        "sleepTime = 3\nfifoEnable = False\nworkerQueueTimeLimit = 172800\neventBasedEnable = False\n"
        "postProcessTimeout = 0",
        "credmanager": "moduleName =\nclassName =\ninCertFile =\noutCertFile =\nvoms =\nsleepTime = 1800",
        "stager": "nThreads = 1\nmaxJobsToCheck = 100\nmaxJobsToTrigger = 100\nmaxJobsToZip = 100\n"
        "maxFilesPerJobToCheck = 0\nmaxFilesPerJobToTrigger = 0\nmaxFilesPerJobToZip = 0\nusePostZipping = False\n"
        "lockInterval = 30\ncheckInterval = 2\ntriggerInterval = 2\nzipInterval = 2\nnThreadsForZip = 1\n"
        "sleepTime = 3",
        "zipper": "maxJobsToZip = 100\nmaxFilesPerJobToZip = 0\nusePostZipping = False\nlockInterval = 30\n"
        "zipInterval = 2\nnThreadsForZip = 1",
        "eventfeeder": "nThreads = 1\nmaxWorkers = 100\nlockInterval = 30\nsleepTime = 3",
        "cacher": "data =\nrefreshInterval = 10\nsleepTime = 60",
        "payload_interaction": "workerAttributesFile = worker_attributes.json\njobReportFile = jobReport.json\n"
        "eventStatusDumpJsonFile = event_status.dump.json\neventStatusDumpXmlFile = _event_status.dump\n"
        "jobRequestFile = worker_requestjob.json\njobSpecFile = HPCJobs.json\n"
        "eventRequestFile = worker_requestevents.json\neventRangesFile = JobsEventRanges.json\n"
        "updateEventsFile = worker_updateevents.json\nxmlPoolCatalogFile = PoolFileCatalog_H.xml\n"
        "pandaIDsFile = worker_pandaids.json\nkillWorkerFile = kill_worker.json\nheartbeatFile = worker_heartbeat.json",
        "sweeper": "nThreads = 1\nmaxWorkers = 100\ncheckInterval = 3\nsleepTime = 3\n"
        "keepFinished = 0\nkeepFailed = 0\nkeepCancelled = 0\nkeepMissed = 0",
        "watcher": "logFileNameList = panda-db_proxy.log\nmaxStalled = 3000\nnMessages = 1000\nmaxDuration = 6000\n"
        "checkInterval = 600\nsleepTime = 600\nactions =",
        "apfmon": "active = False",
        "service_monitor": "active = False",
        "file_syncer": "sleepTime = 600",
        "log_level": "",
    }
    return "\n".join(f"[{name}]\n{body}\n" for name, body in sections.items())


def common_cfg(logdir: Path) -> str:
    """panda_common.cfg: where the agent's logs go (the loghost keys must exist, never used)."""
    return (
        "[logger]\nloghost=localhost\nmonport-apache=80\nmethod=GET\nencoding=url\nloghost_new=localhost\n"
        "monport-apache_new=8081\nmethod_new=POST\nencoding_new=json\nmonurlprefix=/logger/logger/query\n"
        f"logdir={logdir}\nnemitters=1\nmigrated=True\nlog_level=DEBUG\nrotating_policy=none\n"
        "rotating_backup_count=1\nrotating_max_size=1024\nrotating_interval=24\n"
    )


class HarvesterAgent:
    """One agent: its PANDA_HOME, its process group, its sqlite database and its logs."""

    def __init__(self, home: Path, api_url: str, queue: Mapping[str, Any], cert: Path, key: Path) -> None:
        self.home = home
        self.etc = home / "etc" / "panda"
        self.logdir = home / "logs"
        self.db = home / "harvester.db"
        for path in (self.etc, self.logdir):
            path.mkdir(parents=True, exist_ok=True)
        (self.etc / "panda_harvester.cfg").write_text(harvester_cfg(home, api_url, cert, key))
        (self.etc / "panda_common.cfg").write_text(common_cfg(self.logdir))
        (self.etc / "panda_queueconfig.json").write_text(json.dumps(queue, indent=1))
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        packages = site_packages()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env.update(
            {
                "PANDA_HOME": str(self.home),
                # pandaharvester imports liveconfigparser and pandalogger as top-level modules
                "PYTHONPATH": f"{packages / 'pandacommon'}:{packages}",
                "HARVESTER_DIR": str(self.home),
                "PATH": f"{HARVESTER_VENV / 'bin'}:{os.environ.get('PATH', '')}",
            }
        )
        return env

    def start(self) -> None:
        out = (self.logdir / "master.out").open("ab")
        self.process = subprocess.Popen(
            [
                str(HARVESTER_VENV / "bin" / "python"),
                "-m",
                "pandaharvester.harvesterbody.master",
                "--foreground",
                "--pid",
                str(self.home / "harvester.pid"),
            ],
            cwd=self.home,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped by it, nothing else
        )
        out.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        pgid = self.process.pid  # start_new_session: the group is the master's own
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.process.wait(10)

    # the database

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db, timeout=30) as db:
            return list(db.execute(sql, params).fetchall())

    def workers(self) -> list[dict[str, Any]]:
        if not self.db.exists():
            return []
        try:
            rows = self.query("SELECT workerID, batchID, status, queueName FROM work_table")
        except sqlite3.OperationalError:
            return []
        return [{"workerID": r[0], "batchID": r[1], "status": r[2], "queueName": r[3]} for r in rows]

    def back_date_final_workers(self, minutes: int = 120) -> int:
        """Harvester cleans a final worker up only 60 minutes after its last change: move it back."""
        with sqlite3.connect(self.db, timeout=30) as db:
            cursor = db.execute(
                "UPDATE work_table SET modificationTime = datetime('now', ?), endTime = datetime('now', ?) "
                "WHERE status IN ('finished', 'failed', 'cancelled', 'missed')",
                (f"-{minutes} minutes", f"-{minutes} minutes"),
            )
            return cursor.rowcount

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logdir.rglob("*")) if p.is_file())

    def wait_for(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if not self.alive():
                raise AssertionError(f"the Harvester agent died while waiting for {what}:\n{self.log_tail()}")
            time.sleep(1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{self.log_tail()}")

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_text()[-chars:]
