"""Declares the Cython modules only; all other metadata lives in pyproject.toml.

MEDSETTLE_CYTHON_CHECKS=1 turns bounds and wraparound checks back on for debugging
(scikit-learn's habit: directives set once, in the build).
"""

import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

checks = os.environ.get("MEDSETTLE_CYTHON_CHECKS") == "1"

extensions = [
    Extension(
        f"medsettle.{name}",
        [f"ext/{name}.pyx"],
        include_dirs=[numpy.get_include(), "ext"],  # "ext" for bounds.h
        depends=["ext/bounds.h", "ext/_bounds.pxd", "ext/_types.pxd"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    )
    for name in ("_core", "_plain")  # the settlement kernel; the validated path's quick route
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["ext"],  # where the .pyx files' cimports (_bounds.pxd, _types.pxd) are found
        language_level=3,
        compiler_directives={
            "boundscheck": checks,
            "wraparound": checks,
            "cdivision": True,
            "initializedcheck": checks,
        },
    )
)
