"""bench/llama_builds.py: each build runs in its own process with its
folder first on the import path, and reports its speed and CPU features."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests_support import bench_module, tiny_or_skip


def builds_module():
    return bench_module("llama_builds")


@pytest.mark.slow
def test_a_build_folder_is_the_one_measured(tmp_path):
    tiny = tiny_or_skip()
    import llama_cpp

    bench = builds_module()
    installed = bench.run_build("", tiny, [32, 64])
    assert Path(installed["module"]) == Path(llama_cpp.__file__)
    assert set(installed["rates"]) == {"32", "64"} and min(installed["rates"].values()) > 0
    assert "AVX" in installed["system"] or "NEON" in installed["system"]
    # a folder that holds no llama_cpp leaves the installed build in place;
    # one that shadows it is the one imported
    shadow = tmp_path / "llama_cpp"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('the shadow build')\n")
    with pytest.raises(Exception, match="shadow build"):
        bench.run_build(str(tmp_path), tiny, [32])
