import json

import numpy as np
import pytest

from pc3d.io import atomic_save_npy, atomic_write, atomic_write_json, atomic_write_text


def test_round_trips(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(np.load(atomic_save_npy(tmp_path / "d" / "a.npy", a)), a)
    assert atomic_write_text(tmp_path / "t.txt", "héllo\n").read_text(encoding="utf-8") == "héllo\n"
    assert json.loads(atomic_write_json(tmp_path / "m.json", {"b": 1, "a": [1.5]}).read_text()) == {"a": [1.5], "b": 1}
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.npy", "d", "m.json", "t.txt"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = atomic_write_text(tmp_path / "keep.txt", "old")

    def half_write(tmp):
        tmp.write_text("partial")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(target, half_write)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
