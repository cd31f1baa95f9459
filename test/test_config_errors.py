"""Bad training configs are refused when the config loads, with the key path in the message, and
`edepth train` prints such errors as one line with a non-zero exit status instead of a traceback.
Relative model.pretrained_path resolves like the data paths (the project root), not the cwd."""

from __future__ import annotations

import argparse

import pytest
import yaml

from edepth_ros.training import TrainConfig, TrainConfigError


def base_config(out) -> dict:
    return dict(model=dict(arch="demo"), data=dict(kind="synthetic", train_seeds=[0]),
                train=dict(max_steps=1), output=dict(dir=str(out)))


def synthetic(**over) -> dict:
    return {"data": {"kind": "synthetic", "train_seeds": [0], **over}}


@pytest.mark.parametrize("patch, message", [
    ({"data": None}, "data: expected a mapping"),
    (synthetic(augment={"flipp": 0.5}), r"data\.augment\.flipp: unknown key"),
    (synthetic(augment={"flip": "often"}), r"data\.augment\.flip: expected a number in \[0, 1\]"),
    (synthetic(embodied={"inpaint_scal": 0.5}), r"data\.embodied\.inpaint_scal: unknown key"),
    (synthetic(embodied={"inpaint_scale": 2.0}), r"data\.embodied\.inpaint_scale: 2\.0; must be in \[0, 1\]"),
    (synthetic(frames_per_seed=0), r"data\.frames_per_seed: expected a positive integer"),
    ({"text": {"encoder": "clipp"}}, r"text\.encoder: expected 'sentence-transformers' .*got 'clipp'"),
    ({"train": {"max_steps": 1, "grad_clip": -1}}, r"train\.grad_clip: expected a positive number"),
    ({"train": {"max_steps": 1, "schedule": {"p_text": "0.1"}}}, r"train\.schedule\.p_text: expected a number"),
    ({"train": {"max_steps": 1, "lr": "1e-3"}}, r"train\.lr: .*got '1e-3'; write the number without quotes"),
    ({"model": {"arch": "demo", "fusion_dim": "64"}}, r"model\.fusion_dim: expected a positive integer, got '64'"),
    ({"output": {"dir": None}}, r"output\.dir: missing"),
    (synthetic(train_seeds={"start": "a", "count": 2}), r"data\.train_seeds\.start: expected an integer >= 0"),
    (synthetic(train_seeds={"count": -3}), r"data\.train_seeds\.count: expected an integer >= 1, got -3"),
    (synthetic(render_scale=0.05), r"data\.render_scale: expected a number >= 1"),
    (synthetic(embodied={"inpaint_scale": "a"}), r"data\.embodied\.inpaint_scale: expected a number, got 'a'"),
    ({"train": {"max_steps": 1, "seed": 2 ** 70}}, r"train\.seed: expected an integer in \[0, 2\*\*31 - 1\]"),
    # schedules that never train the image path, the one that is deployed
    ({"train": {"epochs": 2, "schedule": {"mode": "phases", "text_epochs": 5}}},
     r"train\.schedule\.text_epochs: 5 covers all 2 epochs"),
    ({"train": {"epochs": 2, "schedule": {"mode": "step", "p_text": 1.0}}}, r"train\.schedule\.p_text: 1\.0 makes every step"),
    ({"train": {"epochs": 2, "schedule": {"mode": "epoch", "text_every": 1}}}, r"train\.schedule\.text_every: 1"),
    # epoch 0 is always a text epoch: one epoch (any text_every) never reaches the image path
    ({"train": {"epochs": 1, "schedule": {"mode": "epoch", "text_every": 2}}},
     r"train\.schedule\.text_every: 2 with 1 epoch makes every epoch a text epoch"),
    # the loss uses only 0.1 m < gt < max_depth: below the floor nothing trains (was: loss 0, rc 0, model written)
    ({"model": {"arch": "demo", "max_depth": 0.05, "min_depth": 0.001}},
     r"model\.max_depth: 0\.05 m is at or below the loss's 0\.1 m floor"),
    ({"model": {"arch": "demo", "max_depth": 0.1, "min_depth": 0.001}}, r"model\.max_depth: 0\.1 m"),
    # scene seeds are 32-bit: 2**32 and -1 render the scenes of 0 and 2**32 - 1 (held-out leakage)
    (synthetic(train_seeds=[2 ** 32], val_seeds=[0]), r"data\.train_seeds: seed 4294967296 is outside \[0, 4294967295\]"),
    (synthetic(val_seeds=[-1]), r"data\.val_seeds: seed -1 is outside \[0, 4294967295\]"),
    (synthetic(train_seeds={"start": 2 ** 32 - 1, "count": 2}), r"data\.train_seeds: start 4294967295 \+ count 2 goes past"),
    # refused before the list is built (was: a bare MemoryError)
    (synthetic(train_seeds={"start": 0, "count": 10 ** 12}), r"data\.train_seeds\.count: 1000000000000 scenes is more than"),
])
def test_bad_values_are_named_at_load(tmp_path, patch, message):
    cfg = base_config(tmp_path / "out")
    cfg.update(patch)
    with pytest.raises(TrainConfigError, match=message):
        TrainConfig.from_dict(cfg)


def test_kitti_without_ground_truth_is_refused(tmp_path):
    """KittiDataset reads depth only from data.gt_root: without it, it would train on no ground truth."""
    (tmp_path / "raw").mkdir()
    (tmp_path / "split.txt").write_text("a/b.png c/d.png 721.5\n")
    kitti = {"kind": "kitti", "raw_root": str(tmp_path / "raw"), "train_split": str(tmp_path / "split.txt")}
    cfg = {**base_config(tmp_path / "out"), "data": kitti}
    with pytest.raises(TrainConfigError, match=r"data\.gt_root: missing"):
        TrainConfig.from_dict(cfg)
    cfg["data"] = {**kitti, "gt_root": str(tmp_path / "raw")}  # depth under the raw folder: fine
    assert TrainConfig.from_dict(cfg).data["gt_root"] == str(tmp_path / "raw")


def test_seeds_at_the_32_bit_ends_are_accepted(tmp_path):
    cfg = {**base_config(tmp_path / "out"), **synthetic(train_seeds=[0], val_seeds=[2 ** 32 - 1])}
    assert TrainConfig.from_dict(cfg).data["val_seeds"] == [2 ** 32 - 1]


@pytest.mark.parametrize("key", ["dir", "publish"])
def test_output_paths_that_are_files_are_refused_at_load(tmp_path, key):
    """Was: a FileExistsError traceback when training started (dir) or after the whole run (publish)."""
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    cfg = base_config(tmp_path / "out")
    cfg["output"][key] = str(afile)
    with pytest.raises(TrainConfigError, match=f"output\\.{key}: {afile}: a file, not a folder; give a folder"):
        TrainConfig.from_dict(cfg)
    cfg["output"][key] = str(afile / "sub")
    with pytest.raises(TrainConfigError, match=f"output\\.{key}: .*{afile} is a file, so nothing can be written"):
        TrainConfig.from_dict(cfg)


def test_a_key_given_twice_in_the_yaml_is_refused(tmp_path):
    """yaml.safe_load keeps the last of two values silently (lr 1e-3 ... lr 5e-4 trained at 5e-4)."""
    config = tmp_path / "dup.yaml"
    config.write_text(f"model: {{arch: demo}}\ndata: {{kind: synthetic, train_seeds: [0]}}\ntrain:\n"
                      f"  max_steps: 1\n  lr: 1.0e-3\n  lr_end: 1.0e-4\n  lr: 5.0e-4\noutput: {{dir: {tmp_path / 'o'}}}\n")
    with pytest.raises(TrainConfigError, match=r"dup\.yaml: train\.lr: given twice \(lines 5 and 7\)"):
        TrainConfig.load(config)
    # a YAML merge key may be overridden on purpose: not a duplicate
    config.write_text(f"description: &common {{lr: 1.0e-3, lr_end: 1.0e-4}}\nmodel: {{arch: demo}}\n"
                      f"data: {{kind: synthetic, train_seeds: [0]}}\ntrain:\n  <<: *common\n  max_steps: 1\n"
                      f"  lr: 5.0e-4\noutput: {{dir: {tmp_path / 'o'}}}\n")
    assert TrainConfig.load(config).train["lr"] == 5.0e-4


def test_relative_pretrained_path_is_relative_to_the_project_not_the_cwd(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    for folder in ("edepth_ros", "models", "weights"):
        (project / folder).mkdir(parents=True)
    (project / "weights" / "w.safetensors").write_bytes(b"only its existence is checked at load")
    config = project / "models" / "x.yaml"
    (project / "clip").mkdir()
    config.write_text(yaml.safe_dump({**base_config("runs/x"),
                                      "model": {"arch": "demo", "pretrained_path": "weights/w.safetensors"},
                                      "text": {"encoder": "clip", "model": "clip", "cache_dir": "cache/text"}}))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    cfg = TrainConfig.load(config)
    assert cfg.model.pretrained_path == str(project / "weights" / "w.safetensors")
    assert cfg.output == project / "runs" / "x"  # the same rule as every other path in the file
    assert cfg.text["model"] == str(project / "clip") and cfg.text["cache_dir"] == str(project / "cache" / "text")
    # the model-only loader (export, backends) resolves it the same way
    from edepth_ros.network import model_config

    assert model_config(config).pretrained_path == str(project / "weights" / "w.safetensors")


def test_a_schedule_without_image_steps_is_fine_without_a_text_vae(tmp_path):
    """(c), the model without the text VAE, takes only image steps whatever the schedule says."""
    cfg = {**base_config(tmp_path / "out"), "model": {"arch": "demo", "text_vae": False},
           "train": {"epochs": 2, "schedule": {"mode": "phases", "text_epochs": 5}}}
    assert TrainConfig.from_dict(cfg).train["schedule"]["text_epochs"] == 5


def _run_cli(config, max_steps=None):
    from edepth_ros.commands import train as command

    return command.run(argparse.Namespace(config=str(config), resume=False, output=None, max_steps=max_steps,
                                          no_progress=True))


@pytest.mark.parametrize("steps", [0, -1])
def test_cli_refuses_a_max_steps_that_trains_nothing(tmp_path, capsys, steps):
    """--max-steps -1 once wrote, and published, the untrained model at step 0."""
    config = tmp_path / "ok.yaml"
    config.write_text(yaml.safe_dump(base_config(tmp_path / "out")))
    assert _run_cli(config, max_steps=steps) == 2
    assert f"--max-steps: {steps} must be a positive number of steps" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_names_a_typo_and_exits_non_zero(tmp_path, capsys):
    config = tmp_path / "typo.yaml"
    config.write_text(yaml.safe_dump({**base_config(tmp_path / "out"),
                                      **synthetic(embodied={"inpaint_scal": 0.5})}))
    assert _run_cli(config) == 2
    assert "data.embodied.inpaint_scal: unknown key" in capsys.readouterr().err


def _error(kind: str) -> Exception:
    from edepth_ros.bags.io import BagError
    from edepth_ros.embodied import EmbodiedConfigError
    from edepth_ros.network import NetworkConfigError
    from edepth_ros.network.text import TextError
    from edepth_ros.training.augment import AugmentError

    return {"augment": AugmentError, "embodied": EmbodiedConfigError, "text": TextError,
            "network": NetworkConfigError, "bag": BagError}[kind](f"{kind}.key: what to do")


@pytest.mark.parametrize("kind", ["augment", "embodied", "text", "network", "bag"])
def test_cli_prints_errors_raised_after_load_without_a_traceback(tmp_path, capsys, monkeypatch, kind):
    """Errors found only once training starts (a CLIP folder, a weights file timm cannot read)."""
    import edepth_ros.training

    def failing_train(*args, **kwargs):
        raise _error(kind)

    monkeypatch.setattr(edepth_ros.training, "train", failing_train)
    config = tmp_path / "ok.yaml"
    config.write_text(yaml.safe_dump(base_config(tmp_path / "out")))
    assert _run_cli(config) == 2
    assert capsys.readouterr().err.strip() == f"edepth train: {kind}.key: what to do"
