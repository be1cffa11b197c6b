"""``gs-backend camera-path``: scenario frames from COLMAP / nerfstudio cameras."""
