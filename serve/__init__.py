"""Serving a trained run: the load-once handle, fold-in of new users and interactions."""
