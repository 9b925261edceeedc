"""Issue 17's fault suite: faults caused against real servers on loopback."""
