"""Publishing a store: the static site, RobustBench-style JSON and the papers' published figures, from the frame
alone (no torch, no run)."""
