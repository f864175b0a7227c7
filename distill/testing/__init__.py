"""Helpers for tests of distill and of code built on it (a scripted OpenAI-compatible server)."""
