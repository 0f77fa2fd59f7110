"""Generate the parity fixtures by running the official PAD / DATM / MTT code once, offline, on tiny inputs.

This script is NOT run by the test suite: ``test_parity.py`` only reads what it wrote under ``fixtures/``.
It needs the official repositories checked out somewhere (never copied into this repository), e.g.::

    G=/work/.mirror/NUS-HPC-AI-Lab+PAD/repo
    git --git-dir=$G archive HEAD | tar -x -C /tmp/official-pad                      # PAD.py, buffer_CL.py
    git --git-dir=$G archive c04c9d5 -- distill utils networks.py reparam_module.py buffer \\
        | tar -x -C /tmp/official-pad-depth                                          # PAD_depth.py
    git --git-dir=/work/.mirror/NUS-HPC-AI-Lab+DATM/repo archive HEAD | tar -x -C /tmp/official-datm
    # mtt-distillation: `git show HEAD:<file>` for its five .py files into /tmp/official-mtt
    # (its archive has an unreadable gif); then, for the manifest, each tree's commit:
    git --git-dir=$G rev-parse HEAD > /tmp/official-pad/.parity-commit    # and likewise for the others

    .venv/bin/python tests/parity/make_fixtures.py --pad /tmp/official-pad \\
        --pad-depth /tmp/official-pad-depth --datm /tmp/official-datm --mtt /tmp/official-mtt \\
        --log /tmp/parity-gen.log

It takes about two minutes on two shared cores and rewrites every file under ``fixtures/``.

How the official code is run (README.md in this folder lists every patch and why):

* Each official entry point runs in its own child process (the repositories all have a top-level
  ``utils``), through its own command line (``runpy`` with ``__name__ == "__main__"``), with
  ``Iteration=0``: exactly one distillation iteration.
* Missing third-party modules that the tiny run never calls (wandb, yacs, tqdm, kornia, torchvision) are
  replaced by small stubs in ``sys.modules``. ``get_dataset`` returns the tiny in-memory data set and
  ``get_network`` the official ``ConvNet`` at width 8 (no clock re-seeding); MTT's ``evaluate_synset`` is
  skipped (evaluation is not compared).
* Nothing in the official algorithm is changed except the documented CPU/run fixes: PAD.py's undefined
  ``loss_threshold_low`` gets a default (0.0: always apply ``loss_ratio``); ``buffer_CL.py``'s hard-coded
  5000 images per class becomes the real per-class count; MTT's save block calls ``.cuda()``, which is the
  identity here.
* What the official code computed is recorded by wrapping, not changing, what it calls: the SGD
  optimisers record each parameter's value and gradient when they step; ``torch.randperm`` records the
  minibatch permutations; ``F.mse_loss`` records the student / start / target vectors; ``torch.sort``
  records the error ordering; ``np.random.permutation`` records the class permutations of the
  initialisation; the wandb stub records the logged loss and start epoch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import json
import os
import random
import re
import runpy
import shlex
import subprocess
import sys
import tempfile
import textwrap
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"

# The tiny problem shared by every run.
NUM_CLASSES, PER_CLASS, IPC, WIDTH, DEPTH = 3, 12, 2, 8, 3
IMAGE = (1, 28, 28)  # Fashion-MNIST's shape: the official ConvNet pads the first conv by 3
SYN_STEPS, BATCH_SYN, EXPERT_EPOCHS, SNAPSHOTS = 3, 4, 2, 4
LR_TEACHER, LOSS_RATIO, DEPTH_RATIO = 0.01, 0.5, 0.5
DATASET, MODEL = "Parity", "ConvNet"

RECORD: dict[str, Any] = {"sgd": [], "randperm": [], "mse": [], "sort": [], "np_perm": [], "wandb": {}}


# ---------------------------------------------------------------------------------------------------------
# Stubs for modules the tiny run imports but never uses for the compared numerics
# ---------------------------------------------------------------------------------------------------------
class _CfgNode(dict):
    """The part of yacs.config.CfgNode the official scripts use: attribute access and merge_from_file."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError as exc:
            raise AttributeError(key) from exc

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def merge_from_file(self, path: str) -> None:
        import yaml

        with open(path) as handle:
            data = yaml.safe_load(handle)
        for key, value in data.items():
            if key not in self:  # yacs refuses unknown keys, too
                raise KeyError(f"Non-existent config key: {key}")
            self[key] = value


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def _wandb_init(**kwargs: Any) -> None:
    wandb = sys.modules["wandb"]
    wandb.config = types.SimpleNamespace(_items=dict(vars(kwargs["config"])))
    wandb.run = types.SimpleNamespace(name="parity")


def _wandb_log(values: dict[str, Any], step: int | None = None) -> None:
    for key in ("Grand_Loss", "Start_Epoch"):
        if key in values:
            value = values[key]
            RECORD["wandb"][key] = value.item() if hasattr(value, "item") else value


def install_stubs() -> None:
    import torch._dynamo  # noqa: F401  (imported before the stubs: it probes which optional modules exist)

    _module("wandb", init=_wandb_init, log=_wandb_log, finish=lambda: None, Settings=lambda **k: None,
            Histogram=lambda *a, **k: None, Image=lambda *a, **k: None)
    _module("tqdm", tqdm=lambda iterable=None, *a, **k: iterable)
    _module("yacs")
    _module("yacs.config", CfgNode=_CfgNode)
    _module("kornia")
    tv = _module("torchvision")
    for sub in ("datasets", "transforms"):
        setattr(tv, sub, _module(f"torchvision.{sub}"))
    tv.utils = _module("torchvision.utils", make_grid=lambda x, **k: x)


# ---------------------------------------------------------------------------------------------------------
# Recorders: wrap (never change) what the official code calls
# ---------------------------------------------------------------------------------------------------------
def install_recorders() -> None:
    base_sgd = torch.optim.SGD

    class RecordingSGD(base_sgd):  # type: ignore[misc, valid-type]
        def step(self, closure: Any = None) -> Any:
            for group in self.param_groups:
                for p in group["params"]:
                    grad = None if p.grad is None else p.grad.detach().clone()
                    RECORD["sgd"].append({"value": p.detach().clone(), "grad": grad})
            return super().step(closure)

    torch.optim.SGD = RecordingSGD  # type: ignore[misc]

    randperm, mse, sort, permutation = torch.randperm, torch.nn.functional.mse_loss, torch.sort, np.random.permutation

    def rec_randperm(n: int, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = randperm(n, *args, **kwargs)
        RECORD["randperm"].append(out.clone())
        return out

    def rec_mse(inp: torch.Tensor, target: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        RECORD["mse"].append((inp.detach().clone(), target.detach().clone()))
        return mse(inp, target, *args, **kwargs)

    def rec_sort(t: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        out = sort(t, *args, **kwargs)
        RECORD["sort"].append(out[1].clone())
        return out

    def rec_permutation(x: Any) -> Any:
        out = permutation(x)
        RECORD["np_perm"].append(torch.as_tensor(np.asarray(out)))
        return out

    torch.randperm = rec_randperm
    torch.nn.functional.mse_loss = rec_mse
    torch.sort = rec_sort
    np.random.permutation = rec_permutation


# ---------------------------------------------------------------------------------------------------------
# The tiny inputs (built in the parent, read by every child)
# ---------------------------------------------------------------------------------------------------------
def make_real_data(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes of 12 noisy copies of a class prototype (an expert learns them in a few steps)."""
    prototypes = torch.randn(NUM_CLASSES, *IMAGE, generator=generator)
    labels = torch.arange(NUM_CLASSES).repeat(PER_CLASS)[torch.randperm(NUM_CLASSES * PER_CLASS, generator=generator)]
    images = prototypes[labels] + 0.8 * torch.randn(labels.numel(), *IMAGE, generator=generator)
    return images, labels


def train_trajectory(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, lr: float,
                     steps_per_epoch: int) -> list[list[torch.Tensor]]:
    """Snapshots (SNAPSHOTS of them, index 0 = initialisation) of full-batch SGD; explicit copies."""
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    snapshots = [[p.detach().clone() for p in net.parameters()]]
    for _ in range(SNAPSHOTS - 1):
        for _ in range(steps_per_epoch):
            loss = torch.nn.functional.cross_entropy(net(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        snapshots.append([p.detach().clone() for p in net.parameters()])
    return snapshots


def make_experts(convnet_cls: Any, images: torch.Tensor, labels: torch.Tensor) -> list[list[list[torch.Tensor]]]:
    """Expert 0 never sees class 2 (so the official initialisation has to switch to expert 1 for it, and
    the soft-label average has to skip expert 0 there); expert 1 sees everything."""
    trajectories = []
    for seed, mask in ((1, labels != 2), (2, torch.ones_like(labels, dtype=torch.bool))):
        torch.manual_seed(seed)
        net = convnet_cls(channel=IMAGE[0], num_classes=NUM_CLASSES, net_width=WIDTH, net_depth=DEPTH,
                          net_act="relu", net_norm="instancenorm", net_pooling="avgpooling", im_size=IMAGE[1:])
        trajectories.append(train_trajectory(net, images[mask], labels[mask], lr=0.05, steps_per_epoch=3))
    return trajectories


# ---------------------------------------------------------------------------------------------------------
# Child process: one official entry point
# ---------------------------------------------------------------------------------------------------------
def _tiny_convnet_factory(networks: Any) -> Any:
    def get_network(model: str, channel: int, num_classes: int, im_size: Any = (32, 32), dist: bool = True) -> Any:
        return networks.ConvNet(channel=channel, num_classes=num_classes, net_width=WIDTH, net_depth=DEPTH,
                                net_act="relu", net_norm="instancenorm", net_pooling="avgpooling", im_size=im_size)

    return get_network


def _tiny_dataset(workdir: Path) -> Any:
    data = torch.load(workdir / "data.pt")
    dst_train = [(img, int(lab)) for img, lab in zip(data["images"], data["labels"], strict=True)]
    identity = {c: c for c in range(NUM_CLASSES)}

    def get_dataset(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        return (IMAGE[0], IMAGE[1:], NUM_CLASSES, [str(c) for c in range(NUM_CLASSES)], [0.0], [1.0],
                dst_train, None, None, None, identity, identity)

    return get_dataset


def _skip_evaluation(*args: Any, **kwargs: Any) -> tuple[None, float, float]:
    return None, 0.0, 0.0


def run_distill(root: Path, script: Path, argv: list[str], workdir: Path, utils_name: str, mtt: bool = False,
                threshold_fix: bool = False) -> None:
    sys.path[:0] = [str(root), str(script.parent)]
    os.chdir(workdir)
    install_stubs()
    utils = importlib.import_module(utils_name)
    networks = importlib.import_module("networks")
    utils.get_dataset = _tiny_dataset(workdir)
    utils.get_network = _tiny_convnet_factory(networks)
    if mtt:
        utils.evaluate_synset = _skip_evaluation  # MTT evaluates at iteration 0; evaluation is not compared
        torch.Tensor.cuda = lambda self, *a, **k: self  # CPU fix: MTT's save block calls image_syn.cuda()
    if threshold_fix:
        # run fix 1 (PAD_SPEC section 6.1): PAD.py reads args.loss_threshold_low, utils/cfg.py never defines
        # it; the default 0.0 means "always apply loss_ratio"
        importlib.import_module("utils.cfg").CFG.loss_threshold_low = 0.0
    install_recorders()
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    sys.argv = [str(script), *argv]
    runpy.run_path(str(script), run_name="__main__")


def _pad_yaml(workdir: Path, extra: dict[str, Any]) -> list[str]:
    import yaml

    settings = {
        "dataset": DATASET, "model": MODEL, "ipc": IPC, "eval_mode": "S", "num_eval": 1, "eval_it": 100,
        "epoch_eval_train": 1, "Iteration": 0, "lr_img": 100.0, "lr_teacher": LR_TEACHER, "lr_lr": 1e-5,
        "lr_y": 2.0, "Momentum_y": 0.9, "batch_syn": BATCH_SYN, "pix_init": "samples_predicted_correctly",
        "dsa": False, "no_aug": True, "zca": False, "data_path": str(workdir), "buffer_path": str(workdir / "buffers"),
        "expert_epochs": EXPERT_EPOCHS, "syn_steps": SYN_STEPS, "min_start_epoch": 1, "max_start_epoch": 2,
        "current_max_start_epoch": 2, "Sequential_Generation": False, "threshold": 1.0e9,
        "skip_first_eva": True, "parall_eva": True,
        **extra,
    }
    path = workdir / "cfg.yaml"
    path.write_text(yaml.safe_dump(settings))
    return ["--cfg", str(path)]


def _mtt_argv(workdir: Path) -> list[str]:
    flags = {
        "dataset": DATASET, "model": MODEL, "ipc": IPC, "syn_steps": SYN_STEPS, "expert_epochs": EXPERT_EPOCHS,
        "max_start_epoch": 1, "lr_img": 100, "lr_lr": 1e-5, "lr_teacher": LR_TEACHER, "batch_syn": BATCH_SYN,
        "buffer_path": workdir / "buffers", "data_path": workdir, "dsa": "True", "no_aug": "True", "Iteration": 0,
        "eval_it": 100,
        "epoch_eval_train": 1, "num_eval": 1, "pix_init": "real",
    }
    return [item for key, value in flags.items() for item in (f"--{key}", str(value))]


def child_distill(variant: str, root: Path, workdir: Path) -> None:
    if variant == "pad_error":
        argv = _pad_yaml(workdir, {"loss_ratio": LOSS_RATIO})
        run_distill(root, root / "distill" / "PAD.py", argv, workdir, "utils.utils_baseline", threshold_fix=True)
        RECORD["keep"] = _official_error_keep()
    elif variant == "pad_depth":
        argv = _pad_yaml(workdir, {"depth_ratio": DEPTH_RATIO})
        run_distill(root, root / "distill" / "PAD_depth.py", argv, workdir, "utils.utils_baseline")
        total = RECORD["mse"][0][0].numel()
        # PAD_depth.py lines 565 and 575: loss_indices = torch.arange(len(param_losses));
        # keep_indices = loss_indices[int(args.depth_ratio * len(param_losses)):]
        RECORD["keep"] = torch.arange(total)[int(DEPTH_RATIO * total):]
    elif variant == "datm":
        run_distill(root, root / "distill" / "DATM.py", _pad_yaml(workdir, {}), workdir, "utils.utils_baseline")
    elif variant == "datm_real":  # DATM's other initialisation: random real images, expert 0's logits
        argv = _pad_yaml(workdir, {"pix_init": "real"})
        run_distill(root, root / "distill" / "DATM.py", argv, workdir, "utils.utils_baseline")
    elif variant == "mtt":
        run_distill(root, root / "distill.py", _mtt_argv(workdir), workdir, "utils", mtt=True)
    torch.save(RECORD, workdir / f"{variant}.record.pt")


def _official_error_keep() -> torch.Tensor:
    (loss_indices,) = RECORD["sort"]
    # PAD.py lines 560-562: _, loss_indices = torch.sort(param_losses);
    # keep_indices = loss_indices[int(args.loss_ratio * len(param_losses)):]
    return loss_indices[int(LOSS_RATIO * len(loss_indices)):]


# ---------------------------------------------------------------------------------------------------------
# Child process: buffer_CL.py's data scheduler (index selection only)
# ---------------------------------------------------------------------------------------------------------
class _StopAfterOneExpert(Exception):
    pass


SCHEDULES: dict[str, dict[str, Any]] = {
    # the official CIFAR-10 command (README): 100 epochs
    "official": dict(epochs=100, per_class=20, init_ratio=0.75, add_end_epoch=20, rm_epoch_first=40,
                     rm_epoch_second=60, rm_easy_ratio_first=0.1, rm_easy_ratio_second=0.2),
    # odd values, another class size: the fractions pad-sdk uses must land on the same epochs
    "odd": dict(epochs=25, per_class=17, init_ratio=0.6, add_end_epoch=7, rm_epoch_first=13,
                rm_epoch_second=17, rm_easy_ratio_first=0.15, rm_easy_ratio_second=0.3),
    # a class so small that int(p * n) is 0 in the first epoch
    "tiny_class": dict(epochs=10, per_class=3, init_ratio=0.3, add_end_epoch=2, rm_epoch_first=4,
                       rm_epoch_second=6, rm_easy_ratio_first=0.5, rm_easy_ratio_second=0.9),
}


def _load_buffer_cl(root: Path, per_class_fix: bool) -> dict[str, Any]:
    source = (root / "buffer" / "buffer_CL.py").read_text()
    if per_class_fix:
        assert source.count("data_size_by_class = 5000") == 1
        # CPU/run fix 2 (PAD_SPEC section 6.2): the real per-class count instead of CIFAR-10's 5000
        source = source.replace("data_size_by_class = 5000", "data_size_by_class = sorted_diff_indices.shape[1]")
    namespace: dict[str, Any] = {"__name__": "buffer_CL", "__file__": str(root / "buffer" / "buffer_CL.py")}
    exec(compile(source, str(root / "buffer" / "buffer_CL.py"), "exec"), namespace)
    return namespace


def _record_epochs(namespace: dict[str, Any], epochs: int, store: list[Any]) -> None:
    base = namespace["TensorDataset"]

    class RecordingDataset(base):  # type: ignore[misc, valid-type]
        def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
            # pixel (0, 0, 0) of every image holds its global index: the epoch's kept index set
            store.append(images[:, 0, 0, 0].round().long().clone())
            super().__init__(images, labels)

    def no_training(*args: Any, **kwargs: Any) -> tuple[float, float]:
        if len(store) == epochs and kwargs.get("dataloader") is not None and args[0] == "test":
            raise _StopAfterOneExpert
        return 0.0, 0.0

    namespace["TensorDataset"] = RecordingDataset
    namespace["epoch"] = no_training  # only the index selection is compared; training is skipped


def run_schedule(root: Path, name: str, per_class_fix: bool) -> dict[str, Any]:
    spec = SCHEDULES[name]
    namespace = _load_buffer_cl(root, per_class_fix)
    store: list[torch.Tensor] = []
    _record_epochs(namespace, spec["epochs"], store)
    namespace["get_network"] = lambda *a, **k: torch.nn.Linear(4, NUM_CLASSES)  # never trained here
    g = torch.Generator().manual_seed(7)
    n = NUM_CLASSES * spec["per_class"]
    labels = torch.arange(NUM_CLASSES).repeat(spec["per_class"])[torch.randperm(n, generator=g)]
    images = torch.zeros(n, 1, 2, 2)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.float32)
    # the difficulty order: per class a random order of its global indices (row = class, easiest first)
    orders = torch.stack([
        torch.nonzero(labels == c)[:, 0][torch.randperm(spec["per_class"], generator=g)] for c in range(NUM_CLASSES)
    ])
    args = types.SimpleNamespace(
        model=MODEL, lr_teacher=0.01, mom=0.0, l2=0.0, train_epochs=spec["epochs"], rho_max=0.01, rho_min=0.01,
        alpha=0.3, adaptive=True, batch_train=256, device="cpu", save_interval=10,
        **{k: v for k, v in spec.items() if k not in ("epochs", "per_class")},
    )
    error = None
    try:
        namespace["train"](0, args, 1, NUM_CLASSES, (2, 2), [0], images, labels, "test", "unused", orders)
    except _StopAfterOneExpert:
        pass
    except ValueError as exc:  # the shipped 5000 empties the data set in the removal phases
        error = f"{type(exc).__name__}: {exc} (after {len(store)} epochs)"
    return {"orders": orders, "epochs": store, "error": error, "spec": spec}


def child_schedule(root: Path, workdir: Path) -> None:
    sys.path[:0] = [str(root), str(root / "buffer")]
    install_stubs()
    out = {name: run_schedule(root, name, per_class_fix=True) for name in SCHEDULES}
    out["shipped_5000"] = run_schedule(root, "official", per_class_fix=False)
    torch.save(out, workdir / "schedule.record.pt")


# ---------------------------------------------------------------------------------------------------------
# Child process: the official ConvNet forward (via ReparamModule, as the distillation runs it) and the
# sequential-generation bound, evaluated from PAD.py's own source lines
# ---------------------------------------------------------------------------------------------------------
CONVNET_CASES = {"fmnist_28x28x1": (1, 28), "digits_8x8x1": (1, 8), "cifar_32x32x3": (3, 32)}
SEQGEN_CASES = {"c10_ipc10": (0, 10, 20, 1000, 1300), "c10_ipc50": (0, 20, 40, 2000, 2500), "odd": (1, 2, 7, 75, 90)}


def child_convnet(root: Path, workdir: Path) -> None:
    sys.path[:0] = [str(root)]
    install_stubs()
    networks = importlib.import_module("networks")
    reparam = importlib.import_module("reparam_module")
    out: dict[str, Any] = {}
    for name, (channels, size) in CONVNET_CASES.items():
        torch.manual_seed(3)
        net = networks.ConvNet(channel=channels, num_classes=NUM_CLASSES, net_width=WIDTH, net_depth=DEPTH,
                               net_act="relu", net_norm="instancenorm", net_pooling="avgpooling",
                               im_size=(size, size))
        names = [n for n, _ in net.named_parameters()]
        shapes = [list(p.shape) for p in net.parameters()]
        flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()]) + 0.1 * torch.randn(
            sum(p.numel() for p in net.parameters()))
        x = torch.randn(5, channels, size, size)
        model = reparam.ReparamModule(net)
        with torch.no_grad():
            logits = model(x, flat_param=flat)
        out[name] = {"names": names, "shapes": shapes, "flat": flat, "x": x, "logits": logits}
    torch.save(out, workdir / "convnet.record.pt")


def child_seqgen(root: Path, workdir: Path) -> None:
    source = (root / "distill" / "PAD.py").read_text()
    match = re.search(r"\n( +if args\.Sequential_Generation:\n.*?Upper_Bound = args\.max_start_epoch\n)", source,
                      re.DOTALL)
    assert match is not None, "PAD.py's sequential-generation block moved"
    block = compile(textwrap.dedent(match.group(1)), "PAD.py:Upper_Bound", "exec")
    out: dict[str, Any] = {"source": textwrap.dedent(match.group(1))}
    for name, (t_minus, t_now, t_plus, end, last) in SEQGEN_CASES.items():
        args = types.SimpleNamespace(Sequential_Generation=True, current_max_start_epoch=t_now,
                                     max_start_epoch=t_plus, expansion_end_epoch=end, min_start_epoch=t_minus)
        bounds = []
        for it in range(last + 1):
            scope: dict[str, Any] = {"args": args, "it": it}
            exec(block, {}, scope)
            bounds.append(scope["Upper_Bound"])
        out[name] = {"case": [t_minus, t_now, t_plus, end], "bounds": torch.tensor(bounds)}
    torch.save(out, workdir / "seqgen.record.pt")


# ---------------------------------------------------------------------------------------------------------
# Parent: build the inputs, run the children, turn their records into fixtures
# ---------------------------------------------------------------------------------------------------------
def _run_child(kind: str, root: Path, workdir: Path, log: list[str]) -> None:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--root", str(root),
           "--workdir", str(workdir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    log.append(f"$ {shlex.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    if proc.returncode != 0:
        raise RuntimeError(f"official run {kind} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")


def _git_head(root: Path) -> str:
    head = root / ".parity-commit"
    return head.read_text().strip() if head.exists() else "unknown (write the commit into <root>/.parity-commit)"


def build_inputs(pad_root: Path, workdir: Path) -> dict[str, torch.Tensor]:
    sys.path.insert(0, str(pad_root))
    networks = importlib.import_module("networks")
    images, labels = make_real_data(torch.Generator().manual_seed(0))
    trajectories = make_experts(networks.ConvNet, images, labels)
    torch.save({"images": images, "labels": labels}, workdir / "data.pt")
    buffer_dir = workdir / "buffers" / DATASET / MODEL
    buffer_dir.mkdir(parents=True)
    torch.save(trajectories, buffer_dir / "replay_buffer_0.pt")
    experts = torch.stack([torch.stack([torch.cat([p.reshape(-1) for p in snap]) for snap in traj])
                           for traj in trajectories])
    return {"real_images": images, "real_labels": labels, "experts": experts}


def _find_rows(rows: torch.Tensor, pool: torch.Tensor) -> list[int]:
    """Index into ``pool`` of every row of ``rows`` (exact equality)."""
    flat_pool = pool.reshape(pool.shape[0], -1)
    return [int(torch.nonzero((flat_pool == r.reshape(1, -1)).all(1))[0, 0]) for r in rows]


def _batches(perms: list[torch.Tensor], steps: int) -> list[torch.Tensor]:
    """The official minibatch sequence: chunks = list(torch.split(perm, batch_syn)); chunks.pop() per step."""
    perms, chunks, out = list(perms), [], []
    for _ in range(steps):
        if not chunks:
            chunks = list(torch.split(perms.pop(0), BATCH_SYN))
        out.append(chunks.pop())
    return out


def distill_fixture(record: dict[str, Any], inputs: dict[str, torch.Tensor], soft: bool) -> tuple[dict, dict]:
    steps = {rec["value"].dim(): rec for rec in record["sgd"]}  # images 4-D, labels 2-D, step size 0-D
    num_syn = NUM_CLASSES * IPC
    perms = [p for p in record["randperm"] if p.numel() == num_syn]
    (student, target), (start, target_again) = record["mse"]
    assert torch.equal(target, target_again)
    tensors: dict[str, torch.Tensor] = {
        "init_images": steps[4]["value"], "grad_images": steps[4]["grad"],
        "init_lr": steps[0]["value"].reshape(1), "grad_lr": steps[0]["grad"].reshape(1),
        "start": start, "target": target, "student": student,
        "loss": torch.tensor([record["wandb"]["Grand_Loss"]]),
    }
    for n, batch in enumerate(_batches(perms, SYN_STEPS)):
        tensors[f"batch_{n}"] = batch
    if soft:
        tensors["init_labels"] = steps[2]["value"]
        tensors["grad_labels"] = steps[2]["grad"]
    if "keep" in record:
        tensors["keep"] = record["keep"]
    experts = inputs["experts"]
    expert = next(i for i in range(experts.shape[0]) if any(torch.equal(start, s) for s in experts[i]))
    epoch = next(e for e in range(experts.shape[1]) if torch.equal(start, experts[expert, e]))
    meta = {"expert": expert, "start_epoch": epoch, "logged_start_epoch": record["wandb"]["Start_Epoch"],
            "loss": record["wandb"]["Grand_Loss"]}
    if soft:
        chosen = _find_rows(tensors["init_images"], inputs["real_images"])
        tensors["chosen"] = torch.tensor(chosen)
        class_perms = record["np_perm"][:NUM_CLASSES]
        for c, perm in enumerate(class_perms):
            tensors[f"class_perm_{c}"] = perm.long()
    return tensors, meta


def schedule_fixture(record: dict[str, Any]) -> tuple[dict, dict]:
    tensors, meta = {}, {}
    for name in SCHEDULES:
        rec = record[name]
        tensors[f"{name}.orders"] = rec["orders"]
        for e, kept in enumerate(rec["epochs"]):
            tensors[f"{name}.epoch_{e}"] = kept
        meta[name] = {"spec": rec["spec"], "epochs_recorded": len(rec["epochs"]), "error": rec["error"]}
    shipped = record["shipped_5000"]
    meta["shipped_5000"] = {
        "spec": shipped["spec"], "kept_per_epoch": [int(k.numel()) for k in shipped["epochs"]],
        "error": shipped["error"],
    }
    return tensors, meta


def save(name: str, tensors: dict[str, torch.Tensor]) -> None:
    """Tensors as JSON text (dtype, shape, flat values): exact for float32 and integers, and reviewable."""
    path = FIXTURES / f"{name}.json"
    encoded = {k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape),
                   "data": v.flatten().tolist()} for k, v in sorted(tensors.items())}
    path.write_text(json.dumps(encoded, separators=(",", ":")) + "\n")
    assert path.stat().st_size < 1_000_000, f"{path} is too large"


def parent(opts: argparse.Namespace) -> None:
    FIXTURES.mkdir(exist_ok=True)
    roots = {"pad_error": opts.pad, "pad_depth": opts.pad_depth, "datm": opts.datm, "datm_real": opts.datm,
             "mtt": opts.mtt}
    manifest: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", "tests/parity/make_fixtures.py", *sys.argv[1:]]),
        "torch": torch.__version__,
        "official_commits": {k: _git_head(v) for k, v in roots.items()},
        "problem": {"classes": NUM_CLASSES, "per_class": PER_CLASS, "ipc": IPC, "width": WIDTH, "depth": DEPTH,
                    "image": list(IMAGE), "syn_steps": SYN_STEPS, "batch_syn": BATCH_SYN,
                    "expert_epochs": EXPERT_EPOCHS, "lr_teacher": LR_TEACHER, "loss_ratio": LOSS_RATIO,
                    "depth_ratio": DEPTH_RATIO},
        "runs": {},
    }
    log: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pad-parity-") as tmp:
        workdir = Path(tmp)
        inputs = build_inputs(opts.pad, workdir)
        save("inputs", inputs)
        for variant, root in roots.items():
            _run_child(variant, root, workdir, log)
            record = torch.load(workdir / f"{variant}.record.pt")
            tensors, meta = distill_fixture(record, inputs, soft=variant != "mtt")
            save(variant, tensors)
            manifest["runs"][variant] = meta
        for kind in ("schedule", "convnet", "seqgen"):
            _run_child(kind, opts.pad, workdir, log)
        tensors, meta = schedule_fixture(torch.load(workdir / "schedule.record.pt"))
        save("schedule", tensors)
        manifest["runs"]["schedule"] = meta
        convnet = torch.load(workdir / "convnet.record.pt")
        save("convnet", {f"{case}.{k}": v for case, rec in convnet.items() for k, v in rec.items()
                         if isinstance(v, torch.Tensor)})
        manifest["runs"]["convnet"] = {case: {"names": rec["names"], "shapes": rec["shapes"]}
                                       for case, rec in convnet.items()}
        seqgen = torch.load(workdir / "seqgen.record.pt")
        save("seqgen", {case: rec["bounds"] for case, rec in seqgen.items() if case != "source"})
        manifest["runs"]["seqgen"] = {"source": seqgen["source"],
                                      **{case: rec["case"] for case, rec in seqgen.items() if case != "source"}}
    (FIXTURES / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if opts.log:
        Path(opts.log).write_text("\n".join(log))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pad", type=Path, help="work tree of NUS-HPC-AI-Lab/PAD at HEAD")
    parser.add_argument("--pad-depth", type=Path, help="work tree of NUS-HPC-AI-Lab/PAD at c04c9d5 (PAD_depth.py)")
    parser.add_argument("--datm", type=Path, help="work tree of NUS-HPC-AI-Lab/DATM")
    parser.add_argument("--mtt", type=Path, help="work tree of GeorgeCazenavette/mtt-distillation")
    parser.add_argument("--log", help="write the children's output here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child is None:
        parent(opts)
    elif opts.child == "schedule":
        child_schedule(opts.root, opts.workdir)
    elif opts.child == "convnet":
        child_convnet(opts.root, opts.workdir)
    elif opts.child == "seqgen":
        child_seqgen(opts.root, opts.workdir)
    else:
        child_distill(opts.child, opts.root, opts.workdir)


if __name__ == "__main__":
    main()
