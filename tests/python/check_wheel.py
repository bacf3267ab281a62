"""Packaging check (CTest python_wheel): builds the varscope wheel with pip
from a copy of client/python, reusing the extension of the CMake build tree
BUILD_DIR ($VARSCOPE_CMAKE_BUILD_DIR, see setup.py), installs it with
--target into a temporary directory, and checks that it imports from there
with its modules and py.typed, and that `pip show varscope` knows it.

    check_wheel.py SOURCE_DIR BUILD_DIR
"""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile


def run(*args, **kwargs):
    return subprocess.run(args, check=True, capture_output=True, text=True,
                          **kwargs).stdout


def main(source, build_dir):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        # pip builds in the source tree: build a copy, not the checkout.
        shutil.copytree(source, tmp / "src",
                        ignore=shutil.ignore_patterns("build", "*.egg-info"))
        env = dict(os.environ, VARSCOPE_CMAKE_BUILD_DIR=build_dir)
        env.pop("PYTHONPATH", None)
        run(sys.executable, "-m", "pip", "wheel", "--no-build-isolation",
            "--no-deps", "--wheel-dir", str(tmp / "wheels"), str(tmp / "src"),
            env=env)
        (wheel,) = (tmp / "wheels").glob("varscope-*.whl")
        run(sys.executable, "-m", "pip", "install", "--no-deps",
            "--target", str(tmp / "site"), str(wheel), env=env)
        env["PYTHONPATH"] = str(tmp / "site")
        out = run(sys.executable, "-c", "\n".join([
            "import pathlib, varscope",
            "package = pathlib.Path(varscope.__file__).parent",
            "print(package)",
            "print((package / 'py.typed').is_file())",
            "print(varscope.__version__, varscope.nn.embedding_lookup.__name__,"
            " varscope.GraphKeys.GLOBAL_VARIABLES)",
        ]), env=env, cwd=tmp).splitlines()
        version = out[2].split()[0]
        assert out == [str(tmp / "site" / "varscope"), "True",
                       version + " embedding_lookup variables"], out
        # The wheel's version (setup.py, from CMakeLists.txt) is the C++
        # build's (the extension's, from the generated header).
        assert wheel.name.startswith("varscope-%s-" % version), wheel.name
        show = run(sys.executable, "-m", "pip", "show", "varscope", env=env)
        assert "Name: varscope" in show and "Version: " + version in show, show
        print("wheel %s installs and imports" % wheel.name)


if __name__ == "__main__":
    main(*sys.argv[1:])
