"""Adapters for known drivers, registered through the kit's own hook like any other."""
