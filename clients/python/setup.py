"""Generates the featd.v1 gRPC stubs from featd's proto/ when the package is built, so that they are
never committed by hand: FEATD_PROTO names the proto directory (default: ../../proto, the source
tree's)."""
import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py


def generate(out_dir):
    proto = os.environ.get("FEATD_PROTO", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto"))
    files = [os.path.join(proto, "featd", "v1", f) for f in ("event.proto", "feature_service.proto", "admin.proto")]
    os.makedirs(os.path.join(out_dir, "featd", "v1"), exist_ok=True)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{proto}", f"--python_out={out_dir}",
                    f"--grpc_python_out={out_dir}", *files], check=True)
    open(os.path.join(out_dir, "featd", "v1", "__init__.py"), "a").close()


class BuildWithStubs(build_py):
    def run(self):
        super().run()
        generate(self.build_lib)


setup(cmdclass={"build_py": BuildWithStubs})
