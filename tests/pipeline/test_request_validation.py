"""The steps' faster request validation still rejects what the SDK's own validation rejects."""

from __future__ import annotations

import jsonschema
import pytest
from clearml.backend_api.services import tasks
from clearml.backend_api.session import datamodel

from asteroid import tracking


@pytest.fixture
def fast_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The patched validation for one test; the SDK's own is restored afterwards."""
    monkeypatch.setattr(datamodel.DataModel, "validate", datamodel.DataModel.validate)
    tracking.skip_request_schema_checks()


def _invalid_request() -> tasks.EditRequest:
    request = tasks.EditRequest(task="0123", force=True)
    request._property_task = 5  # what a setter would refuse: the schema wants a string
    return request


def test_the_sdk_rejects_a_request_against_its_schema() -> None:
    with pytest.raises(jsonschema.ValidationError, match="5 is not of type 'string'"):
        _invalid_request().validate()


@pytest.mark.usefixtures("fast_validation")
def test_valid_requests_pass_and_invalid_ones_fail_with_the_same_error() -> None:
    assert datamodel.DataModel.validate.schema_checks_skipped
    tasks.EditRequest(task="0123", force=True).validate()
    tasks.GetAllRequest(id=["a", "b"], only_fields=["id"]).validate()
    for _ in range(2):  # the second time from the cached validator
        with pytest.raises(jsonschema.ValidationError, match="5 is not of type 'string'"):
            _invalid_request().validate()


@pytest.mark.usefixtures("fast_validation")
def test_patching_twice_changes_nothing() -> None:
    patched = datamodel.DataModel.validate
    tracking.skip_request_schema_checks()
    assert datamodel.DataModel.validate is patched
