"""Where numpy stops paying for itself.

The serving path decides one contact per request. For a handful of rows a
numpy call's fixed overhead (about 1 us each, a dozen calls per step) costs
more than the arithmetic, so the per-decision steps (SplitMix64 keys and
uniforms, the inverse-CDF draw, the log rows) take a plain-Python path for
batches of at most `LIMIT` rows. Each small path computes the same IEEE-754
operations in the same order as its vectorized twin, so both give identical
bits (tested by forcing `LIMIT = 0`).
"""
LIMIT = 16
