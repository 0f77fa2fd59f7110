"""Compression, bias, acceptance and budget rules as validated, frozen objects."""
