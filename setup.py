# SPDX-License-Identifier: MIT
"""setuptools build of the altgrad Python package (metadata: pyproject.toml).

The extension altgrad._C is compiled from the C sources directly: the
library (src/*.c), with its registry table generated first by
tools/gen_registry.c (as the Makefile does), and python/_altgrad.c, into one
shared object; no prior `make` is needed. Install for Debian's Python with

    /usr/bin/python3 -m pip install --no-build-isolation .

(python3-setuptools, python3-numpy and python3-torch from Debian). For
development, `make python` builds the same extension in place instead.
"""
import glob
import os
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

C_FLAGS = ["-std=c11", "-O2", "-fopenmp", "-fvisibility=hidden"]


class BuildExtWithRegistry(build_ext):
    """build_ext that first generates ag_registry.inc with the compiler."""

    def build_extensions(self):
        gen_dir = os.path.abspath(os.path.join(self.build_temp, "altgrad_gen"))
        os.makedirs(gen_dir, exist_ok=True)
        objs = self.compiler.compile(
            ["tools/gen_registry.c", "src/ag_format.c", "src/ag_error.c"],
            output_dir=os.path.join(self.build_temp, "gen_obj"),
            include_dirs=["include", gen_dir],
            extra_postargs=C_FLAGS,
        )
        exe = os.path.join(gen_dir, "gen_registry")
        self.compiler.link_executable(objs, exe, libraries=["m"],
                                      extra_postargs=["-fopenmp"])
        inc = subprocess.run([exe], check=True, stdout=subprocess.PIPE).stdout
        with open(os.path.join(gen_dir, "ag_registry.inc"), "wb") as f:
            f.write(inc)
        for ext in self.extensions:
            ext.include_dirs.append(gen_dir)
        super().build_extensions()


ext = Extension(
    "altgrad._C",
    sources=["python/_altgrad.c"] + sorted(glob.glob("src/*.c")),
    include_dirs=["include", "src"],
    depends=["include/altgrad.h"] + glob.glob("src/*.h"),
    extra_compile_args=C_FLAGS,
    extra_link_args=["-fopenmp"],
    libraries=["m"],
)

setup(
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExtWithRegistry},
    # keep setuptools' scratch files out of the Makefile's build/
    options={"build": {"build_base": "python/build"}},
)
