"""The integrity family: fixity canaries (fixity) and corruption injection."""
