"""gnnrec: graph recommendation with LLM node features."""

__version__ = "0.1.0"
