"""Config values of the wrong type fail at composition, naming the key (issue 14)."""

from __future__ import annotations

import typing

import pytest
from hydra import compose, initialize_config_dir

from pc3d.cli._common import CONFIG_DIR
from pc3d.cli.config_types import check_config_types, simple_types


def _cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize("experiment", [None, "treegan_synthetic", "lgan_synthetic", "img2cloud", "ae_pretrain"])
def test_shipped_configs_pass(experiment):
    check_config_types(_cfg(*([f"experiment={experiment}"] if experiment else [])))


@pytest.mark.parametrize("debug", [None, "fdr"])
def test_a_string_epoch_count_is_refused_with_its_key(debug):
    cfg = _cfg("trainer.max_epochs=abc", *([f"debug={debug}"] if debug else []))
    with pytest.raises(ValueError, match=r"trainer\.max_epochs='abc': expected int or null \(Trainer\.__init__"):
        check_config_types(cfg)


def test_nested_network_arguments_are_checked():
    with pytest.raises(ValueError) as err:
        check_config_types(_cfg("model.latent_dim=x"))
    msg = str(err.value)
    for key in ("model.latent_dim='x'", "model.encoder.latent_dim='x'", "model.decoder.latent_dim='x'"):
        assert key in msg


def test_train_refuses_before_any_work(tmp_path):
    from pc3d.cli.train import train

    cfg = _cfg("trainer.max_epochs=abc", f"paths.output_dir={tmp_path / 'run'}")
    with pytest.raises(ValueError, match="trainer.max_epochs"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_simple_types_and_bool_int_rules():
    assert simple_types(int | None) == (int, type(None))
    assert simple_types(typing.Optional[typing.Union[int, float]]) == (int, float, type(None))  # noqa: UP007, UP045
    assert simple_types(list[int]) is None and simple_types(typing.Any) is None
    with pytest.raises(ValueError, match="expected int or null"):
        check_config_types(_cfg("trainer.max_epochs=true"))  # a bool is not an epoch count
    check_config_types(_cfg("trainer.limit_train_batches=2"))  # int where int | float is allowed
