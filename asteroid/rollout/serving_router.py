"""The canary route on the clearml-serving service, changed through its `ModelRequestProcessor` (the API its
CLI calls); every change printed as the equivalent `clearml-serving` command.

clearml-serving stores the service's `endpoints` and `canary` as separate configuration objects, written one
after the other by `serialize()`, and the inference app reads them one after the other at each sync. So that
no sync can see a torn configuration routing traffic where it should not:

- adding the challenger takes two updates: first the route is pinned to the champion (explicit endpoints,
  the challenger at weight 0: clearml-serving skips an endpoint it does not serve yet), then the challenger's
  endpoint is added — a prefix route (`--input-endpoint-prefix asteroid/`, as `serve.py` leaves it) would
  otherwise send everything to the new, highest version;
- a weight change writes the `canary` object alone: one configuration update;
- retiring the champion removes its endpoint and turns the route back to the prefix (the challenger is the
  highest version), so `serve.py` and the pipeline's release keep working as before.
"""

from __future__ import annotations

from typing import Any

import global_config
from asteroid.rollout.state import Version
from asteroid.serving import contract
from asteroid.serving.deploy import DeployError, Rollout, _add_version, cli, served_versions


class ServingRouter:
    def __init__(self, service_id: str, endpoint: str = global_config.SERVING_ENDPOINT) -> None:
        self.service_id, self.endpoint = service_id, endpoint

    def _processor(self) -> Any:
        from clearml_serving.serving.model_request_processor import ModelRequestProcessor

        processor = ModelRequestProcessor(task_id=self.service_id)
        processor.deserialize(skip_sync=True)
        return processor

    def champion(self) -> Version:
        """The version the endpoint serves now: the heaviest of an explicit route, else the highest."""
        processor = self._processor()
        versions = served_versions(processor, self.endpoint)
        if not versions:
            raise DeployError(
                f"service {self.service_id} serves no {self.endpoint}/<n> yet: `make serve` first"
            )
        canary = processor.get_canary_endpoints().get(self.endpoint)
        chosen = max(versions)
        if canary is not None and canary.load_endpoints:
            weights = dict(zip(canary.load_endpoints, canary.weights, strict=False))
            served = {f"{self.endpoint}/{n}": n for n in versions}
            routed = [(float(weight), url) for url, weight in weights.items() if url in served]
            if routed:
                chosen = served[max(routed)[1]]
        return Version(str(versions[chosen].model_id), chosen, f"{self.endpoint}/{chosen}")

    def add_challenger(self, model: Any, champion: Version) -> tuple[Version, list[str]]:
        """Serve `model` as the next version without traffic; (its version, the commands)."""
        processor = self._processor()
        versions = served_versions(processor, self.endpoint)
        if any(str(ep.model_id) == model.id for ep in versions.values()):
            raise DeployError(f"model {model.id} is served already on {self.endpoint}: nothing to roll out")
        number = max(versions, default=0) + 1
        challenger = Version(model.id, number, f"{self.endpoint}/{number}")
        commands = self.set_weight(champion, challenger, 0)
        processor = self._processor()
        result = Rollout(self.service_id, self.endpoint, model.id, number)
        _add_version(processor, result, model, contract.of_model(model))
        processor.serialize()
        return challenger, commands + result.commands

    def weight(self, champion: Version, challenger: Version) -> int | None:
        """The challenger's weight (%) on the route, None when the route is not the two of them."""
        canary = self._processor().get_canary_endpoints().get(self.endpoint)
        if canary is None or list(canary.load_endpoints or []) != [champion.url, challenger.url]:
            return None
        total = sum(float(w) for w in canary.weights)
        return round(100 * float(canary.weights[1]) / total) if total else None

    def set_weight(self, champion: Version, challenger: Version, challenger_weight: int) -> list[str]:
        from clearml_serving.serving.endpoints import CanaryEP

        if self.weight(champion, challenger) == challenger_weight:
            return []
        processor = self._processor()
        weights = [100 - challenger_weight, challenger_weight]
        processor.add_canary_endpoint(
            CanaryEP(endpoint=self.endpoint, weights=weights, load_endpoints=[champion.url, challenger.url])
        )
        processor.serialize()
        return [
            cli(self.service_id, "model", "canary", "--endpoint", self.endpoint, "--weights", *weights,
                "--input-endpoints", champion.url, challenger.url)
        ]  # fmt: skip

    def retire(self, champion: Version, challenger: Version) -> list[str]:
        from clearml_serving.serving.endpoints import CanaryEP

        processor = self._processor()
        if champion.url not in processor.get_endpoints():
            return []
        processor.remove_endpoint(champion.url)
        processor.remove_metric_logging(champion.url)
        prefix = f"{self.endpoint}/"
        processor.add_canary_endpoint(
            CanaryEP(endpoint=self.endpoint, weights=[1], load_endpoint_prefix=prefix)
        )
        processor.serialize()
        return [
            cli(self.service_id, "model", "remove", "--endpoint", champion.url),
            cli(self.service_id, "metrics", "remove", "--endpoint", champion.url),
            cli(self.service_id, "model", "canary", "--endpoint", self.endpoint, "--weights", 1,
                "--input-endpoint-prefix", prefix),
        ]  # fmt: skip
