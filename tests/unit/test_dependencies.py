"""Installs are reproducible: constraints.txt pins every dependency, inside the ranges pyproject.toml allows."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = ("dev", "llamacpp")  # what `make test-all` installs


def direct_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + [r for extra in EXTRAS for r in project["optional-dependencies"][extra]]
    return [Requirement(r) for r in listed]


def pins() -> dict[str, Version]:
    """constraints.txt as name -> version; every line that is not a comment must be `name==version`."""
    found: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version, line
        assert not req.url and not req.marker and not req.extras, line
        name = canonicalize_name(req.name)
        assert name not in found, f"{req.name} is pinned twice"
        found[name] = Version(specs[0].version)
    return found


def test_every_direct_dependency_is_pinned_inside_its_range() -> None:
    pinned = pins()
    for req in direct_requirements():
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not pinned in constraints.txt (run `make lock`)"
        assert req.specifier.contains(pinned[name], prereleases=True), f"{req.name}=={pinned[name]} is not {req}"


def test_chainlit_floor_has_the_fixes_we_rely_on() -> None:
    (chainlit,) = [r for r in direct_requirements() if canonicalize_name(r.name) == "chainlit"]
    floors = [Version(s.version) for s in chainlit.specifier if s.operator in (">=", "==", "~=")]
    assert floors and max(floors) >= Version("2.12.0"), str(chainlit)
    assert not chainlit.specifier.contains("2.11.99")


def test_torch_is_the_cpu_build_and_no_cuda_wheels_are_pinned() -> None:
    pinned = pins()
    assert pinned["torch"] == Version("2.13.0")  # the spelling that picks the CPU build on this machine's disk
    assert [n for n in pinned if n.startswith(("nvidia-", "cuda-", "triton"))] == []


def test_the_makefile_installs_through_the_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if re.search(r"pip install .*(torch==|\"\.\[|-e )", line)]
    real = [line for line in installs if "--dry-run" not in line]  # `make lock` resolves afresh, on purpose
    assert real and all("-c constraints.txt" in line for line in real), real
    stamps = [line for line in makefile.splitlines() if re.match(r"\$\((STAMP|LLAMA_STAMP)\):", line)]
    assert len(stamps) == 2 and all("constraints.txt" in line for line in stamps), stamps
