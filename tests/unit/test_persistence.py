"""Checkpoint cache, results store, atomic writes."""

import pytest
import torch

from benchmark.store.atomic import atomic_write_text
from benchmark.store.checkpoints import CheckpointCache, CorruptCheckpoint, weights_digest


def test_checkpoint_round_trip(tmp_path):
    cache = CheckpointCache(tmp_path)
    state = {"net": {"w": torch.arange(4.0)}}
    cache.save("vae:arch=cnn", "abc", state, {"train_seconds": 1.5})
    loaded = cache.load("vae:arch=cnn", "abc")
    assert torch.equal(loaded.state["net"]["w"], state["net"]["w"])
    assert loaded.meta == {"train_seconds": 1.5, "config_hash": "abc"}
    assert cache.load("vae:arch=cnn", "other") is None
    assert list(tmp_path.iterdir()) == [cache.path("vae:arch=cnn", "abc")]


def test_corrupt_and_mismatched_checkpoints_are_detected(tmp_path):
    cache = CheckpointCache(tmp_path)
    cache.path("cnn", "k1").write_bytes(b"not a torch file")
    with pytest.raises(CorruptCheckpoint, match="cannot be read"):
        cache.load("cnn", "k1")
    cache.save("cnn", "k2", {}, {})
    cache.path("cnn", "k2").rename(cache.path("cnn", "k3"))
    with pytest.raises(CorruptCheckpoint, match="holds config k2, not k3"):
        cache.load("cnn", "k3")


def test_weights_digest_names_the_exact_weights_and_a_tampered_checkpoint_is_refused(tmp_path):
    state = {"net": {"w": torch.arange(4.0), "b": torch.zeros(2, dtype=torch.bfloat16)}, "steps": 3}
    digest = weights_digest(state)
    assert weights_digest({"steps": 3, "net": {"b": state["net"]["b"].clone(), "w": torch.arange(4.0)}}) == digest
    nudged = {**state, "net": {**state["net"], "w": torch.tensor([0.0, 1.0, 2.0, 3.0000002])}}
    reshaped = {**state, "net": {**state["net"], "w": torch.arange(4.0).reshape(2, 2)}}
    assert len({digest, weights_digest(nudged), weights_digest(reshaped), weights_digest({**state, "steps": 4})}) == 4
    cache = CheckpointCache(tmp_path)
    cache.save("cnn", "k", state, {"weights_sha256": digest})
    assert cache.load("cnn", "k").weights_sha256 == digest
    cache.save("cnn", "old", state, {})  # a checkpoint from before weight digests: computed when asked
    assert "weights_sha256" not in cache.load("cnn", "old").meta and cache.load("cnn", "old").weights_sha256 == digest
    torch.save({"state": nudged, "meta": {"config_hash": "k", "weights_sha256": digest}}, cache.path("cnn", "k"))
    with pytest.raises(CorruptCheckpoint, match="do not match the sha256 recorded"):
        cache.load("cnn", "k")


def test_checkpoints_refuse_pickled_code(tmp_path):
    cache = CheckpointCache(tmp_path)
    torch.save({"state": {}, "meta": {"config_hash": "k", "f": print}}, cache.path("cnn", "k"))
    with pytest.raises(CorruptCheckpoint):
        cache.load("cnn", "k")


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "file.txt"
    atomic_write_text(target, "old")

    class Boom(str):
        def encode(self, *args):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_text(target, Boom("new"))
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]
