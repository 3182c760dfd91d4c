"""Algorithmic Inbox: command line and settings."""
