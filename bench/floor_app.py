"""The floor: a bare FastAPI app that parses the same body with a pydantic model and returns a
constant. Served by the same Gunicorn + Uvicorn worker as the service, it is the fastest any
service of this shape can be on this machine."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI
from pydantic import BaseModel, Field


class Body(BaseModel):
    features: Annotated[list[float], Field(min_length=30, max_length=30)]


app = FastAPI()


@app.post("/predict")
async def predict(body: Body) -> dict[str, object]:
    return {"fraud_probability": 0.0, "is_fraud": False}
