"""Exercise specs, one module per notebook (nb00.py for 00_orientation, ...).

A spec says how to build hidden cases and which invariants must hold; the expected answers come from
the reference solutions that `python -m utils.build` extracts from solutions/ into utils/reference/.
"""
