"""Payments adapters: Stripe (stripe_gateway.py) and its in-memory twin (memory.py)."""
