"""Shared test set-up.

Every test session talks DDS on its own random domain and only over loopback, so concurrent runs on one machine never
see each other's traffic and nothing leaves the machine.
"""

from __future__ import annotations

import os
import random

os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
# Keep torch and OpenCV from oversubscribing the two cores that CI has.
os.environ.setdefault("OMP_NUM_THREADS", "2")
