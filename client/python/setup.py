"""Builds the varscope package: the pure-Python modules (typed, with
py.typed) plus the extension varscope._varscope, which CMake builds from this
repository (the whole C++ client is compiled, so the first build takes a few
minutes).

    /usr/bin/python3 -m pip install --no-build-isolation \
        [--break-system-packages | --user | --no-deps --target DIR] \
        ./client/python

With $VARSCOPE_CMAKE_BUILD_DIR naming an already configured build tree of
this repository (VARSCOPE_BUILD_PYTHON on), the extension is built there
instead (usually already up to date), as the packaging test does.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys

from setuptools import Extension
from setuptools import setup
from setuptools.command.build_ext import build_ext

REPO = pathlib.Path(__file__).resolve().parents[2]


def project_version():
    """The version of the project() call in the repository's CMakeLists.txt,
    the one place it is written; for a copy of this directory built in an
    existing build tree, the version that tree was configured with."""
    build_dir = os.environ.get("VARSCOPE_CMAKE_BUILD_DIR")
    if build_dir:
        cache = (pathlib.Path(build_dir) / "CMakeCache.txt").read_text()
        return re.search(r"^CMAKE_PROJECT_VERSION:STATIC=(.+)$", cache,
                         re.M).group(1)
    cmake = (REPO / "CMakeLists.txt").read_text()
    return re.search(r"project\(varscope VERSION ([0-9.]+)", cmake).group(1)


class CMakeBuild(build_ext):
    """Builds each extension (by CMake target name) and copies it in."""

    def build_extension(self, ext):
        if os.environ.get("VARSCOPE_CMAKE_BUILD_DIR"):
            build_dir = pathlib.Path(
                os.environ["VARSCOPE_CMAKE_BUILD_DIR"]).resolve()
        else:
            build_dir = pathlib.Path(self.build_temp).resolve() / "cmake"
            subprocess.run(
                ["cmake", "-S", str(REPO), "-B", str(build_dir), "-G",
                 "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                 "-DVARSCOPE_BUILD_TESTS=OFF", "-DVARSCOPE_BUILD_PYTHON=ON",
                 "-DVARSCOPE_BUILD_BENCH=OFF",
                 "-DPython_EXECUTABLE=" + sys.executable],
                check=True)
        target = ext.name.rpartition(".")[2]
        subprocess.run(["cmake", "--build", str(build_dir), "--target",
                        target], check=True)
        built = build_dir / "python" / "varscope" / pathlib.Path(
            self.get_ext_filename(target)).name
        destination = pathlib.Path(self.get_ext_fullpath(ext.name))
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, destination)


setup(
    name="varscope",
    version=project_version(),
    description="TensorFlow-style scoped variables on a parameter server",
    packages=["varscope"],
    package_data={"varscope": ["py.typed"]},
    zip_safe=False,
    ext_modules=[Extension("varscope._varscope", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.9",
    install_requires=["numpy"],
)
