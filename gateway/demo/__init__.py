"""`gateway demo`: a sample department (SQLite database, drop folder, legacy XML), a local hub and the gateway."""
