"""Streaming readers and verified writers for labelled image datasets in object storage."""
