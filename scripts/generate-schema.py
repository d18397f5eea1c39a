#!/usr/bin/env python3
"""Generate the chart's values.schema.json from values.schema.yaml.

Why: Helm reads only JSON, but the schema repeats whole blocks (resources six times, the image
four times, extraEnv and the scheduling keys per component). The YAML source writes each block
once as an anchor and reuses it by alias; this script expands the aliases into the JSON that Helm
and the orchestrator validate against, so the two can never drift apart unnoticed (the chart tier
runs `--check`).

Usage (from the repository root):
    .venv/bin/python scripts/generate-schema.py          # rewrite values.schema.json
    .venv/bin/python scripts/generate-schema.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CHART = Path(__file__).resolve().parent.parent / "charts" / "dask-panda-session"
SOURCE = CHART / "values.schema.yaml"
TARGET = CHART / "values.schema.json"


def generate(source_text: str) -> str:
    """The JSON text for one YAML source: aliases expanded, key order kept, checked as draft 7."""
    schema: Any = yaml.safe_load(source_text)
    if not isinstance(schema, dict):
        raise ValueError("the schema source must be a YAML mapping")
    # A schema that is not itself valid draft 7 would make Helm and jsonschema disagree silently.
    jsonschema.Draft7Validator.check_schema(schema)
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the JSON, or with --check only report whether the committed one is current."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the JSON is out of date"
    )
    args = parser.parse_args(argv)
    wanted = generate(SOURCE.read_text(encoding="utf-8"))
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if args.check:
        if current != wanted:
            print(
                f"{TARGET.name} is out of date with {SOURCE.name}: run scripts/generate-schema.py",
                file=sys.stderr,
            )
            return 1
        return 0
    if current != wanted:
        TARGET.write_text(wanted, encoding="utf-8")
        print(f"wrote {TARGET.relative_to(CHART.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
