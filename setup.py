"""Builds backprop._core with CMake for `pip install .` (pyproject.toml holds the metadata).

Only the library and the module are built (no CLI, tests or examples), in Release, for the Python
that runs pip; nothing is downloaded."""

import glob
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = os.path.abspath(os.path.join(self.build_temp, "cmake"))
        subprocess.run(["cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                        "-DBACKPROP_CLI=OFF", "-DBACKPROP_TESTS=OFF", "-DBACKPROP_EXAMPLES=OFF",
                        "-DBACKPROP_PYTHON=ON", f"-DBACKPROP_PYTHON_EXECUTABLE={sys.executable}"],
                       check=True)
        subprocess.run(["cmake", "--build", build, "--target", "backprop_python_core", "-j",
                        str(os.cpu_count() or 1)], check=True)
        built = glob.glob(os.path.join(build, "python", "backprop", "_core*.so"))
        if len(built) != 1:
            raise RuntimeError(f"expected one _core module in {build}/python/backprop, found {built}")
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(built[0], target)


setup(ext_modules=[Extension("backprop._core", sources=[])], cmdclass={"build_ext": CMakeBuild})
