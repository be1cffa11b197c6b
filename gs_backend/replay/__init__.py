"""``gs-backend replay``: a tracked recording (gs-recording v1) -> a gs-scenario.

The arithmetic lives in :mod:`gs_contract.recording`, shared with the Blender add-on;
this package is the command around it (:mod:`.command`).
"""
