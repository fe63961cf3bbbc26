"""What readers get: metrics.json, REPORT.md, the README's numbers, shipped models and their cards, the lesson's record, and predictions on one's own photos."""
