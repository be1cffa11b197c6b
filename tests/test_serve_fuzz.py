"""Property-based fuzz of the sidecar's OpenAPI schema (schemathesis): no request, valid
by the schema or not, makes it answer 5xx, and every error has the contract's body.
Bounded in examples, not in time (deadline off; derandomized: every run sends the same
requests)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from gs_contract.sidecar import preview_request
from tests.scenario_factory import scenario_dict, write_assets
from tests.serve_helpers import AUTH, make_app

schema = schemathesis.openapi.from_asgi("/openapi.json", make_app())


@schema.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_request_makes_a_server_error(case) -> None:
    response = case.call(headers=AUTH)
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "field"}, body


# -- deeper: a valid preview request with one value replaced by an arbitrary JSON value


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=12)


def _leaf_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(node, dict):
        return [prefix] + [p for k, v in node.items() for p in _leaf_paths(v, (*prefix, k))]
    if isinstance(node, list):
        return [prefix] + [p for i, v in enumerate(node) for p in _leaf_paths(v, (*prefix, i))]
    return [prefix]


def _replacement(old: Any) -> st.SearchStrategy[Any]:
    """Mostly near misses of a number (zero, sign flip, tiny, huge, nearby), else anything."""
    if isinstance(old, (int, float)) and not isinstance(old, bool):
        near = st.sampled_from([0, -old, old * 2, old + 1e-3, old * 1e6, 1e-30, 2**31, -1])
        return st.one_of(near, near, st.floats(-1e6, 1e6), _JSON)
    return _JSON


@pytest.fixture(scope="module")
def valid_request(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    write_assets(folder / "assets")
    return preview_request(scenario_dict(2), 0, base_dir=folder, scale=0.25)


@pytest.fixture(scope="module")
def client():
    with TestClient(make_app(), raise_server_exceptions=False) as c:
        yield c


@given(data=st.data())
@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_mutated_preview_makes_a_server_error(client, valid_request, data) -> None:
    body = copy.deepcopy(valid_request)
    paths = [p for p in _leaf_paths(body) if p]
    path = data.draw(st.sampled_from(paths))
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = data.draw(_replacement(node[path[-1]]))
    r = client.post("/v1/preview", json=body, headers=AUTH)
    assert r.status_code < 500, (path, r.text)
    if r.status_code != 200:
        assert set(r.json()) == {"error", "field"}
