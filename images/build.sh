#!/usr/bin/env bash
# Build (and optionally push) the four images of dask-panda-session with ONE version set.
#
# Every key of images/versions.env is passed as --build-arg, and every image is tagged with its
# IMAGE_TAG, so the scheduler, workers, pilot and JupyterLab can never be built from different
# versions (the original system's VersionMismatchWarning). Nothing here runs in CI: no container
# engine is available there; sites run this script (see images/README.md).
#
# usage: images/build.sh --registry REGISTRY [--push] [--engine docker|podman] [--platform P] [IMAGE...]
#   IMAGE is any of: dask jupyterlab pilot cleanup (default: all four)
#   The images are named REGISTRY/<image>:<IMAGE_TAG>, as the chart expects
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSIONS="$HERE/versions.env"
ALL_IMAGES=(dask jupyterlab pilot cleanup)

die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

registry=""
push=0
engine="${CONTAINER_ENGINE:-docker}"
platform=""
images=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --registry) [[ $# -ge 2 ]] || die "--registry needs a value"; registry="${2%/}"; shift 2 ;;
    --registry=*) registry="${1#*=}"; registry="${registry%/}"; shift ;;
    --push) push=1; shift ;;
    --engine) [[ $# -ge 2 ]] || die "--engine needs a value"; engine="$2"; shift 2 ;;
    --platform) [[ $# -ge 2 ]] || die "--platform needs a value"; platform="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option: $1" ;;
    *) images+=("$1"); shift ;;
  esac
done
[[ -n "$registry" ]] || die "--registry is required (e.g. --registry registry.example.org/panda)"
[[ ${#images[@]} -gt 0 ]] || images=("${ALL_IMAGES[@]}")
for image in "${images[@]}"; do
  [[ -f "$HERE/$image/Dockerfile" ]] || die "unknown image: $image (known: ${ALL_IMAGES[*]})"
done
command -v "$engine" >/dev/null 2>&1 || die "container engine '$engine' not found (use --engine)"

# versions.env -> --build-arg KEY=VALUE for every key; refuse anything that is not KEY=VALUE so a
# typo cannot silently drop a version.
build_args=()
image_tag=""
while IFS= read -r line || [[ -n "$line" ]]; do
  [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
  [[ "$line" =~ ^([A-Z][A-Z0-9_]*)=([^[:space:]]+)$ ]] || die "bad line in versions.env: $line"
  build_args+=(--build-arg "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}")
  [[ "${BASH_REMATCH[1]}" == IMAGE_TAG ]] && image_tag="${BASH_REMATCH[2]}"
done < "$VERSIONS"
[[ -n "$image_tag" ]] || die "IMAGE_TAG is missing in versions.env"

for image in "${images[@]}"; do
  ref="$registry/$image:$image_tag"
  printf 'build.sh: building %s\n' "$ref" >&2
  extra=()
  [[ -n "$platform" ]] && extra+=(--platform "$platform")
  "$engine" build "${build_args[@]}" "${extra[@]}" --tag "$ref" "$HERE/$image"
  if [[ "$push" == 1 ]]; then
    printf 'build.sh: pushing %s\n' "$ref" >&2
    "$engine" push "$ref"
  fi
done
