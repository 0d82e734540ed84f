"""Shipped study profiles (YAML): demo, smoke, course."""
