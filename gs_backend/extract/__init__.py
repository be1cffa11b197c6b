"""Instrument extraction from a raw orbit capture (DESIGN contract 7, paper section 2.2).

``auto``: the automatic method (no options); the manual controls (crop volumes, colour
keys) and the pipeline that combines them live beside it.
"""
