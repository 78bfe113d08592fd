"""Helpers of the randomized invariant test (tests/test_invariants.py): the world it drives
(world.py) and what it checks after every step (checks.py)."""
