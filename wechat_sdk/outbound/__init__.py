"""Outbound text: chunking long replies, markdown to plain text, streaming blocks."""
