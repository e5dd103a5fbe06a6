"""Build of the native hot path: Cython extensions (no CMake): the parser in fastgw/_core and
the data path's plain-Python modules in fastgw/proxy, compiled with the types in their .pxd.

setup.py owns the build and nothing else; metadata lives in pyproject.toml.
Set FASTGW_NO_EXT=1 to install without compiling (fastgw then runs the parser's pure-Python
twin and the proxy modules as plain Python).
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
            ),
            # the data path's protocols, exchange, pools and round robin: plain Python,
            # compiled with the types declared in the .pxd beside each (without the
            # extensions the same code runs)
            *(Extension(name, [name.replace(".", "/") + ".py"], extra_compile_args=COMPILE_ARGS)
              for name in ("fastgw.proxy.exchange", "fastgw.proxy.client",
                           "fastgw.proxy.upstream", "fastgw.upstream.pool",
                           "fastgw.balance.round_robin")),
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
