"""DDP through torchrun: two CPU processes on gloo, each with batch B, follow the same loss curve as
one process with batch 2B (same data, same initial weights, per-image losses); a NaN on one rank
stops both ranks with the same message."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import yaml

torch = pytest.importorskip("torch")


def config(out, batch: int, text_cache: str) -> dict:
    return dict(
        # convnext_atto normalises with LayerNorm: no batch statistics, so a split batch is exactly
        # the whole batch (BatchNorm backbones use SyncBatchNorm on GPUs; on CPU each rank keeps its own).
        model=dict(arch="demo", backbone="convnext_atto", input_size=[64, 192]),
        data=dict(kind="synthetic", train_seeds=[0, 1], val_seeds=[], frames_per_seed=4, render_scale=1.25,
                  augment=dict(flip=0.5, scale=[0.8, 1.0], color=0.1)),
        text=dict(cache_dir=text_cache),
        # image path only: the text path draws per-rank noise, which is noise by design
        train=dict(epochs=0, max_steps=6, batch_size=batch, lr=5e-4, lr_end=1e-4, log_every=1,
                   checkpoint_every=100, schedule=dict(mode="step", p_text=0.0), seed=0, threads=1),
        output=dict(dir=str(out)))


def run(cmd, cwd, env):
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"


def losses(path):
    with open(path) as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh)]


@pytest.mark.slow
def test_two_gloo_processes_match_one_with_double_batch(tmp_path, project_dir):
    cache = str(tmp_path / "text")
    env = dict(os.environ, PYTHONPATH=str(project_dir), OMP_NUM_THREADS="1")
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text(yaml.safe_dump(config(tmp_path / "out1", 4, cache)))
    two.write_text(yaml.safe_dump(config(tmp_path / "out2", 2, cache)))
    run([sys.executable, "-m", "edepth_ros.cli", "train", "--config", str(one), "--no-progress"], project_dir, env)
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "edepth_ros.cli", "train", "--config", str(two), "--no-progress"], project_dir, env)
    a, b = losses(tmp_path / "out1" / "log.csv"), losses(tmp_path / "out2" / "log.csv")
    assert len(a) == len(b) == 6
    assert a[0] != a[-1]  # it trained
    for step, (x, y) in enumerate(zip(a, b), start=1):
        assert abs(x - y) <= 2e-3 * abs(x) + 1e-4, f"step {step}: 1 process {x} vs 2 processes {y}\n{a}\n{b}"
    print(f"loss curves, 1 process x batch 4: {a}\n2 gloo processes x batch 2: {b}")


# rank 1 alone sees a NaN loss at its second step (a broken frame on one process)
NAN_ON_RANK1 = '''
import os, sys
from edepth_ros.training import trainer
compute, calls = trainer.compute_losses, [0]
def poisoned(net, batch, path, tc, device):
    out = compute(net, batch, path, tc, device)
    calls[0] += 1
    if calls[0] == 2 and os.environ["RANK"] == "1":
        out["loss"] = out["loss"] * float("nan")
    return out
trainer.compute_losses = poisoned
from edepth_ros.cli import main
sys.exit(main())
'''


def test_nan_on_one_rank_stops_every_rank_with_the_message(tmp_path, project_dir):
    """Ranks agree on divergence: none is left waiting in a collective for a peer that quit."""
    env = dict(os.environ, PYTHONPATH=str(project_dir), OMP_NUM_THREADS="1")
    cfg = config(tmp_path / "out", 1, str(tmp_path / "text"))
    cfg["model"] = dict(arch="demo", input_size=[64, 192])
    cfg["data"].update(frames_per_seed=2, augment=None)
    cfg["train"].update(max_steps=4)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "nan_rank1.py").write_text(NAN_ON_RANK1)
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(tmp_path / "nan_rank1.py"), "train", "--config", str(tmp_path / "c.yaml"),
                          "--no-progress"], cwd=project_dir, env=env, capture_output=True, text=True, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "Connection closed by peer" not in out, out[-3000:]
    stops = [line for line in out.splitlines() if line.startswith("edepth train: ") and "training stopped" in line]
    assert len(stops) == 2, out[-3000:]  # one per rank, the same words
    assert stops[0] == stops[1] and "rank 1" in stops[0] and "step 1" in stops[0], stops
