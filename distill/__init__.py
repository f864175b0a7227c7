"""distill: distil reasoning into small language models the way DeepSeek-R1 did."""

__version__ = "0.1.0"
