"""The send pipeline: audience, render, outbox, delivery, unsubscribe and preferences."""
