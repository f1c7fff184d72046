"""Stand-ins for the world around a till, for demos, tests and load.

Devices that speak the real protocols (a network receipt printer, a serial barcode scanner, an
SMTP sink, an SMS-gateway sink, a store of headless tills) and :mod:`hardware_sim.demo_data`, the
deterministic generator of a demo chain's stores, catalogue, customers, orders and web events
(``omnitill demo-data``).
"""
