"""Print tests/bench/results/monitor.json as markdown tables: ``.venv/bin/python -m tests.bench.monitor_table``."""

from __future__ import annotations

import json
from typing import Any

from tests.bench.conftest import RESULTS

APPROACHES = ("ours", "ours_dicts", "upstream_emulated")


def _cell(figures: dict[str, Any] | None) -> str:
    if not figures:
        return "-"
    wall = figures.get("wall_seconds_median", figures.get("wall_seconds"))
    cpu = figures.get("cpu_seconds_median", figures.get("cpu_seconds_children"))
    requests = figures.get("api_requests", "?")
    requests = requests if isinstance(requests, int) else ">=1/release"
    peak = figures.get("traced_peak_mb")
    mem = f", heap {peak} MB" if peak is not None else ""
    extrapolated = "EXTRAPOLATED " if "label" in figures else ""
    return f"{extrapolated}{wall:.3f} s wall, {cpu:.3f} s CPU, {requests} req, {figures.get('process_starts', 0)} proc{mem}"


def tables(doc: dict[str, Any]) -> str:
    out: list[str] = []
    live = doc.get("live_releases", {})
    if live:
        out.append(f"Live releases on the local cluster ({live['when']}, load {live['load_average_at_start']}):\n")
        out.append("| sessions | ours | ours_dicts | upstream (emulated) | helm status per release |")
        out.append("|---|---|---|---|---|")
        for size, row in live["sizes"].items():
            # runs before the compact records named the second design ours_reduced
            cells = [_cell(row.get(a) or row.get("ours_reduced" if a == "ours_dicts" else "")) for a in (*APPROACHES, "naive_helm_status")]
            out.append(f"| {size} | " + " | ".join(cells) + " |")
        out.append("")
    fake = doc.get("recorded_pods_fake_api", {})
    if fake:
        out.append(f"Recorded pods as raw JSON through the real Kube ({fake['when']}, load {fake['load_average_at_start']}):\n")
        out.append("| sessions (pods, body) | ours | ours_dicts | upstream (emulated) | helm status per release (EXTRAPOLATED) |")
        out.append("|---|---|---|---|---|")
        for size, row in fake["sizes"].items():
            cells = [_cell(row.get(a)) for a in APPROACHES]
            helm = row.get("naive_helm_extrapolated")
            cells.append(
                f"{helm['wall_seconds']:.1f} s wall, {helm['cpu_seconds_children']:.1f} s CPU, {helm['process_starts']} proc"
                if helm
                else "-"
            )
            out.append(f"| {size} ({row['pods']}, {row['list_body_mb']} MB) | " + " | ".join(cells) + " |")
        rss = fake.get("peak_rss_one_cycle_fresh_process")
        if rss:
            out.append(f"\nPeak RSS, one cycle at {rss['sessions']} sessions in a fresh process (MB, world included / cycle's own growth):\n")
            for name in APPROACHES:
                if name in rss:
                    at = rss[name].get("sessions", rss["sessions"])
                    out.append(f"* {name} ({at} sessions): {rss[name]['rss_peak_mb']} / +{rss[name]['cycle_rss_mb']}")
        out.append("")
    share = doc.get("list_share")
    if share:
        out.append(f"The LIST's share of a cycle at {share['sessions']} sessions ({share['when']}):\n")
        for name in ("ours", "ours_dicts"):
            s = share[name]
            out.append(
                f"* {name}: LIST + decode {s['list_and_decode_cpu_seconds_median']} s CPU of "
                f"{s['whole_cycle_cpu_seconds_median']} s ({s['list_share_of_cpu']:.0%})"
            )
    ab = doc.get("before_after")
    if ab:
        out.append(
            f"\nBefore and after at {ab['sessions']} sessions, interleaved ({ab['when']}, load {ab['load_average_1min']}, "
            f"same phases and reasons: {ab['same_phases_and_reasons']}):\n"
        )
        out.append("| code | CPU min / median | wall min / median | process max RSS |")
        out.append("|---|---|---|---|")
        for name in ("baseline", "now"):
            f = ab[name]
            out.append(
                f"| {name} ({ab[name + '_commit']}) | {f['cpu_seconds_min']} / {f['cpu_seconds_median']} s | "
                f"{f['wall_seconds_min']} / {f['wall_seconds_median']} s | {f['process_max_rss_mb']} MB |"
            )
    return "\n".join(out)


if __name__ == "__main__":
    print(tables(json.loads((RESULTS / "monitor.json").read_text())))
