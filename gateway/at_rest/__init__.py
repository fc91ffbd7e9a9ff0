"""Encryption at rest with SM4-GCM: the envelope (envelope.py), the configured keys (keyring.py) and
the files the product stores itself, written sealed and re-encrypted under the current key (stored.py).

Shared by the gateway and the hub; it imports neither side.
"""
