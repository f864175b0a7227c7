"""The tiny world: toy arithmetic problems with gold R1-style traces, a local tokenizer and tiny models."""
