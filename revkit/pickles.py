"""What a refused pickle would have run: the objects a checkpoint file's pickle imports or calls.

``torch.load(weights_only=True)`` refuses a pickle that imports anything beyond tensors and plain
data, but its message depends on the opcode (``Unsupported global``, ``Unsupported operand 149``,
``Weights only load failed …``) and advises an unsafe load. revkit reads the pickle's opcodes itself
(:mod:`pickletools`, which never executes anything) to say truthfully that the file was refused
because loading it would run code, and which object it names.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from pathlib import Path

#: opcodes that import an object by name (GLOBAL, INST carry "module name"; STACK_GLOBAL takes two strings).
_NAMING = {"GLOBAL", "INST", "STACK_GLOBAL"}
#: opcodes that call or build objects from something other than a named import.
_CALLING = {"REDUCE", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD", "PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4"}
#: globals a revkit checkpoint's pickle legitimately names (torch's tensor rebuilding and storages).
_PLAIN_PREFIXES = ("torch.", "collections.OrderedDict", "builtins.set", "builtins.frozenset", "builtins.bytearray",
                   "_codecs.encode", "builtins.complex", "builtins.slice", "builtins.range")


def pickle_bytes(path: Path) -> bytes | None:
    """The pickle inside a checkpoint file: ``data.pkl`` of a ``torch.save`` zip archive, else the
    file itself (a plain or legacy pickle); None when it cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if zipfile.is_zipfile(io.BytesIO(data)):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                return archive.read(name) if name is not None else None
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError):
            return None
    return data


def code_objects(data: bytes, limit: int = 1_000_000) -> list[str]:
    """The objects a pickle would import or call, in order (``os.system``, ``builtins.eval``,
    ``opcode PERSID``), without executing it; ones that plain torch data needs are left out.
    Reading stops at the first malformed opcode or after ``limit`` opcodes."""
    found: list[str] = []
    strings: list[str] = []
    try:
        for count, (op, arg, _) in enumerate(pickletools.genops(io.BytesIO(data))):
            if count >= limit:
                break
            if isinstance(arg, str):
                strings.append(arg)
            if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                name = arg.replace(" ", ".", 1)
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                name = f"{strings[-2]}.{strings[-1]}"
            elif op.name in _CALLING and op.name not in ("REDUCE", "BUILD", "NEWOBJ", "NEWOBJ_EX", "OBJ",
                                                          "BINPERSID"):
                name = f"opcode {op.name}"
            else:
                continue
            name = name.replace("__builtin__.", "builtins.")
            if not name.startswith(_PLAIN_PREFIXES) and name not in found:
                found.append(name)
            if op.name == "STOP":
                break
    except Exception:  # noqa: BLE001 - a malformed pickle: report what was found before it
        pass
    return found


def refused_objects(path: Path) -> list[str]:
    """The objects the pickle of checkpoint ``path`` would import or call (empty when none or unreadable)."""
    data = pickle_bytes(path)
    return code_objects(data) if data else []
