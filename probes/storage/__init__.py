"""The storage family: one endpoint, read and write (xrootd, webdav)."""
