"""Camera-side runtime: sources, detector, tracker, zones, worker, supervisor."""
