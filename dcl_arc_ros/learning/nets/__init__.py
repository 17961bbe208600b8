"""Networks; each module owns its config dataclass and PRESETS, indexed by :mod:`dcl_arc_ros.learning.registry`."""
