"""SUMMARY.md's GPU section: the newest ``benchmarks.gpu_check`` record made on a CUDA device, each figure beside
issue #13's target, and the ``bench_experts`` records of every device measured. Without a GPU record it says so
and names the newest CPU rehearsal, whose toy-size figures are never shown as GPU figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
# issue #13's targets on one H200 (figures in the record, not in timed tests)
ITERATION_TARGETS = {(10, 80): 0.30, (50, 80): 0.8}
BUDGET_GIB = 16.0
SAME_WORK_POINTS = 0.5
ONE_EXPERT_IMAGES_PER_S = 54_000  # the first GPU run, one expert at a time (width 128, batch 128)


def _records(pattern: str) -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, json.loads(path.read_text())) for path in sorted(RESULTS.glob(pattern))]


def _provenance(record: dict[str, Any]) -> str:
    versions = record.get("versions", {})
    return (f"_`{record.get('command', '?')}` at commit `{record.get('commit', '?')}`, {record.get('timestamp', '?')}; "
            f"{record.get('gpu') or record.get('device', '?')}, torch {versions.get('torch', '?')}, "
            f"CUDA {versions.get('cuda') or '-'}._")


def _met(value: float | None, target: float, *, at_most: bool = True) -> str:
    if value is None:
        return "-"
    return "met" if (value <= target if at_most else value >= target) else "**not met**"


def _speed_lines(speed: dict[str, Any]) -> list[str]:
    out = ["| IPC | N | unroll (chosen) | s / iteration | peak GiB | target s | |",
           "|---:|---:|---|---:|---:|---:|---|"]
    for row in speed.get("distill", []):
        key = (row.get("ipc"), row.get("syn_steps"))
        seconds, peak = row.get("s_per_iteration"), row.get("peak_gib")
        target = ITERATION_TARGETS.get(key)
        note = row.get("skipped") or row.get("error") or (_met(seconds, target) if target else "")
        out.append(f"| {key[0]} | {key[1]} | {row.get('unroll')} ({row.get('chosen', '-')}) | "
                   f"{'-' if seconds is None else f'{seconds:.3f}'} | {'-' if peak is None else f'{peak:.2f}'} | "
                   f"{target or ''} | {note} |")
    budget = speed.get("budget_16gib")
    if budget:
        peak = budget.get("peak_gib")
        out += ["", f"IPC 50, N 80 under a {BUDGET_GIB:.0f} GiB budget: unroll `{budget.get('chosen')}`, peak "
                f"{peak if peak is None else f'{peak:.2f}'} GiB ({_met(peak, BUDGET_GIB)}), "
                f"{budget.get('s_per_iteration', 0):.3f} s / iteration."]
    options = speed.get("options", {})
    grouped = options.get("experts_at_once", {})
    if grouped:
        # judged against one expert at a time in the same record (same machine, same run), else the first run's
        best = max(v["images_per_s"] for v in grouped.values())
        single = grouped.get("1", {}).get("images_per_s") or ONE_EXPERT_IMAGES_PER_S
        base = "one at a time here" if "1" in grouped else f"the first run's {ONE_EXPERT_IMAGES_PER_S:,}"
        cells = ", ".join(f"{k}: {v['images_per_s']:,.0f}" for k, v in grouped.items())
        out += ["", f"Expert training, images per second by `compute.experts_at_once` ({cells}): best "
                f"{best / single:.1f}x {base} ({_met(best, 4 * single, at_most=False)}; target 4x)."]
    for name, label in (("tf32_distill", "TF32 (distillation, s / iteration)"),
                        ("bf16_expert_training", "bf16 autocast (expert training, images / s)")):
        if name in options:
            cells = ", ".join(f"{flag}: {_figure(v)}" for flag, v in options[name].items())
            out.append(f"- {label}: {cells}")
    return out


def _figure(value: dict[str, Any]) -> str:
    if "s_per_iteration" in value:
        return f"{value['s_per_iteration']:.3f}"
    return f"{value.get('images_per_s', 0):,.0f}"


def _gpu_record_lines(name: str, record: dict[str, Any]) -> list[str]:
    parts = record.get("parts", {})
    out = [_provenance(record), ""]
    same = parts.get("same_work", {})
    if "points_from_cpu_record" in same:
        distance = same["points_from_cpu_record"]
        out += [f"Same work (cpu profile PAD, IPC 10, seed 0): {100 * same['accuracy']:.2f} % against the CPU "
                f"record's {100 * same['cpu_record_accuracy']:.2f} % ({distance:+.2f} points; "
                f"{_met(abs(distance), SAME_WORK_POINTS)}, target within {SAME_WORK_POINTS}), "
                f"{same.get('seconds', 0):.1f} s against {same.get('cpu_record_seconds', 0):.0f} s.", ""]
    if "speed" in parts:
        out += [*_speed_lines(parts["speed"]), ""]
    rows = parts.get("quality", {}).get("rows", {})
    if rows:
        cells = ", ".join(f"{k} {100 * v['accuracy']:.1f} %" for k, v in rows.items())
        out += [f"Mid budget, IPC 10, one seed: {cells}.", ""]
    tests = parts.get("tests")
    if tests:
        out += [f"`pytest -m gpu`: exit code {tests.get('exit_code')}, `{(tests.get('tail') or ['?'])[-1]}`.", ""]
    failed = [f"{part} ({value['error']})" for part, value in parts.items() if "error" in value]
    if failed:
        out += [f"Parts that failed: {'; '.join(failed)}.", ""]
    return [f"Record: `{name}`.", "", *out]


def _experts_lines() -> list[str]:
    from benchmarks.summary import _provenance as machine_provenance  # here: summary imports this module

    out: list[str] = []
    for name, record in _records("experts_at_once.*.json"):
        out += [f"#### Experts trained together, `{name}`", "", machine_provenance(record), "",
                "| width | batch | experts at once | images / s | vs one at a time |", "|---:|---:|---:|---:|---:|"]
        for r in record["rows"]:
            ratio = "-" if r.get("ratio_to_one") is None else f"{r['ratio_to_one']:.2f}x"
            out.append(f"| {r['width']} | {r['batch']} | {r['experts_at_once']} | {r['images_per_s']:,.0f} | {ratio} |")
        out.append("")
    return out


def gpu_section() -> list[str]:
    out = ["## On a GPU (`python -m benchmarks.gpu_check`)", ""]
    records = _records("gpu_check*.json")
    on_gpu = [(n, r) for n, r in records if str(r.get("device", "")).startswith("cuda")]
    if on_gpu:
        out += _gpu_record_lines(*max(on_gpu, key=lambda item: str(item[1].get("timestamp", ""))))
    else:
        rehearsals = sorted(records, key=lambda item: str(item[1].get("timestamp", "")))
        newest = (f" The newest CPU rehearsal, `{rehearsals[-1][0]}` (commit `{rehearsals[-1][1].get('commit')}`), "
                  "ran every part at toy sizes; its figures are not GPU figures.") if rehearsals else ""
        out += ["No record from a GPU yet: no session with this check has been lent one, so every target of issue "
                "#13 (iteration times, the 16 GiB budget, same-work distance, expert throughput) is unmeasured."
                + newest, ""]
    return [*out, *_experts_lines()]
