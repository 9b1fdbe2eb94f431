"""``gnnrec`` and ``python -m gnnrec``: the command line (:func:`gnnrec.cli.main`) in a process
set up for it first: large CPU tensors on huge pages (:mod:`gnnrec.common.huge_pages`), which
must be asked for before torch is imported."""

from __future__ import annotations

import sys

from gnnrec.common.huge_pages import use_huge_pages


def main() -> int:
    use_huge_pages()
    from gnnrec.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
