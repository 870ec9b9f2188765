"""One test per private Lightning or torch name in ``finetune.trainer.compat``: each fails when an upgrade moves it."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torchmetrics import CatMetric, MeanMetric

from finetune.trainer import compat


def test_restore_loader_position_calls_the_fit_loops_restore() -> None:
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert callable(trainer.fit_loop._load_combined_loader_states)
    compat.restore_loader_position(trainer)  # no loader yet: Lightning's method returns without error


def test_materialize_loads_lazy_tensors(tmp_path) -> None:
    from lightning.fabric.utilities.load import _lazy_load

    torch.save({"state": [torch.arange(3)]}, tmp_path / "c.pt")
    lazy = _lazy_load(tmp_path / "c.pt")
    loaded = compat.materialize(lazy["state"])
    assert isinstance(loaded[0], torch.Tensor) and loaded[0].tolist() == [0, 1, 2]


def test_metric_state_names() -> None:
    assert set(compat.metric_state_names(MeanMetric())) == {"mean_value", "weight"}
    assert compat.metric_state_names(CatMetric()) == ["value"]


def test_cpu_has_amx_reads_torchs_probe() -> None:
    assert callable(torch.cpu._is_amx_tile_supported)
    assert compat.cpu_has_amx() == bool(torch.cpu._is_amx_tile_supported())


def test_is_compiled_sees_module_compile() -> None:
    net = torch.nn.Linear(2, 2)
    assert not compat.is_compiled(net)
    net.compile()
    assert compat.is_compiled(net)


def test_set_ddp_child_command_replaces_lightnings_hydra_hook() -> None:
    from lightning.fabric.strategies.launchers import subprocess_script as fabric_launcher
    from lightning.pytorch.strategies.launchers import subprocess_script as pytorch_launcher

    saved = fabric_launcher._hydra_subprocess_cmd, pytorch_launcher._hydra_subprocess_cmd

    def command(local_rank: int) -> tuple[list[str], str]:
        return ["echo", str(local_rank)], "/tmp"

    try:
        compat.set_ddp_child_command(command)
        assert fabric_launcher._hydra_subprocess_cmd is command and pytorch_launcher._hydra_subprocess_cmd is command
    finally:
        fabric_launcher._hydra_subprocess_cmd, pytorch_launcher._hydra_subprocess_cmd = saved


def test_unrepeated_sampler_gives_each_example_to_one_process() -> None:
    parts = [list(compat.unrepeated_sampler(list(range(7)), num_replicas=2, rank=r)) for r in (0, 1)]
    assert sorted(parts[0] + parts[1]) == list(range(7))


def test_lightning_precisions_include_the_common_ones() -> None:
    assert {"32", "bf16-mixed", "16-mixed", "32-true"} <= compat.lightning_precisions()


def test_ctrl_c_in_fit_leaves_as_keyboard_interrupt() -> None:
    """Lightning answers Ctrl-C with sys.exit(1); the wrapper turns it back, so run_task can record it."""
    import signal

    from lightning.pytorch.demos.boring_classes import BoringModel

    class CtrlC(pl.Callback):
        def on_train_batch_end(self, *args, **kwargs) -> None:
            raise KeyboardInterrupt

    trainer = pl.Trainer(
        max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False, callbacks=[CtrlC()]
    )
    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(KeyboardInterrupt), compat.ctrl_c_as_keyboard_interrupt(trainer):
            trainer.fit(BoringModel())
        assert trainer.interrupted
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_drop_wandb_anonymous_removes_lightnings_default(tmp_path) -> None:
    from lightning.pytorch.loggers import WandbLogger

    logger = WandbLogger(save_dir=str(tmp_path), offline=True)
    assert "anonymous" in logger._wandb_init  # what wandb warns about
    compat.drop_wandb_anonymous(logger)
    assert "anonymous" not in logger._wandb_init and logger._wandb_init["dir"] == str(tmp_path)
