"""Big jobs for every tier: the recorded example job grown to N input files.

Why: a real analysis job lists hundreds of input files, and every per-file field of the definition
(GUID, fsize, checksum, scopeIn, datasets, dispatch blocks, paths) is a comma-separated list with one
entry per file: about 560 bytes a file. Such a job is what broke exec's 128 KiB limit for one env
string; the tests build it the way PanDA does, by repeating the per-file fields.
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from tests.conftest import ROOT

EXAMPLE = ROOT / "tests" / "data" / "harvester-example-pandaJobData.json"

# the per-file fields of the example job (one comma-separated entry per input file)
PER_FILE_FIELDS = (
    "GUID",
    "checksum",
    "ddmEndPointIn",
    "dispatchDBlockToken",
    "dispatchDblock",
    "fsize",
    "inFilePaths",
    "inFiles",
    "prodDBlockToken",
    "prodDBlocks",
    "realDatasetsIn",
    "scopeIn",
)


def example_params() -> dict[str, Any]:
    """The recorded example's jobParams (a fresh copy)."""
    ((_, params),) = json.loads(EXAMPLE.read_text()).items()
    return dict(params)


def job_with_input_files(count: int, pandaid: int | None = None, **fields: Any) -> dict[str, Any]:
    """The example job's jobParams with `count` input files (distinct names and GUIDs per file)."""
    params = copy.deepcopy(example_params())
    if pandaid is not None:
        params["PandaID"] = pandaid
    first = {name: str(params[name]).split(",")[0] for name in PER_FILE_FIELDS}
    lists: dict[str, list[str]] = {name: [] for name in PER_FILE_FIELDS}
    for index in range(count):
        for name in PER_FILE_FIELDS:
            value = first[name]
            if name == "GUID":
                value = str(uuid.UUID(int=index + 1)).upper()
            elif name in ("inFiles", "inFilePaths"):
                value = value.replace("_000184.", f"_{index:06d}.")
            elif name == "fsize":
                value = str(30_000_000 + index)
            elif name == "checksum":
                value = f"ad:{index:08x}"
            lists[name].append(value)
    params.update({name: ",".join(values) for name, values in lists.items()})
    params.update(fields)
    return params
