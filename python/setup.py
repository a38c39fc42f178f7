"""Builds shmkit._shmkit against libshmkit.

By default it links the installed library (`make install`: -lshmkit, headers and library
found through pkg-config when it knows shmkit, else the compiler's default paths). The
shmkit Makefile's `make python` builds it against the source tree instead, with
SHMKIT_INCLUDE=<tree>/include and SHMKIT_LIBDIR=<tree>/build: the just-built shared
library, found at run time through an rpath to that directory (no LD_LIBRARY_PATH). (The
static library cannot be linked into an extension: its versioned compatibility symbols
need the linker version script of the shared one.)
"""
import os
import subprocess

from setuptools import Extension, setup


def pkg_config(*args):
    try:
        out = subprocess.run(["pkg-config", *args, "shmkit"], check=True,
                             capture_output=True, text=True).stdout
        return out.split()
    except (OSError, subprocess.CalledProcessError):
        return None


include_dirs, library_dirs, libraries, extra_objects, rpath = [], [], ["shmkit"], [], []
if os.environ.get("SHMKIT_INCLUDE"):
    include_dirs.append(os.environ["SHMKIT_INCLUDE"])
if os.environ.get("SHMKIT_LIBDIR"):
    libdir = os.path.abspath(os.environ["SHMKIT_LIBDIR"])
    library_dirs.append(libdir)
    rpath.append(libdir)
else:
    flags = pkg_config("--cflags", "--libs")
    if flags:
        include_dirs += [f[2:] for f in flags if f.startswith("-I")]
        library_dirs += [f[2:] for f in flags if f.startswith("-L")]
        # An install outside the linker's search path (e.g. /usr/local/lib on some
        # systems) is found at run time through an rpath.
        rpath += [d for d in library_dirs if d not in ("/usr/lib", "/lib")]

setup(
    ext_modules=[Extension(
        "shmkit._shmkit",
        sources=["shmkit/_shmkit.c"],
        include_dirs=include_dirs,
        library_dirs=library_dirs,
        libraries=libraries,
        runtime_library_dirs=rpath,
        extra_objects=extra_objects,
        define_macros=[("_GNU_SOURCE", None)],
        extra_compile_args=["-std=c11", "-Wall", "-Wextra", "-Werror",
                            "-Wno-missing-field-initializers", "-Wno-cast-function-type"],
    )],
)
