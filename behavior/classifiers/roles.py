"""Keypoint roles: what a behaviour classifier calls a keypoint, whatever a lab's tracker named it.

A classifier's features use *roles* (``snout``, ``tail_base``, ``paw_lf`` ...), never a tracker's names.
A skeleton file (``configs/skeletons/pain_box.yaml``) lists, per role, the keypoint names that take it;
names are compared normalised (lower case, runs of other characters as ``_``: ``"Front Paw L"`` is
``front_paw_l``). A lab maps its own names with ``theirname=role`` pairs (``--roles nose=snout``) or a
YAML file of the same ``roles:`` form; explicit pairs win over the skeleton file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "DEFAULT_SKELETON",
    "KNOWN_ROLES",
    "PAW_ROLES",
    "REQUIRED_ROLES",
    "RoleError",
    "load_role_aliases",
    "normalise_name",
    "parse_role_pairs",
    "resolve_roles",
]

DEFAULT_SKELETON = "pain_box"
#: Every role the features know, in the order features are built.
KNOWN_ROLES: tuple[str, ...] = (
    "snout",
    "paw_lf",
    "paw_rf",
    "paw_lh",
    "paw_rh",
    "centre",
    "tail_base",
    "ear_l",
    "ear_r",
    "tail_tip",
)
PAW_ROLES: tuple[str, ...] = ("paw_lf", "paw_rf", "paw_lh", "paw_rh")
#: The roles every classifier needs: the body axis and the body-size scale come from them.
REQUIRED_ROLES: tuple[str, ...] = ("snout", "tail_base")


class RoleError(ValueError):
    """A role mapping is malformed, or poses lack a keypoint role a classifier needs."""


def normalise_name(name: str) -> str:
    """A keypoint name compared across trackers: lower case, other characters as single ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def load_role_aliases(skeleton: str | Path = DEFAULT_SKELETON) -> dict[str, str]:
    """``normalised keypoint name -> role`` from a skeleton file's ``roles:`` mapping.

    Parameters
    ----------
    skeleton
        A skeleton name (``configs/skeletons/<name>.yaml``) or a YAML path.

    Raises
    ------
    RoleError
        If the file has no ``roles`` mapping, names an unknown role, or gives one name two roles.
    """
    from pose_models.config import load_config

    data = load_config("skeletons", skeleton)
    roles = data.get("roles")
    if not isinstance(roles, Mapping) or not roles:
        raise RoleError(f"skeleton {skeleton}: expected a 'roles' mapping role -> [keypoint names], got {roles!r}")
    out: dict[str, str] = {}
    for role, names in roles.items():
        if role not in KNOWN_ROLES:
            raise RoleError(f"skeleton {skeleton}: expected roles from {list(KNOWN_ROLES)}, got {role!r}")
        for name in [names] if isinstance(names, str) else list(names or []):
            key = normalise_name(name)
            if out.get(key, role) != role:
                raise RoleError(f"skeleton {skeleton}: keypoint name {name!r} has two roles ({out[key]}, {role})")
            out[key] = role
    return out


def parse_role_pairs(items: str | Iterable[str] | Path | None) -> dict[str, str]:
    """``keypoint name -> role`` from ``name=role`` pairs (comma separated or a list), a roles YAML,
    or the name of a skeleton with a ``roles`` mapping (``behaviordepot``: ``configs/skeletons/<name>.yaml``).

    Raises
    ------
    RoleError
        For a pair without ``=`` that names no skeleton, an unknown role, or a YAML file without a
        ``roles`` mapping.
    """
    from pose_models.config import config_dir

    if items is None:
        return {}
    if isinstance(items, Path) or (isinstance(items, str) and items.endswith((".yaml", ".yml"))):
        return load_role_aliases(items)
    parts = items.split(",") if isinstance(items, str) else [p for item in items for p in str(item).split(",")]
    out: dict[str, str] = {}
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if part.endswith((".yaml", ".yml")):
            out.update(load_role_aliases(part))
            continue
        name, sep, role = part.rpartition("=")
        if not sep and (config_dir() / "skeletons" / f"{part}.yaml").is_file():
            out.update(load_role_aliases(part))
            continue
        if not sep or not name.strip():
            raise RoleError(f"--roles: expected keypoint=role pairs, a roles YAML or a skeleton name, got {part!r}")
        role = role.strip()
        if role not in KNOWN_ROLES:
            raise RoleError(f"--roles {part!r}: expected a role from {list(KNOWN_ROLES)}, got {role!r}")
        out[normalise_name(name)] = role
    return out


def resolve_roles(
    keypoints: Sequence[str],
    *,
    mapping: Mapping[str, str] | None = None,
    skeleton: str | Path | None = DEFAULT_SKELETON,
    required: Sequence[str] = REQUIRED_ROLES,
    source: str = "poses",
) -> dict[str, str]:
    """Which keypoint of ``keypoints`` takes each role.

    Parameters
    ----------
    keypoints
        The pose file's keypoint names.
    mapping
        ``keypoint name -> role`` pairs of the lab (:func:`parse_role_pairs`); they win over the skeleton's.
    skeleton
        Skeleton file whose ``roles`` give the default names (None: only ``mapping``).
    required
        Roles that must be found.
    source
        What the keypoints are of, for the error message.

    Returns
    -------
    dict
        ``role -> keypoint name`` for every role found (the first keypoint of a role when several match).

    Raises
    ------
    RoleError
        If a required role has no keypoint, or ``mapping`` names a keypoint the poses do not have.
    """
    aliases = load_role_aliases(skeleton) if skeleton is not None else {}
    explicit = {normalise_name(k): v for k, v in (mapping or {}).items()}
    by_norm = {normalise_name(k): k for k in keypoints}
    missing_named = [k for k in explicit if k not in by_norm]
    if missing_named:
        raise RoleError(
            f"{source}: --roles names keypoint(s) {missing_named} the poses do not have, "
            f"expected from {list(keypoints)}"
        )
    found: dict[str, str] = {}
    for norm, role in explicit.items():
        found.setdefault(role, by_norm[norm])
    for k in keypoints:
        norm = normalise_name(k)
        if norm in explicit:
            continue
        role = aliases.get(norm)
        if role is not None:
            found.setdefault(role, k)
    lacking = [r for r in required if r not in found]
    if lacking:
        raise RoleError(
            f"{source}: expected keypoint role(s) {lacking} (map yours with --roles name=role), got keypoints "
            f"{list(keypoints)}"
        )
    return {r: found[r] for r in KNOWN_ROLES if r in found}
