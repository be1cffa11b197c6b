"""``gs-backend serve``: the backend as a long-lived local service (DESIGN contract 10).

- :mod:`.server`: start-up (device, socket, token file, ``listening`` line), signals;
- :mod:`.guard`: the bearer token and the request-size bound (ASGI middleware);
- :mod:`.app`: the FastAPI routes and the JSON error bodies;
- :mod:`.preview`: one frame as PNG through the render path, overlay and scale;
- :mod:`.asset_cache`: prepared assets in memory, bounded, least recently used out;
- :mod:`.jobs`: dataset renders as child ``gs-backend render --progress jsonl`` processes.

The message shapes are :mod:`gs_contract.sidecar`'s; ``docs/sidecar.md`` is the user's guide.
"""
