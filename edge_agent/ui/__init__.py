"""The cashier's screen and the kiosk: pure-Python presenters (``presenters``, ``wedge``) and thin
Qt widgets (``main_window``, ``kiosk``) over them. Only the widget modules import Qt.

PySide6-Essentials is pinned below 6.12: 6.12.0 drops one reference to ``None`` each time Python
calls a Qt method that returns nothing, and on CPython 3.11 (where ``None`` is not immortal) the
screen aborts with "deallocating None" after a thousand-odd scans.
``tests/edge_agent/ui/test_none_refs.py`` fails on any PySide6 that does this.
"""
