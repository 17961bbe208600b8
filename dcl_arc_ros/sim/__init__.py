"""The simulator: scenes, rendering, sensor models and labels; ``generate.py`` writes them as rosbag2 bags."""
