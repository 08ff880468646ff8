"""What the app holds for its routes: one typed object on `app.state`, read through one
accessor, instead of untyped `request.app.state.*` lookups."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from service.api.auth import KeyRing
from service.model.dataplane import DataPlane
from service.observe.metrics import Metrics
from service.settings import Settings


@dataclass(frozen=True)
class ServiceState:
    settings: Settings
    keys: KeyRing
    dataplane: DataPlane
    metrics: Metrics


def service_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state
