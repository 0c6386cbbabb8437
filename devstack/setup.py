"""This folder is the package `devstack`: every sub-folder with an __init__.py is a sub-package."""

from setuptools import find_packages, setup

setup(
    package_dir={"devstack": "."},
    packages=["devstack", *(f"devstack.{name}" for name in find_packages(".", exclude=["build*"]))],
)
