"""Protocol access only, no probe logic: HTTP/WebDAV, XRootD, perf markers, copy engines."""
