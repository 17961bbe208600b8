"""Parameter schemas as data: validation, coercion, descriptors, and the table the runner prints."""

from __future__ import annotations

import pytest

from dcl_arc_ros.core.camera import DEFAULT_WORKING_WIDTH
from dcl_arc_ros.ros.errors import ParameterError
from dcl_arc_ros.ros.params import (
    DEPTH_CLEANER,
    GRASP_DETECTOR,
    NODE_SCHEMAS,
    POSE_ESTIMATOR,
    NodeSchema,
    ParamSpec,
    backend_options,
    descriptor_for,
    schema_for,
    validate_value,
)


def test_ints_are_accepted_for_floats_but_bools_are_not_ints() -> None:
    spec = ParamSpec("period", float, 1.0, "a period", range=(0.0, 10.0))
    assert validate_value(spec, 3, node="n") == 3.0
    with pytest.raises(ParameterError, match=r"n\.count = True: expected a int"):
        validate_value(ParamSpec("count", int, 1, "a count"), True, node="n")


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        (
            ParamSpec("slop", float, 0.1, "d", range=(0.0, 1.0)),
            1.5,
            r"node\.slop = 1\.5 is out of range \[0\.0, 1\.0\]",
        ),
        (ParamSpec("slop", float, 0.1, "d"), float("nan"), "NaN"),
        (ParamSpec("qos", str, "a", "d", choices=("a", "b")), "c", r"node\.qos = 'c' is not one of: a, b"),
        (ParamSpec("names", list, [], "d"), ["a", 1], "list of strings"),
        (ParamSpec("flag", bool, True, "d"), "yes", "expected a bool, got a str"),
    ],
)
def test_bad_values_name_the_parameter_and_the_value(spec: ParamSpec, value: object, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        validate_value(spec, value, node="node")


def test_schemas_reject_inconsistent_specs() -> None:
    with pytest.raises(TypeError, match="range only applies"):
        ParamSpec("name", str, "", "d", range=(0, 1))
    with pytest.raises(ParameterError, match="out of range"):
        ParamSpec("bad_default", int, 5, "d", range=(0, 1))
    with pytest.raises(ValueError, match="duplicate"):
        NodeSchema("x", (ParamSpec("a", int, 1, "d"), ParamSpec("a", int, 1, "d")))


def test_unknown_parameter_lists_the_known_ones() -> None:
    with pytest.raises(ParameterError, match="fill_holes"):
        DEPTH_CLEANER.validate({"fil_holes": True})


def test_descriptor_carries_description_type_and_range() -> None:
    descriptor = descriptor_for(DEPTH_CLEANER.spec("no_input_warn_s"))
    assert "no input" in descriptor.description.lower()
    assert descriptor.floating_point_range[0].from_value == 0.0
    assert descriptor.read_only


def test_every_schema_is_listed_with_every_parameter() -> None:
    assert schema_for("depth_cleaner") is DEPTH_CLEANER
    table = DEPTH_CLEANER.table()
    for name in DEPTH_CLEANER.names():
        assert name in table
    assert set(NODE_SCHEMAS) >= {"depth_cleaner"}
    with pytest.raises(ParameterError, match="no parameter schema"):
        schema_for("teleporter")


def test_threads_reach_only_backends_that_understand_them() -> None:
    assert backend_options({"backend": "onnxruntime", "threads": 1}) == {"intra_op_num_threads": 1}
    assert backend_options({"backend": "onnxruntime", "threads": 0}) == {}
    assert backend_options({"backend": "tensorrt", "threads": 4}) == {}


def test_the_working_width_parameters_default_to_the_core_constant() -> None:
    assert GRASP_DETECTOR.defaults()["working_width"] == DEFAULT_WORKING_WIDTH
    assert POSE_ESTIMATOR.defaults()["working_width"] == DEFAULT_WORKING_WIDTH
