"""The OpenAPI document's extra request-body schemas.

Two routes read their JSON body by hand because the same operation also takes a file
(``POST /v1/maps/{id}/assign``, ``POST /v1/catalogues/{kind}``), so FastAPI never sees the
pydantic model and does not put it in ``components``. Their ``openapi_extra`` refers to the
model by name; this adds those models (and the models they nest) to the document, so every
``$ref`` resolves and ReDoc and Swagger UI can show the bodies.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

_REF_TEMPLATE = "#/components/schemas/{model}"


def add_body_schemas(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Make ``app.openapi()`` hold the JSON schemas of ``models`` under their own names."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            known = schema.setdefault("components", {}).setdefault("schemas", {})
            _, extra = models_json_schema(
                [(m, "validation") for m in models], ref_template=_REF_TEMPLATE
            )
            for name, body in extra.get("$defs", {}).items():
                known.setdefault(name, body)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
