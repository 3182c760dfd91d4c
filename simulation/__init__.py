"""Synthetic email-marketing world with known ground truth, and the event-log contract."""
