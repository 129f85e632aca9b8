"""clubfeed: a gap-free integration API for gym and studio data."""

__version__ = "0.1.0"
