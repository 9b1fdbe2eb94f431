"""Training data shared by every worker of a node instead of copied into each.

:func:`share` turns :class:`~gnnrec.train.training_data.TrainingData` into plain numpy arrays for
``ray.put``; Ray keeps one copy per node in its shared-memory object store, and
:func:`unshare` in a worker maps that copy read-only (zero-copy) back into tensors.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from gnnrec.data.graph_store import CSR, EDGE_FIELDS, GraphStore
from gnnrec.data.hetero import GraphSchema
from gnnrec.train.training_data import TrainingData

PAGE = 4096


def share(data: TrainingData) -> dict[str, Any]:
    graph = data.graph
    arrays: dict[str, Any] = {
        "csr_indptr": graph.csr.indptr.numpy(),
        "csr_indices": graph.csr.indices.numpy(),
        **{f"csr_{k}": v for k, v in graph.csr.edge_fields(torch.Tensor.numpy).items()},
        "features": None if data.features is None else data.features.numpy(),
        "train": tuple(np.asarray(a) for a in data.train),
        "valid": tuple(np.asarray(a) for a in data.valid),
        "sizes": (graph.num_users, graph.num_items, graph.csr.num_cols),
        "schema": graph.schema.to_json(),
    }
    if not graph.symmetric:
        arrays.update(csc_indptr=graph.csc.indptr.numpy(), csc_indices=graph.csc.indices.numpy())
        arrays |= {f"csc_{k}": v for k, v in graph.csc.edge_fields(torch.Tensor.numpy).items()}
    return arrays


def _tensor(array: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():  # object-store arrays are read-only; nothing writes them
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def _optional(array: np.ndarray | None) -> torch.Tensor | None:
    return None if array is None else _tensor(array)


def unshare(arrays: dict[str, Any]) -> TrainingData:
    num_users, num_items, num_cols = arrays["sizes"]
    csr = CSR(
        _tensor(arrays["csr_indptr"]),
        _tensor(arrays["csr_indices"]),
        num_cols,
        **{f: _optional(arrays.get(f"csr_{f}")) for f in EDGE_FIELDS},
    )
    symmetric = "csc_indptr" not in arrays
    csc = (
        csr
        if symmetric
        else CSR(
            _tensor(arrays["csc_indptr"]),
            _tensor(arrays["csc_indices"]),
            num_cols,
            **{f: _optional(arrays.get(f"csc_{f}")) for f in EDGE_FIELDS},
        )
    )
    features = _optional(arrays["features"])
    return TrainingData(
        GraphStore(
            csr, csc, symmetric, num_users, num_items, GraphSchema.from_json(arrays["schema"])
        ),
        features,
        arrays["train"],
        arrays["valid"],
    )


def shared_arrays(arrays: dict[str, Any]) -> list[np.ndarray]:
    found = []
    for value in arrays.values():
        if isinstance(value, np.ndarray):
            found.append(value)
        elif isinstance(value, tuple):
            found.extend(v for v in value if isinstance(v, np.ndarray))
    return found


def touch_pages(arrays: dict[str, Any]) -> int:
    """Reads one byte of every page of every array (so they count as resident); returns the
    arrays' total bytes."""
    total = 0
    for array in shared_arrays(arrays):
        flat = array.reshape(-1).view(np.uint8)
        int(flat[::PAGE].sum())
        total += array.nbytes
    return total
