"""The simulated tape system: clock, catalogue, drive scheduling and RSE expressions."""
