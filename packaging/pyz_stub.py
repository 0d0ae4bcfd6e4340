"""mydiag.pyz's __main__.py: runs the bootstrap (_mydiag_boot.py, packaging/pyz_main.py).

Python compiles a zip's __main__.py on every start (a zip holds no bytecode for every Python),
so this file is kept small and the bootstrap's own bytecode is kept in the state directory
(<state dir>/pyz/.boot-<crc>-<size>.<tag>.pyc, once a start has made that folder), checked
against the member's CRC-32 and size in the zip's directory. From an unzipped tree the
bootstrap is an ordinary import (compiled at install time; nothing is written into the tree).
Written, like the bootstrap, for any python3.
"""

import os
import sys

_BOOT = "_mydiag_boot"


def _state_dir():
    # packaging/pyz_main.state_dir, which cannot be imported before this file has loaded it.
    override = os.environ.get("MYDIAG_HOME")
    if override:
        return os.path.expanduser(override)
    if os.geteuid() == 0:
        return "/var/lib/mydiag"
    return os.path.join(os.path.expanduser("~"), ".local", "share", "mydiag")


def _from_zip(root, loader):
    import importlib.util
    import marshal

    member = _BOOT + ".py"
    files = getattr(loader, "_files", None)
    if files is None and hasattr(loader, "_get_files"):
        files = loader._get_files()
    entry = (files or {}).get(member)
    cached = None
    if isinstance(entry, tuple) and len(entry) >= 8:
        name = f"{entry[7] & 0xFFFFFFFF:08x}-{entry[3]}.{sys.implementation.cache_tag}.pyc"
        cached = os.path.join(_state_dir(), "pyz", ".boot-" + name)
    header = importlib.util.MAGIC_NUMBER
    code = None
    if cached:
        try:
            with open(cached, "rb") as handle:
                data = handle.read()
            if data[:4] == header:
                code = marshal.loads(data[4:])
            if type(code) is not type(_state_dir.__code__):  # noqa: E721 - a code object, or recompile
                code = None
        except (OSError, ValueError, EOFError, TypeError):
            code = None
    if code is None:
        code = compile(loader.get_data(member), root + "/" + member, "exec", dont_inherit=True)
        if cached and not sys.dont_write_bytecode and os.path.isdir(os.path.dirname(cached)):
            # Only beside a copy a start has already extracted (the bootstrap made the folder,
            # private): a Python the bootstrap refuses writes nothing. A cache is only a cache.
            try:
                partial = f"{cached}.{os.getpid()}.tmp"
                descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(header + marshal.dumps(code))
                os.replace(partial, cached)
            except OSError:
                pass
    module = type(sys)(_BOOT)
    module.__file__ = root + "/" + member
    module.__loader__ = loader
    sys.modules[_BOOT] = module
    exec(code, module.__dict__)
    return module


def _boot():
    root = os.path.dirname(os.path.abspath(__file__))
    if not os.path.isdir(root):
        return _from_zip(root, __loader__)  # noqa: F821 - the zipimporter that loaded this file
    # The tree: its bytecode was compiled at install time; none is written into it.
    sys.dont_write_bytecode = True
    import importlib

    return importlib.import_module(_BOOT)


if __name__ == "__main__":
    _boot().main()
