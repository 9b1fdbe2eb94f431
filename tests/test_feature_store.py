"""Feature gathering: the same rows wherever the features live, the hottest nodes from the
cache, the stored dtype kept."""

from __future__ import annotations

import pytest
import torch

from gnnrec.train.feature_store import FeatureStore


@pytest.mark.parametrize("placement", ["host", "pinned", "device"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cache_nodes", [0, 5])
def test_gather_returns_the_rows_asked_for(placement, dtype, cache_nodes):
    g = torch.Generator().manual_seed(0)
    features = torch.randn(40, 7, generator=g).to(dtype)
    degree = torch.randint(0, 50, (40,), generator=g)
    store = FeatureStore(
        features, "cpu", placement=placement, cache_nodes=cache_nodes, degree=degree
    )
    n_id = torch.tensor([3, 39, 0, 3, 17, 25, 8])
    out = store.gather(n_id)
    assert out.dtype == dtype and torch.equal(out, features[n_id])


def test_the_cache_holds_the_highest_degree_nodes():
    degree = torch.tensor([1, 9, 2, 8, 3, 7])
    store = FeatureStore(torch.arange(12.0).view(6, 2), "cpu", cache_nodes=3, degree=degree)
    store.gather(torch.tensor([1, 3, 5, 0]))  # 1, 3, 5 are the three hubs
    assert (store.hits, store.misses) == (3, 1)
    store.gather(torch.tensor([2, 4]))
    assert (store.hits, store.misses) == (3, 3)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="placement must be one of"):
        FeatureStore(torch.zeros(2, 2), "cpu", placement="disk")
    with pytest.raises(ValueError, match="pass degree"):
        FeatureStore(torch.zeros(2, 2), "cpu", cache_nodes=1)


def test_features_can_stay_in_a_memory_map(tmp_path):
    import warnings

    import numpy as np

    rows = np.arange(60, dtype=np.float32).reshape(20, 3)
    np.save(tmp_path / "features.npy", rows.astype(np.float16))
    mapped = np.load(tmp_path / "features.npy", mmap_mode="r")
    with warnings.catch_warnings():  # a read-only map: nothing writes it
        warnings.simplefilter("ignore", UserWarning)
        features = torch.from_numpy(mapped)
    degree = torch.arange(20)
    store = FeatureStore(features, "cpu", cache_nodes=4, degree=degree)
    out = store.gather(torch.tensor([19, 0, 5, 16]))
    assert out.dtype == torch.float16
    assert torch.equal(out.float(), torch.from_numpy(rows[[19, 0, 5, 16]]))
    assert (store.hits, store.misses) == (2, 2)  # 19 and 16 are among the 4 hubs
