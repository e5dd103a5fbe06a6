"""Build of the native hot path: Cython extensions in fastgw/_core (no CMake).

setup.py owns the build and nothing else; metadata lives in pyproject.toml.
Set FASTGW_NO_EXT=1 to install without compiling (fastgw then runs its pure-Python twin).
"""

import os

from setuptools import Extension, setup

COMPILE_ARGS = ["-O3"]

extensions = []
if os.environ.get("FASTGW_NO_EXT") != "1":
    from Cython.Build import cythonize

    extensions = cythonize(
        [
            Extension(
                "fastgw._core.http_parser",
                ["fastgw/_core/http_parser.pyx"],
                extra_compile_args=COMPILE_ARGS,
            )
        ],
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )

setup(ext_modules=extensions)
