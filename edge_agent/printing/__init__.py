"""Paper receipts at the till: printer profiles, ESC/POS rendering, connections and the print
journal.

- :mod:`~edge_agent.printing.profiles`: what a printer can do (columns, QR, cutter, code pages);
- :mod:`~edge_agent.printing.render`: a :class:`shared.receipt.Receipt` as ESC/POS bytes,
  written by python-escpos;
- :mod:`~edge_agent.printing.connections`: the printer chosen by URL (``tcp://``, ``serial://``,
  ``usb://``, ``file://``, ``none``), sending bytes and reading its status (DLE EOT);
- :mod:`~edge_agent.printing.jobs`: the worker that prints the ``print_jobs`` journal, never
  twice, and queues reprints (copies);
- :mod:`~edge_agent.printing.discovery`: network printers found with zeroconf.

A dead printer never blocks a sale: the sale and its print job are committed together, and the
job waits in the journal until the printer can print it.
"""

from __future__ import annotations

import logging


def _import_escpos_quietly() -> None:
    """Import python-escpos without its side effect on logging.

    ``escpos.capabilities`` calls ``logging.basicConfig()`` when imported. Imported before the
    application configures logging (the CLI resolves its subcommand, and so imports the till,
    before it sets logging up), that handler would make the application's own
    ``basicConfig(level=..., format=...)`` a no-op. The handler it adds is removed again.
    """
    before = list(logging.root.handlers)
    import escpos.capabilities  # noqa: F401

    for handler in logging.root.handlers[:]:
        if handler not in before:
            logging.root.removeHandler(handler)


_import_escpos_quietly()
