"""Grounding evaluation: ScreenSpot-format datasets, accuracy, and coordinate calibration."""
