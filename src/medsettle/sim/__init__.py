"""Seeded load and fault scenarios: bill streams for demos, tests and benchmarks."""

from .generate import BillStream, generate_bills

__all__ = ["BillStream", "generate_bills"]
