"""bound_memory(): Arrow on the system allocator unless the environment chose a pool; glibc's arenas capped."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gateway.process_memory import limit_malloc_arenas

SNIPPET = (
    "import sys\n"
    "from gateway.process_memory import bound_memory\n"
    "if sys.argv[1] == 'late':\n"
    "    import pyarrow\n"
    "bound_memory()\n"
    "import pyarrow as pa\n"
    "print(pa.default_memory_pool().backend_name)\n"
)


def pool_after(when: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("ARROW_DEFAULT_MEMORY_POOL", "MALLOC_ARENA_MAX")}
    out = subprocess.run([sys.executable, "-c", SNIPPET, when], capture_output=True, text=True, check=True, env={**clean, **env})
    return out.stdout.strip()


@pytest.mark.parametrize("when", ["early", "late"])  # before pyarrow is imported, and after
def test_arrow_allocates_from_the_system_pool(when: str) -> None:
    assert pool_after(when) == "system"


def test_a_pool_chosen_in_the_environment_is_kept() -> None:
    assert pool_after("early", ARROW_DEFAULT_MEMORY_POOL="jemalloc") == "jemalloc"


def test_an_arena_limit_from_the_environment_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
