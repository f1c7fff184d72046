"""Pure domain code shared by the till (``edge_agent``) and HQ (``sync_server``).

No I/O lives here: no sockets, files, databases, Qt or HTTP. ``tests/test_architecture.py``
enforces that, and that ``edge_agent`` and ``sync_server`` never import each other.

Modules, by domain concept:

- ``errors``: the one error hierarchy;
- ``barcodes``: GTINs, GS1 variable-measure codes, loyalty numbers, scan classification;
- ``money`` and ``tax``: integer minor units, VAT and sales tax with per-line rounding;
- ``identifiers``: customer identifiers and their normalization;
- ``hlc``: the hybrid logical clock for field-level last-writer-wins;
- ``wire``, ``catalogue``, ``customer``, ``sale``, ``receipt``, ``recommendations``: models;
- ``protocol``: the sync protocol's messages.
"""
