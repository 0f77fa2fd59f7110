"""The Ray runtime gives the in-process results (1 worker), a valid 2-worker result, and S3 storage."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from ray_digits import CHECKPOINT_EVERY, ITERATIONS, Case, Reference, TwoWorkerRun

from pad_sdk.pipeline import Stages
from pad_sdk.runtime import resolve_runtime
from pad_sdk.runtime._ray_env import Storage
from pad_sdk.runtime.ray import RayRuntime, runtime_from_options


@pytest.mark.ray
@pytest.mark.slow
def test_one_worker_gives_the_in_process_result_bit_for_bit(two_nodes: Any, case: Case, reference: Reference,
                                                            tmp_path: Any) -> None:
    runtime = RayRuntime(num_workers=1, storage=str(tmp_path / "runs"), checkpoint_every=CHECKPOINT_EVERY)
    experts = runtime.train_experts(case.stages, case.plan, None)
    assert runtime.report.experts_trained == [0, 1]
    for index, expected in enumerate(reference.experts):
        assert torch.equal(experts[index], expected), f"expert {index} differs from the in-process one"

    synthetic, history = runtime.distill(case.stages, experts)
    assert torch.equal(synthetic.images, reference.synthetic.images)
    assert torch.equal(synthetic.label_logits, reference.synthetic.label_logits)
    assert torch.equal(synthetic.lr, reference.synthetic.lr)
    assert history == reference.history
    assert runtime.report.world_size == 1 and runtime.report.distill_restarts == []

    evaluation = runtime.evaluate_synthetic(case.stages, synthetic)
    assert evaluation.accuracies == reference.evaluation.accuracies
    assert _same(evaluation.per_class_recall, reference.evaluation.per_class_recall)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize(("workers", "completions"), [(1, [0, 2]), (2, [0, 1, 2])])
def test_one_task_trains_experts_together_with_each_one_following_its_own_trajectory(
        two_nodes: Any, case: Case, reference: Reference, tmp_path: Any, workers: int, completions: list[int]) -> None:
    """compute.experts_at_once on Ray: a group of experts goes to one task that trains them as one vectorised
    network; with more workers than that leaves busy, the groups shrink so that every worker gets one."""
    events: list[tuple[Any, ...]] = []
    config = case.stages.config
    stages = Stages(config.model_copy(update={"compute": config.compute.model_copy(update={"experts_at_once": 2})}),
                    case.stages.data, on_event=lambda *args, **kwargs: events.append((*args, kwargs.get("partial"))))
    runtime = RayRuntime(num_workers=workers, storage=str(tmp_path / "runs"))
    experts = runtime.train_experts(stages, case.plan, None)
    assert sorted(runtime.report.experts_trained) == [0, 1]
    for index, expected in enumerate(reference.experts):
        assert torch.allclose(experts[index], expected, atol=1e-4, rtol=1e-4)  # float rounding only
    assert [e[1] for e in events if e[0] == "experts" and e[3] is None] == completions  # per task, per expert
    assert all(0 < e[3] <= 2 for e in events if e[3] is not None)  # a running group's share counts its experts


@pytest.mark.ray
@pytest.mark.s3
@pytest.mark.slow
def test_two_workers_on_s3_skip_stored_experts_and_give_a_valid_set(two_worker_run: TwoWorkerRun,
                                                                   reference: Reference) -> None:
    run = two_worker_run
    # expert 0 was in the store already: not trained again (same object, same ETag); expert 1 was trained
    # by a Ray task into the store and equals the in-process expert
    assert run.runtime.report.experts_skipped == [0]
    assert run.runtime.report.experts_trained == [1]
    etag = run.storage_fs.info(f"{run.bucket}/trajectories/expert-00000.safetensors")["ETag"]
    assert etag == run.prefilled_etag
    assert run.store.completed() == [0, 1]
    assert torch.equal(run.store.load(1), reference.experts[1])

    # two segments per iteration: a different, valid condensed set of the same shape
    synthetic, history = run.synthetic, run.history
    assert run.runtime.report.world_size == 2
    assert [r.iteration for r in history] == list(range(ITERATIONS))
    assert all(math.isfinite(r.loss) for r in history)
    assert synthetic.images.shape == reference.synthetic.images.shape
    assert torch.isfinite(synthetic.images).all() and torch.isfinite(synthetic.label_logits).all()
    assert float(synthetic.lr) > 0
    assert torch.equal(synthetic.classes, reference.synthetic.classes)
    assert not torch.equal(synthetic.images, reference.synthetic.images)

    # checkpoints went to S3 under the run id
    prefix = f"{run.bucket}/runs/{run.runtime.run_id}/distill-ipc2"
    run.storage_fs.invalidate_cache()
    assert any(p.rsplit("/", 1)[-1].startswith("checkpoint_") for p in run.storage_fs.ls(prefix))


def test_settings_map_to_ray_and_validate(tmp_path: Any) -> None:
    runtime = RayRuntime(num_workers=3, resources_per_worker={"CPU": 2, "accelerator": 1}, use_gpu=False)
    assert runtime.cpus_per_worker == 2.0 and runtime.threads == 2
    assert runtime._task_options() == {"num_cpus": 2.0, "num_gpus": 0.0, "resources": {"accelerator": 1}}
    assert RayRuntime(use_gpu=True)._task_options()["num_gpus"] == 1.0
    assert RayRuntime().run_id != RayRuntime().run_id
    with pytest.raises(ValueError, match="run_id"):
        RayRuntime(run_id="../escape")
    with pytest.raises(ValueError):
        RayRuntime(num_workers=0)
    assert isinstance(resolve_runtime("ray"), RayRuntime)
    chosen = runtime_from_options("ray", workers=4, address="127.0.0.1:6379", run_id="nightly")
    assert (chosen.num_workers, chosen.address, chosen.run_id) == (4, "127.0.0.1:6379", "nightly")
    assert runtime_from_options(None).name == "local"
    with pytest.raises(ValueError, match="unknown runtime"):
        runtime_from_options("spark")


def test_storage_maps_local_paths_and_fsspec_urls_for_ray_train(tmp_path: Any) -> None:
    local_path, local_fs = Storage(str(tmp_path), {}).for_ray_train("run")
    assert local_path == str(tmp_path / "run") and local_fs is None and (tmp_path / "run").is_dir()
    path, filesystem = Storage("memory://pad-ray-test", {}).for_ray_train("run")
    assert path.endswith("pad-ray-test/run")
    assert type(filesystem).__name__ == "PyFileSystem"


def _same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x == y or (x != x and y != y) for x, y in zip(a, b, strict=True))


@pytest.mark.ray
def test_a_ray_plan_measures_worker_start_up_and_charges_it_where_it_is_paid(ray_nodes: Any, tmp_path: Any) -> None:
    import pad_sdk
    from pad_sdk.demo import load_digits_arrays
    from pad_sdk.runtime.ray import POOL_RESTART_STARTS, TRAINER_STARTS

    runtime = RayRuntime(num_workers=1, storage=str(tmp_path))
    costs = runtime.start_up_costs()
    assert costs.task_pool > 0.1  # fresh processes that import torch: never free
    assert costs.trainer == pytest.approx(TRAINER_STARTS * costs.task_pool)
    assert costs.pool_restart == pytest.approx(POOL_RESTART_STARTS * costs.task_pool)
    assert runtime.start_up_costs() is costs  # measured once per runtime
    images, labels, _ = load_digits_arrays()
    plan = pad_sdk.plan(images[:400], labels[:400], ipcs=[1, 2], preset="tiny", runtime=runtime)
    stage = {s.stage: s for s in plan.stages}
    assert stage["load"].seconds >= 0 and "fresh workers started" in stage["calibration"].work
    # the first tasks start the pool, each IPC's distillation is one trainer, the tasks after it restart the pool
    assert "worker start-up" in stage["scoring"].work and "worker start-up" not in stage["experts"].work
    assert stage["scoring"].seconds > costs.task_pool
    assert stage["distillation"].seconds > 2 * costs.trainer
    assert "worker pool restart" in stage["full_reference"].work  # IPC 1: right after its trainer
    assert "worker pool restart" in stage["evaluation"].work  # IPC 2: its full reference is shared with IPC 1
    local = pad_sdk.plan(images[:400], labels[:400], ipcs=[1, 2], preset="tiny")
    assert "start-up" not in local.stage("distillation").work  # type: ignore[union-attr]


@pytest.mark.ray
@pytest.mark.slow
def test_workers_report_each_iteration_and_stop_together_at_the_budget(two_nodes: Any, case: Case,
                                                                      reference: Reference, tmp_path: Any) -> None:
    from pad_sdk.errors import BudgetExhausted
    from pad_sdk.pipeline import Stages
    from pad_sdk.presets import preset_config
    from pad_sdk.progress import BudgetGuard, chain

    total, limit = 20_000, 40  # far more iterations than the budget lets run
    config = preset_config("tiny", 2, {"seed": 0, "distill": {"iterations": total}})
    events: list[tuple[int, float]] = []

    def record(stage: str, done: int, _total: int, **facts: Any) -> None:
        if stage == "distill":
            events.append((done, facts.get("loss", math.nan)))

    stages = Stages(config, case.stages.data, on_event=chain(record, BudgetGuard(max_iterations=limit)))
    runtime = RayRuntime(num_workers=2, storage=str(tmp_path / "runs"), checkpoint_every=10_000)
    synthetic, history = runtime.distill(stages, list(reference.experts))
    # the driver saw the workers' iterations as they ran, with their loss, as the in-process loop reports them
    seen = [done for done, _ in events]
    assert seen[0] == 0 and seen == sorted(seen) and any(0 < done < total for done in seen)
    assert all(math.isfinite(loss) for done, loss in events if done > 0)
    # the budget stopped both workers after the same iteration, with that iteration's checkpoint
    assert isinstance(stages.stopped, BudgetExhausted) and stages.stopped.budget == "budget.max_iterations"
    assert limit <= len(history) < total
    assert [r.iteration for r in history] == list(range(len(history)))
    assert runtime.report.world_size == 2 and torch.isfinite(synthetic.images).all()


@pytest.mark.ray
def test_tasks_report_the_share_of_their_epochs_between_completions(two_nodes: Any, case: Case,
                                                                   reference: Reference) -> None:
    from pad_sdk.pipeline import Stages
    from pad_sdk.presets import preset_config
    from pad_sdk.progress import fraction_done

    config = preset_config("tiny", 2, {"seed": 0, "evaluation": {"epochs": 1500, "seeds": 2}})
    events: list[tuple[int, int, dict[str, Any]]] = []
    stages = Stages(config, case.stages.data, on_event=lambda stage, done, total, **facts: events.append(
        (done, total, facts)) if stage == "evaluate" else None)
    with RayRuntime(num_workers=2) as runtime:
        result = runtime.evaluate(stages, stages.condensed_job(reference.synthetic))
    assert len(result.accuracies) == 2
    shares = [fraction_done(done, total, facts) for done, total, facts in events]
    # between the start and the two completions, the networks' epochs moved the stage along
    assert any(0 < share < 1 and "partial" in facts for share, (_, _, facts) in zip(shares, events, strict=True))
    assert shares[0] == 0 and shares[-1] == 1 and all(0 <= s <= 1 for s in shares)
    assert all(facts.get("what") == "condensed" for _, _, facts in events)
