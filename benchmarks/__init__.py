"""Benchmarks: each module has ``main(argv)`` and writes JSON to the folder given by ``--out``.

Run them all with ``python -m benchmarks.run_all --out benchmarks/results`` (``make bench``).
"""
