"""Test support: real services started on free ports, and small builders."""
