"""The layout holds: the product never imports the harness or the tests, and no import loops."""

from __future__ import annotations

from tests.architecture.imports import PRODUCT_PACKAGES, cycles, graph, imports_of, modules, top_level


def test_product_never_imports_the_development_harness_or_the_tests() -> None:
    offending = [
        f"{name} imports {imported}"
        for name, path in modules(PRODUCT_PACKAGES).items()
        for imported in sorted(imports_of(path, name))
        if top_level(imported) in ("devstack", "tests")
    ]
    assert offending == []


def test_no_import_loop_between_modules() -> None:
    assert cycles(graph((*PRODUCT_PACKAGES, "devstack"))) == []


def test_the_loop_detector_finds_a_loop() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Each product package may import its own layer and the layers below it, never one above.
LAYERS: dict[str, int] = {
    "config": 0,
    "incidents": 1,
    "runbooks": 2,
    "evals": 2,
    "attribution": 2,
    "activities": 3,
    "workflows": 4,
    "api": 5,
    "worker": 6,
}


def test_packages_import_only_their_layer_and_below() -> None:
    offending = [
        f"{name} imports {imported}"
        for name, path in modules(tuple(LAYERS)).items()
        for imported in sorted(imports_of(path, name))
        if top_level(imported) in LAYERS and LAYERS[top_level(imported)] > LAYERS[top_level(name)]
    ]
    assert offending == []


def test_every_product_package_has_a_layer() -> None:
    assert set(PRODUCT_PACKAGES) <= set(LAYERS)
