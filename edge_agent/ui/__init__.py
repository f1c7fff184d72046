"""The cashier's screen: pure-Python presenters (``presenters``, ``wedge``) and thin Qt widgets
(``main_window``) over them. Only the widget modules import Qt."""
