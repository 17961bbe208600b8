"""DistributedDataParallel on CPU: 2 processes on gloo under torchrun; the replicas' weights stay equal."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import dataclasses, sys
    import torch
    torch.set_num_threads(1)
    from dcl_arc_ros.learning.config import DepthRange
    from dcl_arc_ros.learning.trainers.dcl import DCL_PRESETS, DataConfig, ToyDepthDataset, config_for_method, make_task
    from dcl_arc_ros.learning.trainers.loop import LoopConfig, init_distributed, run_training, seed_everything

    out, method, freeze = sys.argv[1], sys.argv[2], sys.argv[3] == "frozen"
    env = init_distributed("cpu")
    assert env.world_size == 2, env
    cfg = dataclasses.replace(config_for_method(DCL_PRESETS["tiny"], method), freeze_projector=freeze)
    cfg = dataclasses.replace(cfg, data=DataConfig(depth_range=DepthRange(0.0, 3.0)),
                              loop=LoopConfig(max_steps=3, batch_size=2, progress=False, checkpoint_every=3))
    seed_everything(1000 + env.rank)  # different initial weights per rank: DDP must broadcast rank 0's
    task = make_task(cfg)
    data = {"source": ToyDepthDataset(16, seed=1), "real": ToyDepthDataset(16, seed=2, real_like=True)}
    result = run_training(task, data, cfg.loop, out, run_config=cfg, dist_env=env)
    state = {name: {k: v.detach().clone() for k, v in module.state_dict().items()}
             for name, (_, module) in task.networks().items()}
    torch.save({"state": state, "history": result.history}, f"{out}/rank{env.rank}.pt")
    torch.distributed.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--nnodes",
        "1",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        *args,
    ]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "head"), [("dcl", "trained"), ("dcl", "frozen"), ("cyclegan", "-")])
def test_replicas_stay_equal_under_ddp(tmp_path: Path, method: str, head: str) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    proc = _torchrun(tmp_path, str(script), str(tmp_path), method, head)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    # The ranks trained on different shards (their losses differ) ...
    assert [h["loss"] for h in r0["history"]] != [h["loss"] for h in r1["history"]]
    # ... yet every trainable weight is identical after the averaged updates.
    for net, params in r0["state"].items():
        for key, value in params.items():
            if "running_" in key or "num_batches" in key:
                continue  # BatchNorm statistics are broadcast at the next forward, not after the last one
            torch.testing.assert_close(r1["state"][net][key], value, rtol=0, atol=1e-6, msg=f"{net}.{key}")
    assert (tmp_path / "checkpoints" / "latest.pt").is_file()


@pytest.mark.slow
def test_train_dcl_cli_runs_under_torchrun(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _torchrun(
        tmp_path,
        "training/train_dcl.py",
        "--config",
        "training/configs/dcl_tiny.yaml",
        "--out",
        str(out),
        "--set",
        "loop.max_steps=2",
        "--set",
        "loop.batch_size=2",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reached step 2" in proc.stdout
    assert (out / "checkpoints" / "latest.pt").is_file()
