"""Schemathesis against the OpenAPI schema: every operation, generated requests, no 5xx,
and every 2xx answer is what the schema declares for it.

The service runs in-process (ASGI) on SQLite, seeded with a photometric and a
spectroscopic catalogue, a trained 6x6 map and a saved target list, and the generated ids
are steered onto those objects three times in four so that handlers run past their 404s.
DELETEs run last, so that the seeded objects serve every other operation first. Every request
carries a valid API key, so writes reach their validation and their handlers.

Training jobs are *recorded* but not *run* here: a generated ``POST /v1/maps`` may ask for a
500x500 map over 500 epochs, which is a legitimate request that takes minutes. The jobs
themselves are covered by test_api_flow, test_faults_and_races and test_worker; here the HTTP
edge is.

Every 2xx answer is validated against the response schema the OpenAPI document declares for
its status and content type, made strict: an object may hold only the properties its model
declares (``additionalProperties: false`` unless the model says otherwise), so a route that
sends a field its model lacks, or a value of the wrong type, fails the run.

Generation is derandomised (fixed seed from the test's name) and shrinking is off: the same
cases run every time, and each failure is reported once with a curl line to reproduce it.
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app

# Cases per operation and generation mode. Rendering a figure costs ~100x a JSON answer,
# so the PNG endpoint gets fewer; the total is asserted below.
# SOMCAL_FUZZ_EXAMPLES raises the count for a deeper run by hand (the same seed, more cases).
EXAMPLES = int(os.environ.get("SOMCAL_FUZZ_EXAMPLES", "28"))
EXAMPLES_SLOW = {"GET /v1/maps/{map_id}/plots/{kind}.png": max(EXAMPLES // 4, 8)}
MIN_TOTAL_CASES = 1000


def strict_schema(spec: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with every declared object closed: a component schema that lists
    its properties and says nothing about others gets ``additionalProperties: false``."""
    spec = copy.deepcopy(spec)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(spec.get("components", {}))
    close(spec.get("paths", {}))
    return spec


def nonconforming(
    spec: dict[str, Any], method: str, path: str, status: int, content_type: str, body: bytes
) -> str | None:
    """Why a 2xx answer is not what ``spec`` declares for it (None when it is)."""
    import jsonschema_rs

    op = spec["paths"][path][method.lower()]
    declared = op["responses"].get(str(status))
    if declared is None:
        return f"status {status} is not declared (declared: {sorted(op['responses'])})"
    ctype = content_type.split(";")[0].strip().lower()
    content = declared.get("content", {})
    if ctype not in content:
        return f"content type {ctype!r} is not declared for {status} (declared: {list(content)})"
    schema = content[ctype].get("schema")
    if ctype != "application/json" or schema is None:
        return None
    try:
        document = json.loads(body)
    except ValueError as exc:
        return f"not JSON: {exc}"
    validator = jsonschema_rs.Draft202012Validator(
        {**schema, "components": spec.get("components", {})}
    )
    errors = [
        f"{'/'.join(map(str, e.instance_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]
    return "; ".join(errors[:5]) or None


def _header(headers: Any, name: str) -> str:
    value = headers.get(name) or ""
    return value[0] if isinstance(value, list) else value  # schemathesis: lists of values


def _seed(harness, client, auth, mock_catalogue) -> dict[str, int]:
    phot = mock_catalogue(400, seed=41)
    r = harness.upload(client, auth, "photometric", phot, "phot.csv")
    assert r.status_code == 201, r.text
    cat_id = r.json()["id"]
    spec = mock_catalogue(400, seed=41, spec_fraction=0.3)
    r = harness.upload(
        client, auth, "spectroscopic", spec, "spec.csv", skip_missing_redshift="true"
    )
    assert r.status_code == 201, r.text
    spec_id = r.json()["id"]
    map_id, job = harness.train(client, auth, cat_id, timeout=120, n_rows=6, n_cols=6, n_epochs=3)
    job_id = job["id"]
    assert client.get(f"/v1/maps/{map_id}").json()["status"] == "ready"
    r = client.post(f"/v1/maps/{map_id}/target-lists", json={"budget": 5}, headers=auth)
    assert r.status_code == 201, r.text
    return {
        "catalogue_id": cat_id,
        "spec_id": spec_id,
        "map_id": map_id,
        "job_id": job_id,
        "list_id": r.json()["id"],
        "cell": 36,
    }


def _steer(params: dict, ids: dict[str, int]) -> None:
    """Point generated integer ids at seeded objects, three times in four (deterministic)."""
    for name, value in list(params.items()):
        if not isinstance(value, int) or isinstance(value, bool) or value % 4 == 0:
            continue
        if name == "cell":
            params[name] = value % (ids["cell"] + 4)  # a few past the last cell: 404
        elif name == "catalogue_id":
            params[name] = ids["catalogue_id"] if value % 2 else ids["spec_id"]
        elif name in ids:
            params[name] = ids[name]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_generated_requests_never_get_a_5xx(settings, auth, mock_catalogue, data_dir, harness):
    schemathesis = pytest.importorskip(
        "schemathesis", reason="schemathesis is not installed (pip install schemathesis)"
    )
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import settings as hsettings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.python import asgi

    # A real file in the data directory, so JSON {path} ingests can reach a reader.
    mock_catalogue(50, seed=42).to_csv(data_dir / "cat.csv", index=False)
    app = create_app(settings)
    with TestClient(app) as client:
        ids = _seed(harness, client, auth, mock_catalogue)
    started = []
    app.state.jobs.start = lambda job_id, fn, on_failure=None: started.append(job_id)

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    declared = strict_schema(app.openapi())
    counts: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: dict[str, str] = {}

    def run_operation(operation, mode) -> None:
        label = f"{operation.method.upper()} {operation.path}"
        n = EXAMPLES_SLOW.get(label, EXAMPLES)

        @hsettings(
            max_examples=n,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case) -> None:
            counts[label] += 1
            if case.path_parameters:
                _steer(case.path_parameters, ids)
            try:
                response = case.call(headers=dict(auth))
            except Exception as exc:  # noqa: BLE001 - an exception out of the app is a 500
                failures.setdefault(label, f"{type(exc).__name__}: {exc}\n{case.as_curl_command()}")
                return
            statuses[response.status_code] += 1
            problem = None
            if response.status_code >= 500:
                problem = f"{response.status_code}: {response.text[:300]}"
            elif 200 <= response.status_code < 300:
                # The answer is what the schema says: declared fields only, declared types.
                why = nonconforming(
                    declared,
                    operation.method,
                    operation.path,
                    response.status_code,
                    _header(response.headers, "content-type"),
                    response.content,
                )
                if why:
                    problem = f"{response.status_code} not as declared: {why}"
            elif response.status_code >= 400:
                # The error contract: JSON with a human-readable `detail`.
                try:
                    body = response.json()
                    if not isinstance(body.get("detail"), str) or not body["detail"]:
                        problem = f"{response.status_code} without a detail: {response.text[:200]}"
                except (ValueError, AttributeError):
                    problem = f"{response.status_code} not JSON: {response.text[:200]}"
            if problem:
                failures.setdefault(
                    f"{label} [{mode.value}]", f"{problem}\n{case.as_curl_command()}"
                )

        try:
            check()
        except Unsatisfiable:
            # Nothing to make invalid (e.g. GET /health has no parameters): negative mode
            # has no case to generate; the positive mode covered the operation.
            assert mode == GenerationMode.NEGATIVE, label

    try:
        operations = [result.ok() for result in schema.get_all_operations()]
        # DELETEs last: the seeded map and catalogues serve every other operation first.
        operations.sort(key=lambda op: op.method.upper() == "DELETE")
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                run_operation(operation, mode)
    finally:
        asgi.shutdown_lifespans()

    total = sum(counts.values())
    print(f"schemathesis: {total} cases over {len(counts)} operations; statuses {dict(statuses)}")
    for label, n in sorted(counts.items()):
        print(f"  {n:4d}  {label}")
    paths = set(app.openapi()["paths"])
    assert {label.split(" ", 1)[1] for label in counts} == paths
    assert not failures, json.dumps(failures, indent=1)
    assert total >= MIN_TOTAL_CASES, counts
    # The run reached the handlers, not only the validation layer.
    assert sum(v for k, v in statuses.items() if 200 <= k < 300) > total // 10, statuses


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_conformance_check_catches_undeclared_fields_and_wrong_types(
    client, auth, mock_catalogue, harness
):
    """The check the fuzzer applies to 2xx answers fails an answer with a field its model does
    not declare, or a value of the wrong type, and passes the real answers."""
    ids = _seed(harness, client, auth, mock_catalogue)
    spec = strict_schema(client.get("/openapi.json").json())
    path = "/v1/maps/{map_id}/cells/{cell}"
    r = client.get(f"/v1/maps/{ids['map_id']}/cells/3")
    ctype = r.headers["content-type"]
    assert nonconforming(spec, "get", path, 200, ctype, r.content) is None
    body = r.json()
    extra = json.dumps({**body, "surprise": 1}).encode()
    assert "surprise" in nonconforming(spec, "get", path, 200, ctype, extra)
    nested = json.dumps({**body, "weights": {**body["weights"], "surprise": 1}}).encode()
    assert "surprise" in nonconforming(spec, "get", path, 200, ctype, nested)
    wrong = json.dumps({**body, "n_phot": "many"}).encode()
    assert "n_phot" in nonconforming(spec, "get", path, 200, ctype, wrong)
    assert "not declared" in nonconforming(spec, "get", path, 201, ctype, r.content)
    png = "/v1/maps/{map_id}/plots/{kind}.png"
    assert "not declared" in nonconforming(spec, "get", png, 200, ctype, r.content)
    # The answers built by the service itself conform, NaN written as null.
    for url, p in (
        (f"/v1/maps/{ids['map_id']}/arrays", "/v1/maps/{map_id}/arrays"),
        (f"/v1/maps/{ids['map_id']}/cells?limit=50", "/v1/maps/{map_id}/cells"),
        (f"/v1/maps/{ids['map_id']}/targets?budget=5", "/v1/maps/{map_id}/targets"),
        (f"/v1/maps/{ids['map_id']}/gaps", "/v1/maps/{map_id}/gaps"),
        (f"/v1/maps/{ids['map_id']}/coverage", "/v1/maps/{map_id}/coverage"),
        ("/v1/bands", "/v1/bands"),
    ):
        r = client.get(url)
        assert r.status_code == 200, r.text
        assert nonconforming(spec, "get", p, 200, r.headers["content-type"], r.content) is None
        assert "NaN" not in r.text
    arrays = client.get(f"/v1/maps/{ids['map_id']}/arrays").json()["arrays"]
    assert None in arrays["zspec_median"]  # cells with no secure spectrum: null, not NaN


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cells_can_be_ordered_by_their_counts(client, auth, mock_catalogue, harness):
    """Found by the fuzzer: order=n_phot / n_spec_secure answered 500."""
    ids = _seed(harness, client, auth, mock_catalogue)
    url = f"/v1/maps/{ids['map_id']}/cells"
    every = client.get(url, params={"limit": 100}).json()["items"]
    for key in ("n_phot", "n_spec_secure"):
        r = client.get(url, params={"order": key, "limit": 100})
        assert r.status_code == 200, r.text
        got = [(c[key], c["cell"]) for c in r.json()["items"]]
        # Largest first, ties in cell order; the same cells as unordered.
        assert got == sorted(((c[key], c["cell"]) for c in every), key=lambda t: (-t[0], t[1]))
    assert len({c[key] for c in every}) > 1  # the order was not trivially the cell order
