"""Dispatch: claim due messages, ask the compliance gate, render, send, record."""
