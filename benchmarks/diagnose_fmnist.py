"""Fashion-MNIST, cpu profile: where PAD's condensed set loses to real subsets (issue #14), one seed.

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.diagnose_fmnist --ipc 50 \
        --variants init,preset --out benchmarks/results/fmnist_ipc50_diagnosis.cpu-seed0.part1.json

Same data, settings and experts as ``bench_quality --profile cpu`` (preset cpu-small with the profile's
overrides; the preset's validation split, 10 % of the 3000-image training subset, is carved off as the
SDK does). Each variant distils from the same experts with seed 0 (the benchmark's first run), then one
evaluation network (the benchmark's seed-0 network) is trained per evaluation mode:

- ``learned``: the set's own label logits and step size (what the benchmark does for PAD);
- ``hard``: the same images with hard labels and the real-subset step size 0.01 (the subset protocol);
- ``soft-0.01``: the set's label logits with step size 0.01 (separates the step size from the labels).

Each network is tested on three sets: ``validation`` (the preset's validation split, 300 images, what the
SDK's probes see), ``validation_extra`` (5000 images of the official training split outside the
3000-image subset: training data, never the test split; a less noisy validation figure) and ``holdout``
(the 10,000 official test images, reported only, never used for a choice).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks._meta import commit, stamp
from benchmarks.bench_quality import FMNIST, PROFILES, load_fashion_mnist
from pad_sdk.core.params import ParamSpec
from pad_sdk.core.seeding import derive_seed, make_generator, seeded
from pad_sdk.core.synthetic import HARD_LABEL_LOGIT, SyntheticSet
from pad_sdk.core.training import LabelledImages, measure_accuracy, predict_logits, train_network
from pad_sdk.data import RawData, load_source, prepare
from pad_sdk.methods import MethodContext
from pad_sdk.methods.baselines import RealSubset
from pad_sdk.pipeline import Stages, experts_key
from pad_sdk.presets import MTT_START

# distillation settings each variant changes (on top of the cpu profile at the IPC); "iterations": 0 is the
# initial set
VARIANTS: dict[str, dict[str, Any]] = {
    "init": {"iterations": 0},
    "init_real": {"iterations": 0, "pix_init": "real"},
    "preset": {},
    "datm": {"selection_mode": "none"},
    "ratio0.5": {"selection_ratio": 0.5},
    "error": {"selection_mode": "error"},
    "lr_img100": {"lr_img": 100.0},
    "lr_img300": {"lr_img": 300.0},
    "lr_img3000": {"lr_img": 3000.0},
    # IPC 50's herding start at smaller image steps (3 became the preset's in e51d891; it was 10)
    "lr_img3": {"lr_img": 3.0},
    "lr_img1": {"lr_img": 1.0},
    "hard_labels": {"soft_labels": False},
    "fixed_labels": {"learn_labels": False},
    "iter50": {"iterations": 50},
    "real_init": {"pix_init": "real"},
    "real_init_hard": {"pix_init": "real", "soft_labels": False},
    "herding_init": {"pix_init": "herding"},
    "herding_init_hard": {"pix_init": "herding", "soft_labels": False},
    "init_herding": {"iterations": 0, "pix_init": "herding"},
    "herding_init_hard_lr_img100": {"pix_init": "herding", "soft_labels": False, "lr_img": 100.0},
    "herding_init_hard_lr_img30": {"pix_init": "herding", "soft_labels": False, "lr_img": 30.0},
    "herding_init_hard_lr_img10": {"pix_init": "herding", "soft_labels": False, "lr_img": 10.0},
    "herding_init_hard_lr_img10_fixed_lr": {"pix_init": "herding", "soft_labels": False, "lr_img": 10.0,
                                            "learn_lr": False},
    # MTT's start on PAD's experts: hard labels, random real images, a fixed window, no threshold; with PAD's
    # parameter selection (mtt_start) and without it (mtt_settings, the probe candidate of that name)
    "mtt_start": dict(MTT_START),
    "mtt_settings": {**MTT_START, "selection_mode": "none"},
    # PAD's depth cut at a smaller ratio (the published one at IPC 50; IPC 10's is 0.5)
    "mtt_start_ratio0.25": {**MTT_START, "selection_ratio": 0.25},
    # the same starts on plain experts (no data scheduler, as MTT and DATM train theirs): "experts" is not a
    # distillation setting, distil_variant reads it
    "hard_labels_plain": {"soft_labels": False, "experts": "plain"},
    "preset_plain": {"experts": "plain"},
    # the mtt method's settings, as a variant (judged on the extra validation images like the others)
    "mtt_plain": {**MTT_START, "selection_mode": "none", "experts": "plain"},
}
# real subsets of the baselines (no distillation), judged like the variants
SUBSETS = {"subset_herding": "herding", "subset_random": "random"}
EVAL_MODES = ("learned", "hard", "soft-0.01")


def extra_validation(raw_full: RawData, train_per_class: int, per_class: int, seed: int) -> tuple[np.ndarray, ...]:
    """Rows of the official training split outside the benchmark's subset: ``per_class`` per class, seeded."""
    labels = raw_full.train_labels.numpy()
    rng = np.random.default_rng(seed)  # the subset's own draw (bench_quality.load_fashion_mnist)
    subset = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:train_per_class]
                             for c in range(len(raw_full.class_names))])
    rest = np.setdiff1d(np.arange(labels.size), subset)
    pick = np.random.default_rng(seed + 1013)
    return tuple(np.sort(np.concatenate([pick.permutation(rest[labels[rest] == c])[:per_class]
                                         for c in range(len(raw_full.class_names))])))


def build(ipc: int, extra_per_class: int) -> tuple[MethodContext, LabelledImages]:
    settings = PROFILES["cpu"]
    raw = load_fashion_mnist(settings["train_per_class"])
    context = MethodContext(prepare(raw, zca=False), settings["preset"], settings["overrides"], 0)
    full = load_source(FMNIST, holdout_fraction=0.2, seed=0)
    rows = torch.from_numpy(np.asarray(extra_validation(full, settings["train_per_class"], extra_per_class // 10, 0)))
    # the same normalisation as the run (the subset's statistics): prepare with the extra rows as its test split
    extra = prepare(RawData(raw.train_images, raw.train_labels, full.train_images[rows], full.train_labels[rows],
                            raw.class_names, raw.source), zca=False).test
    return context, extra


def cached_experts(context: MethodContext, ipc: int, cache: Path | None) -> list[torch.Tensor]:
    """The profile's PAD experts (scheduler), trained once and kept in ``cache`` for the other processes."""
    config = context.config(ipc)
    if cache is not None and cache.exists():
        saved = torch.load(cache)
        if saved["key"] == experts_key(config):
            return saved["experts"]
    experts = [context.experts(config)[i] for i in range(config.experts.num_experts)]
    if cache is not None:
        torch.save({"key": experts_key(config), "experts": experts}, cache)
    return experts


def evaluate(stages: Stages, synthetic: SyntheticSet, mode: str, tests: dict[str, LabelledImages],
             networks: int = 1, run: int = 0) -> dict[str, float]:
    """The benchmark's evaluation networks of seed ``run`` (its first ``networks``), trained as ``mode`` says;
    mean accuracy per test set."""
    config = stages.config
    if mode == "learned":
        targets, lr = synthetic.label_logits, float(synthetic.lr)
    elif mode == "hard":
        targets, lr = synthetic.classes, config.evaluation.random_lr
    else:
        targets, lr = synthetic.label_logits, 0.01
    seed = derive_seed(0, 41, run)  # compare.measure's evaluation seed for run ``run``
    scores: dict[str, list[float]] = {name: [] for name in tests}
    for index in range(networks):
        net_seed = derive_seed(seed, 7, index)  # evaluate.train_and_test's network ``index``
        network = seeded(net_seed, stages.network_factory())
        train_network(network, synthetic.images.detach(), targets.detach(), config.evaluation.recipe(lr),
                      generator=make_generator(net_seed), augment=stages.augment)
        for name, test in tests.items():
            logits = predict_logits(network, test.images)
            scores[name].append(measure_accuracy(logits, test.labels, test.num_classes).accuracy)
    return {name: float(np.mean(values)) for name, values in scores.items()}


def kept_layers(stages: Stages) -> dict[str, Any]:
    """Which parameters the depth cut keeps: the flat cut and the share kept of every parameter tensor."""
    spec = ParamSpec.of(stages.network_factory()())
    distill = stages.config.distill
    cut = int(distill.selection_ratio * spec.numel) if distill.selection_mode == "depth" else 0
    kept, offset = {}, 0
    for name, size in zip(spec.names, spec.sizes, strict=True):
        kept[name] = round(min(1.0, max(0.0, (offset + size - cut) / size)), 3)
        offset += size
    return {"total": spec.numel, "cut": cut, "kept_share": kept}


def subset_entry(context: MethodContext, ipc: int, selector: str, run: int
                 ) -> tuple[Stages, SyntheticSet, dict[str, Any]]:
    """A baseline's real subset (``RealSubset`` of seed ``run``) as a set to evaluate, with its description."""
    config = context.config(ipc, {"auto": {"probes": False}})
    synthetic = RealSubset(selector, selector).condense(context, ipc, run)
    return context.stages(config), synthetic, {"changes": {"subset": selector}, "iterations": 0}


def distil_variant(context: MethodContext, experts: list[torch.Tensor], ipc: int, changes: dict[str, Any],
                   run: int) -> tuple[Stages, SyntheticSet, dict[str, Any]]:
    """The profile's PAD with ``changes``, distilled with seed ``run`` (the benchmark's run ``run``); with
    ``"experts": "plain"`` from experts trained without the data scheduler."""
    requested, changes = changes, dict(changes)
    if changes.pop("experts", None) == "plain":
        experts = [context.experts(context.config(ipc, {"experts": {"fiex": "off"}}))[i]
                   for i in range(len(experts))]
    config = context.config(ipc, {"auto": {"probes": False}, "distill": changes})
    stages = context.stages(config)
    started = time.perf_counter()
    distiller = stages.make_distiller(experts, ipc, seed_offset=run)
    initial = distiller.synthetic.detached()
    distiller.run(config.distill.iterations)
    seconds = time.perf_counter() - started
    synthetic = distiller.synthetic.detached()
    return stages, synthetic, {
        "changes": requested, "distill_seconds": round(seconds, 1), "iterations": config.distill.iterations,
        "stepped": sum(r.stepped for r in distiller.history), "learned_lr": float(synthetic.lr),
        "mean_loss": float(np.mean([r.loss for r in distiller.history])) if distiller.history else None,
        "hard_labels": bool((synthetic.label_logits.max(1).values == HARD_LABEL_LOGIT).all()),
        "label_agreement": float((synthetic.label_logits.argmax(1) == synthetic.classes).float().mean()),
        # how far distillation moved the images and labels (RMS change / RMS of the initial values)
        "image_change": float((synthetic.images - initial.images).pow(2).mean().sqrt()
                              / initial.images.pow(2).mean().sqrt()),
        "label_change": float((synthetic.label_logits - initial.label_logits).pow(2).mean().sqrt()
                              / initial.label_logits.pow(2).mean().sqrt()),
        "selection": kept_layers(stages)}


def run(ipc: int, variants: list[str], modes: list[str], out: Path, cache: Path | None, extra: int,
        networks: int = 1, runs: int = 1, seeds: list[int] | None = None) -> None:
    """Every variant for seeds 0 .. ``runs - 1`` or ``seeds`` (distillation and evaluation seeds of the
    benchmark's runs); ``accuracy`` is the mean over the runs, ``per_run`` each run's figures (``seeds`` says
    whose, so that seeds run in parallel processes merge back, :func:`merge`)."""
    seeds = list(range(runs)) if seeds is None else seeds
    runs = len(seeds)
    torch.set_num_threads(1)
    context, extra_set = build(ipc, extra)
    experts = cached_experts(context, ipc, cache)
    tests = {"validation": context.data.validation, "validation_extra": extra_set, "holdout": context.data.test}
    record: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    record.update(stamp(at_commit=commit(), profile="cpu", ipc=ipc, seed=0, eval_networks=networks, runs=runs,
                        seeds=seeds,
                        data={"train": len(context.data.train), "validation": len(context.data.validation),
                              "validation_extra": len(extra_set), "holdout": len(context.data.test)}))
    record.setdefault("variants", {})
    for name in variants:
        per_run: list[dict[str, dict[str, float]]] = []
        for seed in seeds:
            if name in SUBSETS:
                stages, synthetic, entry = subset_entry(context, ipc, SUBSETS[name], seed)
            else:
                stages, synthetic, entry = distil_variant(context, experts, ipc, dict(VARIANTS[name]), seed)
            per_run.append({})
            for mode in modes:  # written after every evaluation, so a run cut short keeps what it measured
                per_run[-1][mode] = evaluate(stages, synthetic, mode, tests, networks, seed)
                label = name if seeds == [0] else f"{name}@{seed}"  # LOG_LINE reads "name mode {...}"
                print(label, mode, json.dumps(per_run[-1][mode]), flush=True)
                entry.setdefault("accuracy", {})[mode] = _mean_over_runs(per_run, mode, tests)
                if seeds != [0]:
                    entry["per_run"], entry["seeds"] = per_run, seeds[:len(per_run)]
                record["variants"][name] = entry
                out.write_text(json.dumps(record, indent=2) + "\n")


LOG_LINE = re.compile(r"^(\S+) (learned|hard|soft-0\.01) (\{.*\})$", re.MULTILINE)


def recover_from_log(log: Path, ipc: int, command: str, at_commit: str) -> dict[str, Any]:
    """The accuracies a run cut short had printed (its file is written only at the end of a variant in
    commit 6661908 and before), as a part marked ``recovered_from_log``."""
    variants: dict[str, Any] = {}
    for name, mode, values in LOG_LINE.findall(log.read_text()):
        values = values.replace("'", '"')
        scores = {k: v / 100 if v > 1 else v for k, v in json.loads(values).items()}  # older logs print %
        variants.setdefault(name, {"changes": VARIANTS[name], "accuracy": {}, "recovered_from_log": str(log)})
        variants[name]["accuracy"][mode] = scores
    return {"command": command, "commit": at_commit, "ipc": ipc, "variants": variants}


def merge(parts: list[Path], out: Path, logs: list[str]) -> None:
    """One record from several runs' files (and logs, ``path::ipc::commit::command``), added to ``out`` when it
    exists (a variant measured again replaces the earlier one): each variant keeps the command and commit it
    was measured at."""
    record: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {"parts": [], "variants": {}}
    recovered = []
    for spec in logs:
        path, ipc, at_commit, command = spec.split("::", 3)
        recovered.append(recover_from_log(Path(path), int(ipc), command, at_commit))
    for part in [json.loads(p.read_text()) for p in parts] + recovered:
        data = part
        header = {k: v for k, v in data.items() if k != "variants"}
        record["parts"].append(header)
        for name, entry in data["variants"].items():
            key = f"ipc{data['ipc']}:{name}"
            entry = dict(entry, command=header["command"], commit=header["commit"])
            record["variants"][key] = _by_seed(record["variants"].get(key), entry)
    out.write_text(json.dumps(record, indent=2) + "\n")


def _mean_over_runs(per_run: list[dict[str, dict[str, float]]], mode: str, tests: Iterable[str]) -> dict[str, float]:
    """Each test's accuracy in ``mode``, the mean over the runs that evaluated ``mode``."""
    done = [run for run in per_run if mode in run]
    return {test: float(np.mean([run[mode][test] for run in done])) for test in tests}


def _seeds(entry: dict[str, Any]) -> list[int]:
    """The seeds of an entry's ``per_run`` (older records: 0 .. n-1; no ``per_run``: seed 0 alone)."""
    return entry.get("seeds", list(range(len(entry.get("per_run", [None])))))


def _with_runs(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry of seed 0 alone (``run`` writes no ``per_run`` then) with its figures as seed 0's run."""
    if "per_run" in entry or "accuracy" not in entry:
        return entry
    return dict(entry, per_run=[entry["accuracy"]], seeds=[0])


def _by_seed(earlier: dict[str, Any] | None, entry: dict[str, Any]) -> dict[str, Any]:
    """``entry``, or, when it measured other seeds of the same changes than ``earlier``, both together: per-seed
    figures joined in seed order, the means taken again, the earlier command and commit kept in ``joined``.
    The same seed measured again replaces the earlier entry as a whole."""
    entry = _with_runs(entry)
    earlier = _with_runs(earlier) if earlier is not None else None
    if (earlier is None or earlier.get("changes") != entry.get("changes") or "per_run" not in earlier
            or "per_run" not in entry or set(_seeds(earlier)) & set(_seeds(entry))):
        return entry
    runs = sorted(zip(_seeds(earlier) + _seeds(entry), earlier["per_run"] + entry["per_run"], strict=True),
                  key=lambda run: run[0])
    per_run = [figures for _, figures in runs]
    accuracy = {mode: _mean_over_runs(per_run, mode, tests) for mode, tests in entry["accuracy"].items()}
    joined = [*earlier.get("joined", []), {k: earlier[k] for k in ("command", "commit")}]
    return dict(entry, per_run=per_run, seeds=[seed for seed, _ in runs], accuracy=accuracy, joined=joined)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ipc", type=int, default=50)
    parser.add_argument("--variants", default="init,preset",
                        help=f"comma-separated from {', '.join([*VARIANTS, *SUBSETS])}")
    parser.add_argument("--modes", default=",".join(EVAL_MODES))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--experts-cache", type=Path, help="a file to keep the experts in between processes")
    parser.add_argument("--extra-validation", type=int, default=5000)
    parser.add_argument("--eval-networks", type=int, default=1, help="networks per evaluation (their mean)")
    parser.add_argument("--runs", type=int, default=1, help="seeds 0 .. runs-1 of the benchmark (their mean)")
    parser.add_argument("--seeds", help="comma-separated seeds instead of --runs (to split seeds over processes; "
                        "--merge joins them)")
    parser.add_argument("--merge", type=Path, nargs="+",
                        help="no run: merge the variants of these files (runs in parallel processes) into --out "
                        "(added to it when it exists)")
    parser.add_argument("--recover-log", nargs="+", help="with --merge: add the accuracies printed in these logs "
                        "(path::ipc::commit::command) of runs cut short")
    args = parser.parse_args(argv)
    if args.merge or args.recover_log:
        merge(args.merge or [], args.out, args.recover_log or [])
        return
    run(args.ipc, args.variants.split(","), args.modes.split(","), args.out, args.experts_cache,
        args.extra_validation, args.eval_networks, args.runs,
        [int(seed) for seed in args.seeds.split(",")] if args.seeds else None)


if __name__ == "__main__":
    main()
