"""sim/sensors."""
