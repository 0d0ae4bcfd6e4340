"""The bootstrap of mydiag.pyz (scripts/build_pyz.py copies it in as _mydiag_boot.py; the
zip's __main__.py, packaging/pyz_stub.py, runs it).

Runs the same from the zip (`python3 mydiag.pyz`) and from its unzipped tree (`python3
/usr/lib/mydiag`, `python3 build/pyz`): it picks the set of distributions built for this
Python and machine (_lib/index.json), puts it on sys.path ahead of any site-packages, and
runs agent.cli. Pure Python imports straight from the zip. Compiled extensions cannot be
loaded from a zip, so from a zip this Python's compiled distributions (and `report`, whose
templates are read as files) are extracted once into <state dir>/pyz/<content hash>/: into a
temporary folder of this process, renamed into place when complete, so two first starts at
once and a start killed midway both leave a good copy. Nothing is written anywhere else; the
tree form extracts nothing and writes no bytecode into itself.

Exit codes of its own (docs/install.md): 24 this file does not support this host's Python,
machine or C library; 25 the state directory is not writable (from a zip only).

Written for any python3 (3.6 of RHEL 8 included) to be able to say that it is not supported.
"""

import json
import os
import sys

#: This host's Python, machine or C library is not one this file was built for
#: (agent/exitcodes.PYZ_UNSUPPORTED: this file cannot import it on a Python it refuses).
UNSUPPORTED = 24
#: The state directory (MYDIAG_HOME) cannot be written, so the compiled modules cannot be extracted.
NO_STATE_DIR = 25
#: The newest folder layout this bootstrap reads (build_pyz.INDEX_FORMAT).
INDEX_FORMAT = 1
_COMPLETE = ".complete"
#: A temporary extraction folder left this long by a process that is gone is removed.
_STALE_SECONDS = 600

_MACHINES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8l": "aarch64"}


def _fail(code, message):
    sys.stderr.write(f"mydiag: {message}\n")
    sys.exit(code)


def machine():
    raw = os.uname().machine.lower()
    return _MACHINES.get(raw, raw)


def libc():
    """('glibc', '2.36'), or (None, None) where the C library is not glibc (musl: Alpine)."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        text = None
    if not text or not text.startswith("glibc "):
        return None, None
    return "glibc", text.split()[1]


def target_key(version_info=None, arch=None):
    """The index key for a Python and machine: cp311-x86_64."""
    version_info = version_info or sys.version_info
    return f"cp{version_info[0]}{version_info[1]}-{arch or machine()}"


def select(index, version_info=None, arch=None, implementation=None, c_library=None):
    """This host's entry of _lib/index.json, or a one-line reason it has none."""
    implementation = implementation or sys.implementation.name
    name, version = c_library or libc()
    key = target_key(version_info, arch)
    built = sorted(index.get("targets", {}), key=lambda k: (int(k.split("-")[0][2:]), k))
    pythons = sorted({k.split("-")[0] for k in built}, key=lambda t: int(t[2:]))
    machines = sorted({k.split("-", 1)[1] for k in built})
    offered = "CPython {} on {} glibc Linux".format(
        ", ".join(f"{t[2]}.{t[3:]}" for t in pythons), "/".join(machines))
    here = "Python {}.{}".format(*(version_info or sys.version_info)[:2])
    if implementation != "cpython":
        return None, f"this file runs on {offered}, not on {implementation} {here[7:]}"
    if name is None or tuple(int(p) for p in version.split(".")[:2]) < (2, 17):
        return None, "this file runs on {} (2.17 or newer); this host's C library is {}".format(
            offered, f"glibc {version}" if name else "not glibc (musl?)")
    if key not in index.get("targets", {}):
        return None, (f"this file runs on {offered}; this is {here} on {arch or machine()}: run it with "
                      "another python3 (`python3.11 mydiag.pyz`) or install the package")
    return index["targets"][key], None


def state_dir():
    """agent.home.home(), read without importing anything from the agent yet."""
    override = os.environ.get("MYDIAG_HOME")
    if override:
        return os.path.expanduser(override)
    if os.geteuid() == 0:
        return "/var/lib/mydiag"
    return os.path.join(os.path.expanduser("~"), ".local", "share", "mydiag")


def _complete(folder, digest):
    try:
        with open(os.path.join(folder, _COMPLETE)) as handle:
            return handle.read().strip() == digest
    except OSError:
        return False


def _remove(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _sweep(base):
    """Temporary folders of extractions whose process is gone (killed midway)."""
    import time

    for name in os.listdir(base):
        if not name.startswith((".tmp-", ".old-")):
            continue
        path = os.path.join(base, name)
        try:
            pid = int(name.split("-")[1])
            old = time.time() - os.stat(path).st_mtime > _STALE_SECONDS
        except (ValueError, IndexError, OSError):
            continue
        if not _alive(pid) or old:
            _remove(path)


def _private_dirs(path):
    """mkdir -p with 0700 for every folder made (os.makedirs gives parents the default mode)."""
    if os.path.isdir(path):
        return
    _private_dirs(os.path.dirname(path))
    try:  # noqa: SIM105 - contextlib costs every start its import
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass


def _extract_into(archive, entry, folder):
    import io
    import zipfile

    with zipfile.ZipFile(archive) as outer:
        for prefix in entry["extract"]:
            if prefix.startswith("_lib/"):
                # A compiled wheel: one member holding its folder, flattened into ours.
                _extract_members(zipfile.ZipFile(io.BytesIO(outer.read(prefix + ".zip"))), "", "", folder)
            else:
                _extract_members(outer, prefix + "/", prefix + "/", folder)


def _extract_members(zipped, prefix, into, folder):
    """The files of `zipped` under `prefix`, written under folder/`into`."""
    for info in zipped.infolist():
        if info.filename.endswith("/") or not info.filename.startswith(prefix):
            continue
        rel = into + info.filename[len(prefix):]
        parts = rel.split("/")
        if ".." in parts or rel.startswith("/"):
            continue
        target = os.path.join(folder, *parts)
        # Python makes __pycache__ with the default mode: made here first, it is private too.
        _private_dirs(os.path.join(os.path.dirname(target), "__pycache__") if rel.endswith(".py")
                      else os.path.dirname(target))
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(zipped.read(info))


def extracted(archive, entry):
    """The folder holding this target's extracted set, made once (atomically) if need be."""
    home = state_dir()
    base = os.path.join(home, "pyz")
    final = os.path.join(base, entry["hash"])
    if _complete(final, entry["hash"]):
        return final
    import tempfile

    try:
        os.makedirs(home, mode=0o700, exist_ok=True)
        os.makedirs(base, mode=0o700, exist_ok=True)
        _sweep(base)
        work = tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=base)
    except OSError as exc:
        _fail(NO_STATE_DIR, f"cannot write the state directory {home} ({exc.strerror or exc}): "
                            "set MYDIAG_HOME to a writable directory of this user's")
    try:
        _extract_into(archive, entry, work)
        descriptor = os.open(os.path.join(work, _COMPLETE), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(entry["hash"] + "\n")
        for _ in range(3):
            try:
                os.rename(work, final)
                return final
            except OSError:
                if _complete(final, entry["hash"]):
                    return final  # another process was first
                # Something incomplete holds the name (not made by this bootstrap): set it aside.
                aside = tempfile.mkdtemp(prefix=f".old-{os.getpid()}-", dir=base)
                try:  # noqa: SIM105 - as above
                    os.rename(final, os.path.join(aside, "x"))
                except OSError:
                    pass
                _remove(aside)
        _fail(NO_STATE_DIR, f"cannot put the extracted modules in place at {final}")
    except OSError as exc:
        _fail(NO_STATE_DIR, f"cannot extract the compiled modules into {base} ({exc.strerror or exc}): "
                            "set MYDIAG_HOME to a writable directory of this user's")
    finally:
        if os.path.isdir(work):
            _remove(work)


class _Archive:
    """The running zip: its member names, and where bytecode of its modules is cached."""

    def __init__(self, root, loader, cache):
        self.root = root
        self.loader = loader
        self.cache = cache
        files = getattr(loader, "_files", None)
        if files is None and hasattr(loader, "_get_files"):
            files = loader._get_files()
        if files is None:
            import zipfile

            with zipfile.ZipFile(root) as zipped:
                files = dict.fromkeys(zipped.namelist())
        self.names = files

    def stamp(self, member):
        """8 bytes naming this member's content: its CRC-32 and size from the zip's directory
        (zipimport's entries: path, compress, data size, file size, offset, time, date, crc)."""
        entry = self.names.get(member)
        if not isinstance(entry, tuple) or len(entry) < 8:
            return None
        return (entry[7] & 0xFFFFFFFF).to_bytes(4, "little") + (entry[3] & 0xFFFFFFFF).to_bytes(4, "little")

    def inside(self, path):
        return path.startswith(self.root + "/")

    def read(self, path):
        return self.loader.get_data(path[len(self.root) + 1:])


def _install_importer(archive):
    """Pure-Python modules import from the zip itself, as zipimport would, but their bytecode is
    kept in the extracted folder, so a warm start compiles nothing: zipimport compiles every
    module on every start. A cached module is checked against its member's CRC-32 and size in
    the zip's own directory (read once at start), so a warm import neither inflates nor hashes
    the source (as Python checks a .pyc against its source's mtime and size, but stronger);
    where the directory is not at hand, against the source's hash."""
    import importlib.machinery
    import importlib.util
    import marshal

    magic = importlib.util.MAGIC_NUMBER
    flags = (3).to_bytes(4, "little")  # a hash-based pyc whose hash is checked

    class Loader(importlib.machinery.SourceFileLoader):
        def get_data(self, path):
            if archive.inside(path):
                return archive.read(path)
            return super().get_data(path)

        def get_code(self, fullname):
            path = self.get_filename(fullname)
            member = path[len(archive.root) + 1:]
            source = None
            key = archive.stamp(member)
            if key is None:
                source = self.get_data(path)
                key = importlib.util.source_hash(source)
            cached = os.path.join(archive.cache, member + "." + sys.implementation.cache_tag + ".pyc")
            try:
                with open(cached, "rb") as handle:
                    data = handle.read()
                if data[:16] == magic + flags + key:
                    return marshal.loads(data[16:])
            except (OSError, ValueError, EOFError, TypeError):
                pass
            if source is None:
                source = self.get_data(path)
            code = compile(source, path, "exec", dont_inherit=True)
            if not sys.dont_write_bytecode:
                _write_quietly(cached, magic + flags + key + marshal.dumps(code))
            return code

    class Finder:
        def __init__(self, path):
            if path != archive.root and not archive.inside(path):
                raise ImportError(f"not in {archive.root}")
            self.path = path
            self.prefix = path[len(archive.root) + 1:]
            self.prefix += "/" if self.prefix else ""

        def find_spec(self, fullname, target=None):
            base = self.prefix + fullname.rpartition(".")[2]
            if base + "/__init__.py" in archive.names:
                name, search = base + "/__init__.py", [archive.root + "/" + base]
            elif base + ".py" in archive.names:
                name, search = base + ".py", None
            elif base + "/" in archive.names:
                spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
                spec.submodule_search_locations = [archive.root + "/" + base]
                return spec
            else:
                return None
            path = archive.root + "/" + name
            return importlib.util.spec_from_file_location(fullname, path, loader=Loader(fullname, path),
                                                          submodule_search_locations=search)

        def invalidate_caches(self):
            pass

    sys.path_hooks.insert(0, Finder)
    for key in [k for k in sys.path_importer_cache if k == archive.root or archive.inside(k)]:
        del sys.path_importer_cache[key]


def _write_quietly(path, data):
    """A bytecode file, atomically (another process may read or write it at the same time)."""
    try:
        _private_dirs(os.path.dirname(path))
        partial = f"{path}.{os.getpid()}.tmp"
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(partial, path)
    except OSError:
        pass


def _read_index(root, zipped):
    if zipped:
        # A name relative to the archive: every zipimporter since 3.6 takes it.
        return json.loads(__loader__.get_data("_lib/index.json").decode("utf-8"))  # noqa: F821
    with open(os.path.join(root, "_lib", "index.json"), encoding="utf-8") as handle:
        return json.load(handle)


def prepare():
    """sys.path for this host's set; returns nothing, exits with a one-line reason when it cannot."""
    root = os.path.dirname(os.path.abspath(__file__))
    zipped = not os.path.isdir(root)
    index = _read_index(root, zipped)
    if index.get("format", 0) > INDEX_FORMAT:
        _fail(UNSUPPORTED, f"this bootstrap does not read the layout of {root}")
    entry, reason = select(index)
    if entry is None:
        _fail(UNSUPPORTED, reason)
    ours = [os.path.join(root, *p.split("/")) for p in entry["pure"]]
    if zipped:
        folder = extracted(root, entry)
        ours.insert(0, folder)
        _install_importer(_Archive(root, __loader__, os.path.join(folder, "pyc")))  # noqa: F821
    else:
        ours += [os.path.join(root, *p.split("/")) for p in entry["compiled"]]
        # Installed trees are compiled at install time; never write bytecode into them.
        sys.dont_write_bytecode = True
    rest = [p for p in sys.path if os.path.abspath(p or ".") != root]
    # Ours before everything but the standard library's own folders would shadow nothing, but a
    # site-packages copy of cryptography must never shadow ours: ours go first.
    sys.path[:] = [ours[0], root, *ours[1:]] if zipped else [root, *ours]
    sys.path += rest


#: The modules a child of this file may be started as (agent/selfexec.py): the diag console
#: of a remote session, and the command itself.
_CHILD_MODULES = ("agent.session.console", "agent.cli")


def main():
    prepare()
    import agent.selfexec

    agent.selfexec.ENTRY = os.path.dirname(os.path.abspath(__file__))
    module = os.environ.pop(agent.selfexec.MODULE_VARIABLE, "agent.cli")
    if module not in _CHILD_MODULES:
        _fail(2, f"{agent.selfexec.MODULE_VARIABLE} may not name {module!r}")
    if module != "agent.cli":
        import runpy

        sys.argv[0] = module
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    from agent.cli import main as cli

    sys.exit(cli())


if __name__ == "__main__":
    main()
