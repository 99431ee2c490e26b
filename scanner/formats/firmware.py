"""Firmware back ends."""

EXTRACTORS: dict = {}
