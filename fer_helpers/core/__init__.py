"""Foundations every layer stands on: files written whole, Markdown, run profiles, a run's configuration, the machine it runs on, progress lines, and the paper's and the field's numbers."""
