"""Bundled profiles, found by name, and the default one.

Bundles shipped with the package live in ``strait_sim/profiles/<name>/``. ``--profile``
accepts either such a name or a path to any bundle folder; a path wins when both exist.
The default is the best real measurement we ship: a GPU profile once one has been
measured (see docs/profiling.md), until then the CPU profile of the development machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from strait_sim.errors import UnknownNameError

# Order of preference for the default: first one present wins. "h200-fp16" is the name
# scripts/gpu_session.sh gives a bundle measured on an NVIDIA H200 (none is bundled yet).
DEFAULT_PREFERENCE = ("h200-fp16", "h100-sxm-fp16", "cpu-epyc2-fp32")


@dataclass(frozen=True)
class ProfileEntry:
    name: str
    path: Path
    device: str
    kind: str
    synthetic: bool
    notes: str


def profiles_root() -> Path:
    return Path(str(resources.files("strait_sim.profiles")))


def bundled_profiles() -> list[ProfileEntry]:
    """All bundles shipped in the package, sorted by name."""
    out = []
    for child in sorted(profiles_root().iterdir()):
        meta_path = child / "profile.json"
        if not child.is_dir() or not meta_path.is_file():
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            continue
        dev = meta.get("device", {}) if isinstance(meta.get("device"), dict) else {}
        out.append(ProfileEntry(
            name=child.name, path=child, device=str(dev.get("name", "?")),
            kind=str(dev.get("kind", "?")), synthetic=bool(meta.get("synthetic", False)),
            notes=str(meta.get("notes", "")).splitlines()[0] if meta.get("notes") else "",
        ))
    return out


def default_profile_name() -> str:
    names = {p.name for p in bundled_profiles()}
    for name in DEFAULT_PREFERENCE:
        if name in names:
            return name
    raise UnknownNameError("default profile", "(none bundled)", sorted(names))


def resolve_profile(spec: str | Path | None) -> tuple[Path, str]:
    """Turn a name, a path or None (the default) into (folder, display name)."""
    if spec is None or str(spec) == "":
        spec = default_profile_name()
    candidate = Path(spec)
    if candidate.exists():
        return candidate, candidate.resolve().name
    entries = {p.name: p for p in bundled_profiles()}
    if str(spec) in entries:
        return entries[str(spec)].path, str(spec)
    if candidate.is_absolute() or "/" in str(spec) or str(spec).startswith("."):
        from strait_sim.errors import BundleError

        raise BundleError(str(spec), "profile bundle folder not found")
    raise UnknownNameError("profile", str(spec), sorted(entries))
