"""The harness: cluster control, test configuration, the runner and the run store."""
