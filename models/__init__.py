"""The models wing: the :class:`~gnnrec.models.recommender.Recommender` interface, layer-0
inputs, the layers (GCN, GAT, PyG conv adapters), the models (GCN with LightGCN and MF, GAT,
NCF) and :class:`~gnnrec.models.config.ModelConfig` with its registry. Importing the package
registers every model; a new one is a file with ``@register_model`` plus its import here."""

from gnnrec.models import gat, gcn, ncf  # noqa: F401  (each registers its models)
