"""How the CLI reports a failure: one line that names the file, key or address and says what
to do (the traceback only with ``--debug``)."""

from __future__ import annotations


def explain(err: BaseException) -> str:
    """One line for a failure at the CLI boundary: what went wrong, naming the file, key or
    address, and what to do."""
    if isinstance(err, IsADirectoryError | NotADirectoryError | FileNotFoundError):
        kind = {IsADirectoryError: "is a folder, not a file", NotADirectoryError: "is not a folder"}
        what = kind.get(type(err), "does not exist")
        return f"{err.filename}: {what}" if err.filename else str(err)
    if isinstance(err, PermissionError):
        return f"{err.filename or 'a file'}: permission denied (is the folder writable?)"
    if isinstance(err, ConnectionError | TimeoutError):
        return f"cannot connect: {err} (is the cluster running, and the address right?)"
    if isinstance(err, OSError) and type(err).__name__ == "URLError":
        return f"download failed: {err.reason} (check data.path and the network)"
    if isinstance(err, ImportError):
        return str(err)
    if isinstance(err, OSError):
        where = f"{err.filename}: " if err.filename else ""
        return f"{where}{err.strerror or err}"
    return str(err)
