"""Node features gathered onto the training device, with the hottest rows cached there.

Features ``[N, F]`` (any float dtype; bf16/fp16 halve the bytes) stay where they are put: on the
device, in pinned host memory (read in place by the GPU), or in ordinary or memory-mapped host
memory. ``cache_nodes`` rows, chosen by degree (the nodes neighbor sampling reaches most), are
copied to the device once; a gather serves those from the cache and the rest from the host.
"""

from __future__ import annotations

import torch

PLACEMENTS = ("host", "pinned", "device")


def rows_on(table: torch.Tensor, index: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Rows ``index`` of ``table`` on ``device``: a pinned host table is read in place by the
    GPU (:func:`~gnnrec.kernels.gather.gather_rows`: only the rows cross PCIe, no host work);
    any other is indexed where it is and the rows copied."""
    if table.device == device:
        return table.index_select(0, index)  # twice as fast as table[index] on the CPU
    if device.type == "cuda" and table.is_pinned():
        from gnnrec.kernels.gather import gather_rows

        return gather_rows(table, index.to(device))
    return table.index_select(0, index.to(table.device)).to(device)


class FeatureStore:
    def __init__(
        self,
        features: torch.Tensor,
        device: torch.device | str,
        *,
        placement: str = "host",
        cache_nodes: int = 0,
        degree: torch.Tensor | None = None,
    ):
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
        if cache_nodes and degree is None:
            raise ValueError("a feature cache chooses its nodes by degree: pass degree")
        self.device = torch.device(device)
        if placement == "device":
            features = features.to(self.device)
        elif placement == "pinned" and torch.cuda.is_available():
            features = features.contiguous().pin_memory()
        self.features, self.placement = features, placement
        self.slot = None
        self.cache = None
        if cache_nodes and placement != "device":
            hot = torch.topk(degree, min(cache_nodes, degree.numel())).indices
            self.slot = torch.full((features.shape[0],), -1, dtype=torch.int64, device=self.device)
            self.slot[hot.to(self.device)] = torch.arange(hot.numel(), device=self.device)
            self.cache = self._from_host(hot.to(self.device))
        self.hits = self.misses = 0

    def _from_host(self, index: torch.Tensor) -> torch.Tensor:
        return rows_on(self.features, index, self.device)

    def gather(self, n_id: torch.Tensor) -> torch.Tensor:
        """Rows ``n_id`` ``[n]`` -> ``[n, F]`` on the device, in the stored dtype."""
        n_id = n_id.to(self.device)
        if self.placement == "device":
            return self.features[n_id]
        if self.slot is None:
            self.misses += n_id.numel()
            return self._from_host(n_id)
        position = self.slot[n_id]
        hit = position >= 0
        out = torch.empty(
            (n_id.numel(), self.features.shape[1]), dtype=self.features.dtype, device=self.device
        )
        out[hit] = self.cache[position[hit]]
        out[~hit] = self._from_host(n_id[~hit])
        found = int(hit.sum())
        self.hits, self.misses = self.hits + found, self.misses + n_id.numel() - found
        return out
