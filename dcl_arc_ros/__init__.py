"""dcl_arc_ros: sim-to-real depth perception for ROS 2.

Layers (arrows point down; see docs/architecture.md):
``core`` (pure numpy) <- ``inference`` <- ``ros`` nodes / ``runner``; ``sim`` and ``data`` feed ``learning`` (torch).
"""

from __future__ import annotations

__version__ = "0.1.0"
