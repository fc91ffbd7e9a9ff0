"""File-drop sources: one code path (gateway.adapters.files.drop) over several transports.

- ``folder``: a local (or mounted) drop folder — the embedded default;
- ``sftp``: a remote folder over SFTP with pinned host keys;
- ``xml``: legacy XML from a local path, a folder or an HTTP(S) URL.
"""
