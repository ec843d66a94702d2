# SPDX-License-Identifier: MIT
"""setuptools build of the altgrad Python package (metadata: pyproject.toml).

The extension altgrad._C is compiled from the C sources directly: the
library, with its registry table generated first by the registry generator
(as the Makefile does), and python/_altgrad.c, into one shared object; no
prior `make` is needed. Both source lists come from sources.mk, which the
Makefile includes too. Debian 12 refuses a plain `pip install` into the
system Python (externally-managed-environment); install into a directory of
your own and put it on PYTHONPATH:

    /usr/bin/python3 -m pip install --no-build-isolation --no-deps --target DIR .

(python3-setuptools, python3-numpy and python3-torch from Debian). For
development, `make python` builds the same extension in place instead.
"""
import glob
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

C_FLAGS = ["-std=c11", "-O2", "-fopenmp", "-fvisibility=hidden"]


def read_sources(path="sources.mk"):
    """The source lists of sources.mk: {NAME: [path, ...]}, with each
    $(wildcard PATTERN) expanded (sorted) as make does. Paths are relative
    to the project root, the directory pip runs setup.py in. Any other make
    syntax there is an error, so the two builds cannot drift apart."""
    lists = {}
    with open(path, encoding="utf-8") as f:
        text = f.read().replace("\\\n", " ")
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*:=\s*(.*)", line)
        if not m:
            raise SystemExit(f"{path}:{n}: expected NAME := WORD...")
        words = []
        for w in re.findall(r"\$\(wildcard\s+[^)]*\)|\S+", m.group(2)):
            g = re.fullmatch(r"\$\(wildcard\s+([^)]*)\)", w)
            if g:
                for pat in g.group(1).split():
                    words += sorted(glob.glob(pat))
            elif "$" in w:
                raise SystemExit(f"{path}:{n}: unsupported make syntax {w!r}")
            else:
                words.append(w)
        lists[m.group(1)] = words
    for name in ("AG_LIB_SRC", "AG_GEN_SRC"):
        if not lists.get(name):
            raise SystemExit(f"{path}: {name} missing or empty")
    return lists


SOURCES = read_sources()


def compile_in_parallel(compiler):
    """Make compiler.compile run one compiler process per CPU (the library's
    kernel files are slow to compile one after the other); the objects
    come back in the order of the sources."""
    serial = compiler.compile
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1

    def compile_sources(sources, *args, **kwargs):
        if cpus < 2 or len(sources) < 2:
            return serial(sources, *args, **kwargs)
        with ThreadPoolExecutor(min(cpus, len(sources))) as pool:
            parts = list(pool.map(lambda src: serial([src], *args, **kwargs), sources))
        return [obj for part in parts for obj in part]

    compiler.compile = compile_sources


class BuildExtWithRegistry(build_ext):
    """build_ext that first generates ag_registry.inc with the compiler."""

    def build_extensions(self):
        compile_in_parallel(self.compiler)
        gen_dir = os.path.abspath(os.path.join(self.build_temp, "altgrad_gen"))
        os.makedirs(gen_dir, exist_ok=True)
        objs = self.compiler.compile(
            SOURCES["AG_GEN_SRC"],
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
    sources=["python/_altgrad.c"] + SOURCES["AG_LIB_SRC"],
    include_dirs=["include", "src"],
    depends=["include/altgrad.h", "sources.mk"] + glob.glob("src/*.h"),
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
