"""The live web console: watch, steer and question runs from a browser."""
