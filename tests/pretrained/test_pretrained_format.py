"""pc3d.pretrained: the safetensors format (round trip, float16 storage, build data in the metadata, no
pickle), ``pretrained:<name>`` resolution and its errors."""

from __future__ import annotations

import json

import pytest
import torch

from pc3d import pretrained
from pc3d.models.io import CheckpointError, load_model, read_build, torch_load
from pc3d.models.registry import config_to_build


def _tiny_autoencoder():
    cfg = {"model": {"_target_": "pc3d.models.Autoencoder", "latent_dim": 8,
                     "encoder": {"_target_": "pc3d.nn.PointNetEncoder", "latent_dim": 8},
                     "decoder": {"_target_": "pc3d.nn.FCDecoder", "latent_dim": 8, "n_points": 64}}}
    build = config_to_build(cfg)
    from pc3d.models.registry import build as build_spec

    torch.manual_seed(0)
    model = build_spec(build["model"], key="model").eval()
    return model, build


def test_round_trip_float16_and_build_data(tmp_path):
    model, build = _tiny_autoencoder()
    out = tmp_path / "tiny.safetensors"
    card = pretrained.save_pretrained(model.state_dict(), build, out, name="tiny", card={"metrics": {"x": 1.0}})
    assert card["sha256"] == pretrained.sha256(out) and card["bytes"] == out.stat().st_size
    assert json.loads(out.with_suffix(".json").read_text()) == card
    assert not list(tmp_path.glob("*.tmp*")) and sorted(p.name for p in tmp_path.iterdir()) == ["tiny.json",
                                                                                               "tiny.safetensors"]
    ck = torch_load(out)
    assert read_build(out)["model"] == build["model"]
    sd = model.state_dict()
    for k, v in sd.items():  # floats: exactly the float16 rounding, read back as float32; ints unchanged
        got = ck["state_dict"][k]
        assert got.dtype == (torch.float32 if v.is_floating_point() else v.dtype)
        ref = v.to(torch.float16).float() if v.is_floating_point() else v
        assert torch.equal(got, ref), k
    back = load_model(out)
    x = torch.rand(2, 64, 3)
    # the float16-rounded model against the original: close, not equal
    assert torch.allclose(back(x), model(x), atol=5e-3)
    # float32 storage is exact
    pretrained.save_pretrained(model.state_dict(), build, tmp_path / "f32.safetensors", name="f32", dtype=torch.float32)
    assert torch.equal(load_model(tmp_path / "f32.safetensors")(x), model(x))


def test_file_is_not_a_pickle_and_foreign_safetensors_are_refused(tmp_path):
    from safetensors.torch import save_file

    model, build = _tiny_autoencoder()
    out = tmp_path / "m.safetensors"
    pretrained.save_pretrained(model.state_dict(), build, out, name="m")
    raw = out.read_bytes()  # safetensors: 8-byte little-endian header size, a JSON header, raw tensor bytes
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    assert header["__metadata__"]["format"] == "pc3d-pretrained" and not raw.startswith(b"PK")  # not a torch zip
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"foreign\.safetensors: metadata: expected format='pc3d-pretrained'"):
        load_model(tmp_path / "foreign.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match=r"broken\.safetensors: not a readable safetensors file"):
        load_model(tmp_path / "broken.safetensors")
    # build data with code in it is refused like in a .ckpt
    bad = json.loads(json.dumps(build))
    bad["model"]["args"]["encoder"] = {"_target_": "os.system", "command": "true"}
    pretrained.save_pretrained(model.state_dict(), bad, tmp_path / "evil.safetensors", name="evil")
    with pytest.raises(CheckpointError, match="evil.safetensors"):
        load_model(tmp_path / "evil.safetensors")


def test_unknown_pretrained_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match=r"pretrained:nope: no such shipped model \(known: "):
        pretrained.path("pretrained:nope")
    with pytest.raises(ValueError, match="no such shipped model"):
        load_model("pretrained:../../etc/passwd")


def test_train_refuses_pretrained_resume(tmp_path):
    from pc3d.cli.train import train
    from tests.helpers import compose_train

    cfg = compose_train(["trainer.accelerator=cpu", "ckpt_path=pretrained:autoencoder"], tmp_path)
    with pytest.raises(ValueError, match=r"shipped weights cannot resume a fit.*model\.ae_ckpt_path"):
        train(cfg)


def test_export_only_writes_the_named_file(tmp_path, monkeypatch):
    # a run with only a gan stage: export --only lgan writes lgan.safetensors + card and never looks for
    # the ae / img stages (which would raise FileNotFoundError); the card metrics come from card_metrics
    import pc3d.cli.pretrained as cli
    from tests.models.test_lgan import fit_and_save, lgan_config, write_ae_ckpt

    ae = write_ae_ckpt(tmp_path, "fc")
    (tmp_path / "run" / "gan" / "checkpoints").mkdir(parents=True)
    model, _ = fit_and_save({"model": lgan_config(ae), "data": {"normalize": "none"}},
                            tmp_path / "run" / "gan" / "checkpoints" / "last.ckpt")
    (tmp_path / "run" / "summary.json").write_text(json.dumps(
        {"stages": {"gan": {"command": "pc3d-train experiment=lgan_synthetic", "seconds": 1.5}}}))
    monkeypatch.setattr(cli, "card_metrics", lambda path, name, root: {"mmd_cd": 0.25})
    out = tmp_path / "weights"
    cards = cli.export_run(tmp_path / "run", out, tmp_path, only=["lgan"])
    assert sorted(cards) == ["lgan"] and sorted(p.name for p in out.iterdir()) == ["lgan.json", "lgan.safetensors"]
    card = json.loads((out / "lgan.json").read_text())
    assert card["metrics"] == {"mmd_cd": 0.25} and card["command"] == "pc3d-train experiment=lgan_synthetic"
    assert card["training_seconds"] == 1.5 and card["sha256"] == pretrained.sha256(out / "lgan.safetensors")
    back = load_model(out / "lgan.safetensors")
    for k, v in model.state_dict().items():  # the stored weights: the run's, rounded to float16
        ref = v.to(torch.float16).float() if v.is_floating_point() else v
        assert torch.equal(back.state_dict()[k], ref), k
    with pytest.raises(ValueError, match=r"--only: unknown names \['gan'\]"):
        cli.export_run(tmp_path / "run", out, tmp_path, only=["gan"])
    with pytest.raises(FileNotFoundError, match="stage 'ae' has no checkpoint"):
        cli.export_run(tmp_path / "run", tmp_path / "w2", tmp_path)
