"""The steps' faster request validation still rejects what the SDK's own validation rejects."""

from __future__ import annotations

import warnings
from typing import Any

import jsonschema
import pytest
from clearml.backend_api.services import tasks
from clearml.backend_api.session import datamodel

from asteroid import tracking

with warnings.catch_warnings():
    # the first use of the SDK's API classes reads its configuration, with a bundled pyhocon that calls
    # pyparsing's deprecated names
    warnings.simplefilter("ignore", DeprecationWarning)
    EDIT_SCHEMA = tasks.EditRequest._schema


class EditRequestBody(datamodel.DataModel):
    """A body checked against the SDK's own ``tasks.edit`` request schema."""

    _schema = EDIT_SCHEMA

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def to_dict(self, only: Any = None, except_: Any = None) -> dict[str, Any]:
        return self.body


VALID = {"task": "0123", "force": True, "name": "renamed"}
INVALID = {"task": 5, "force": True}  # the schema wants a string id


@pytest.fixture
def fast_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The patched validation for one test; the SDK's own is restored afterwards."""
    monkeypatch.setattr(datamodel.DataModel, "validate", datamodel.DataModel.validate)
    tracking.skip_request_schema_checks()


def test_the_sdk_rejects_a_body_against_its_schema() -> None:
    EditRequestBody(VALID).validate()
    with pytest.raises(jsonschema.ValidationError, match="5 is not of type 'string'"):
        EditRequestBody(INVALID).validate()


@pytest.mark.usefixtures("fast_validation")
def test_valid_bodies_pass_and_invalid_ones_fail_with_the_same_error() -> None:
    assert datamodel.DataModel.validate.schema_checks_skipped
    for _ in range(2):  # the second time from the cached validator
        EditRequestBody(VALID).validate()
        with pytest.raises(jsonschema.ValidationError, match="5 is not of type 'string'"):
            EditRequestBody(INVALID).validate()
    with pytest.raises(jsonschema.ValidationError, match="'task' is a required property"):
        EditRequestBody({"force": True}).validate()


@pytest.mark.usefixtures("fast_validation")
def test_patching_twice_changes_nothing() -> None:
    patched = datamodel.DataModel.validate
    tracking.skip_request_schema_checks()
    assert datamodel.DataModel.validate is patched
