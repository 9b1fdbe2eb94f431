"""The transformers encoder on the shipped all-MiniLM-L6-v2, and the feature cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gnnrec.encoders import EncoderConfig, FeatureCache, encoder_key
from gnnrec.encoders.cache import text_hash
from gnnrec.encoders.hf import TransformersEncoder

TEXTS = [
    "Title: Toy Story (1995). Genres: Animation, Comedy.",
    "A cosy cooking show about bread.",
    "",
    "space " * 400,
]


def _model_copy(tmp_path, encoder) -> Path:
    from pathlib import Path

    folder = tmp_path / "model"
    shutil.copytree(encoder.model_path, folder)
    return Path(folder)


@pytest.fixture(scope="module")
def encoder():
    return TransformersEncoder(EncoderConfig(batch_size=3))


def test_embeddings_are_normalised_and_match_sentence_transformers(encoder):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    ours = encoder.encode(TEXTS, progress=False)
    assert ours.shape == (4, 384)
    assert torch.allclose(ours.norm(dim=1), torch.ones(4), atol=1e-5)
    reference = sentence_transformers.SentenceTransformer(encoder.model_path, device="cpu")
    theirs = torch.from_numpy(reference.encode(TEXTS, normalize_embeddings=True))
    assert torch.nn.functional.cosine_similarity(ours, theirs).min() >= 0.999


def test_similar_texts_are_closer(encoder):
    a, b, c = encoder.encode(
        ["a film about space travel", "astronauts fly to the moon", "a recipe for sourdough bread"],
        progress=False,
    )
    assert a @ b > a @ c


def test_cache_encodes_each_text_once_and_survives_restarts(encoder, tmp_path):
    calls = []

    def counting(texts):
        calls.append(list(texts))
        return encoder.encode(texts, progress=False)

    cache = FeatureCache(tmp_path, encoder_key(encoder.config))
    first, n1 = cache.get_or_encode(TEXTS + [TEXTS[0]], counting)
    assert n1 == 4 and first.dtype == torch.float16 and torch.equal(first[0], first[4])
    second, n2 = FeatureCache(tmp_path, encoder_key(encoder.config)).get_or_encode(
        TEXTS[::-1], counting
    )
    assert n2 == 0 and len(calls) == 1
    assert torch.equal(second, first[:4].flip(0))
    _, n3 = cache.get_or_encode(["a new text", TEXTS[1]], counting)
    assert n3 == 1 and calls[-1] == ["a new text"]
    assert not list(cache.folder.glob(".*tmp"))  # temporary files were renamed into place


def test_torn_cache_is_not_trusted(encoder, tmp_path):
    cache = FeatureCache(tmp_path, "k")
    cache.get_or_encode(["x", "y"], lambda t: torch.ones(len(t), 2))
    np.save(cache.folder / "hashes.npy", np.load(cache.folder / "hashes.npy")[:1])
    features, encoded = cache.get_or_encode(["x", "y"], lambda t: torch.zeros(len(t), 2))
    assert encoded == 2 and torch.equal(features, torch.zeros(2, 2, dtype=torch.float16))


def test_missing_model_folder_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TransformersEncoder(EncoderConfig(model=str(tmp_path / "no-model")))


def test_pooling_options_and_truncation_count(encoder, tmp_path):
    """On a plain transformers folder (no sentence-transformers modules.json) every pooling
    is the user's to choose."""
    texts = ["short text", "word " * 600]
    before = encoder.truncated
    mean = encoder.encode(texts, progress=False)
    assert encoder.truncated - before == 1  # only the 600-word text exceeds 256 tokens
    plain = _model_copy(tmp_path, encoder)
    (plain / "modules.json").unlink()
    for pooling in ("cls", "last"):
        other = TransformersEncoder(
            EncoderConfig(model=str(plain), pooling=pooling, normalize=False)
        )
        pooled = other.encode(texts, progress=False)
        assert pooled.shape == mean.shape
        assert not torch.allclose(pooled, mean, atol=1e-3)
    keys = {encoder_key(EncoderConfig(model=str(plain), pooling=p)) for p in ("cls", "mean")}
    assert len(keys) == 2


def test_bfloat16_and_float32_storage(encoder, tmp_path):
    for dtype in (torch.bfloat16, torch.float32):
        cache = FeatureCache(tmp_path, "k", dtype=dtype)
        first, _ = cache.get_or_encode(TEXTS[:2], lambda t: encoder.encode(t, progress=False))
        again, encoded = FeatureCache(tmp_path, "k", dtype=dtype).get_or_encode(
            TEXTS[:2], lambda t: torch.zeros(len(t), 384)
        )
        assert first.dtype == again.dtype == dtype and encoded == 0
        assert torch.equal(first, again)


def _texts_whose_hash_ends_in_zero(count: int) -> list[str]:
    """Texts whose sha256 ends in 0x00 (about 1 in 256): the ones an ``S32`` cache lost."""
    found, n = [], 0
    while len(found) < count:
        text = f"text number {n}"
        if text_hash(text)[-1] == 0:
            found.append(text)
        n += 1
    return found


def test_every_text_is_found_again_also_hashes_ending_in_zero(tmp_path):
    texts = _texts_whose_hash_ends_in_zero(3) + ["plain", "another"]
    cache = FeatureCache(tmp_path, "k")
    first, encoded = cache.get_or_encode(texts, lambda t: torch.randn(len(t), 4))
    assert encoded == 5
    again, encoded = FeatureCache(tmp_path, "k").get_or_encode(texts, lambda t: 1 / 0)
    assert encoded == 0 and torch.equal(again, first)
    assert np.load(cache.folder / "hashes.npy").shape == (5, 32)


def test_a_cache_in_the_old_s32_format_is_read_whole(tmp_path):
    """Caches written before hashes were stored as bytes: every row is found, and rows the old
    bug appended twice for one text do not confuse the lookup."""
    texts = _texts_whose_hash_ends_in_zero(2) + ["plain"]
    cache = FeatureCache(tmp_path, "k")
    features = torch.arange(8, dtype=torch.float16).view(4, 2)
    cache.folder.mkdir(parents=True)
    old_keys = [text_hash(t) for t in texts] + [text_hash(texts[0])]  # one duplicate row
    np.save(cache.folder / "hashes.npy", np.array(old_keys, dtype="S32"))
    np.save(cache.folder / "features.npy", features.numpy())
    got, encoded = cache.get_or_encode(texts, lambda t: 1 / 0)
    assert encoded == 0 and torch.equal(got, features[:3])


def test_a_damaged_cache_is_named_and_rebuilt(tmp_path, caplog):
    cache = FeatureCache(tmp_path, "k")
    cache.get_or_encode(["x", "y"], lambda t: torch.ones(len(t), 2))
    (cache.folder / "features.npy").write_bytes(b"\x93NUMPY garbage")
    with caplog.at_level("WARNING", logger="gnnrec"):
        features, encoded = cache.get_or_encode(["x", "y"], lambda t: torch.zeros(len(t), 2))
    assert f"{cache.folder}: damaged feature cache" in caplog.text
    assert encoded == 2 and torch.equal(features, torch.zeros(2, 2, dtype=torch.float16))
    _, encoded = cache.get_or_encode(["x", "y"], lambda t: 1 / 0)
    assert encoded == 0  # the rebuilt cache is whole again


def test_a_cached_matrix_of_another_width_is_never_used(tmp_path, caplog):
    """features.npy swapped for another encoder's (other width) under this key: rebuilt, not
    handed to training; new texts of another width than the cache are an error naming it."""
    cache = FeatureCache(tmp_path, "k")
    cache.get_or_encode(["x", "y"], lambda t: torch.ones(len(t), 4))
    np.save(cache.folder / "features.npy", np.zeros((2, 3), dtype=np.float16))
    with caplog.at_level("WARNING", logger="gnnrec"):
        features, encoded = cache.get_or_encode(["x", "y"], lambda t: torch.ones(len(t), 4))
    assert "3,) wide but meta.json records 4" in caplog.text
    assert encoded == 2 and features.shape == (2, 4)
    with pytest.raises(ValueError, match="4 wide, the encoder gives 5"):
        cache.get_or_encode(["z"], lambda t: torch.ones(len(t), 5))
    assert cache.get_or_encode(["x"], lambda t: 1 / 0)[0].shape == (1, 4)  # left as it was


def test_the_cache_key_follows_the_weights_and_the_tokenizer(encoder, tmp_path):
    """A fine-tuned model with the base model's config.json (other weights) or another
    vocabulary gets another key, so it never reuses the base model's cached features."""
    folder = _model_copy(tmp_path, encoder)
    base = encoder_key(EncoderConfig(model=str(folder)))
    assert encoder_key(EncoderConfig(model=str(folder))) == base  # stable
    weights = folder / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 1  # one weight's last bit
    weights.write_bytes(bytes(raw))
    tuned = encoder_key(EncoderConfig(model=str(folder)))
    assert tuned != base
    with open(folder / "vocab.txt", "a") as f:
        f.write("[gnnrec]\n")
    assert encoder_key(EncoderConfig(model=str(folder))) not in (base, tuned)


@pytest.mark.parametrize(
    "setting, message",
    [
        (
            {"pooling": "cls"},
            "pools with pooling_mode_mean_tokens, but encoder.pooling is 'cls'; "
            "set encoder.pooling = 'mean'",
        ),
        ({"normalize": False}, "the model does normalise its embeddings"),
    ],
)
def test_a_sentence_transformers_folder_pooling_is_honoured(encoder, setting, message):
    with pytest.raises(ValueError, match=message):
        encoder_key(EncoderConfig(model=encoder.model_path, **setting))


def test_no_false_indexing_errors_warning_for_long_texts(encoder, capfd):
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.enable_propagation()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("transformers").addHandler(handler)
    try:
        encoder.encode(["space " * 1000], progress=False)
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    said = " ".join(r.getMessage() for r in records) + capfd.readouterr().err
    assert "indexing errors" not in said and encoder.truncated >= 1
