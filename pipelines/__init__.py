"""Analytics rules over tracked detections (pure: no I/O, no clock reads)."""
