"""Frozen copies of the simulator's label and sensor modules as they were before their fast paths.

The fast-path tests run these and the current modules on the same fixed inputs and require identical arrays, so a
speed-up can never change a label or a sensor reading unnoticed. They are references only: nothing imports them
outside the tests.
"""
