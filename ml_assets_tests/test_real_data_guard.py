"""The conftest's guard: a test that reads the real extracts without `real_data` fails collection."""

import pytest

# A project of its own for pytester, with this suite's fixture and hook (imported, not copied).
CONFTEST = "from ml_assets_tests.conftest import pytest_make_collect_report, real_data_dir\n"
INI = "[pytest]\nmarkers =\n    real_data: reads the real extracts\n"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    return pytester


@pytest.mark.parametrize(
    "test_source",
    [
        "def test_reads(real_data_dir):\n    assert real_data_dir\n",
        # Through a fixture of its own that needs the extracts.
        "import pytest\n\n@pytest.fixture\ndef export(real_data_dir):\n    return real_data_dir\n\n"
        "def test_reads(export):\n    assert export\n",
        # The constant, named in a nested function.
        "from ml_assets_tests.conftest import REAL_DATA_DIR\n\n"
        "def test_reads():\n    def path():\n        return REAL_DATA_DIR\n    assert path()\n",
    ],
    ids=["fixture", "fixture-of-a-fixture", "constant"],
)
def test_an_unmarked_test_that_reads_the_extracts_fails_collection_saying_what_to_add(
    project: pytest.Pytester, test_source: str
) -> None:
    project.makepyfile(test_unmarked=test_source)
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting test_unmarked.py*",
            "*without the real_data marker: add `@pytest.mark.real_data` to each*",
            "test_unmarked.py::test_reads",
        ]
    )


@pytest.mark.parametrize(
    "test_source",
    [
        "import pytest\n\n@pytest.mark.real_data\ndef test_reads(real_data_dir):\n    pass\n",
        "import pytest\n\npytestmark = pytest.mark.real_data\n\n"
        "def test_reads(real_data_dir):\n    pass\n",
        "import pytest\n\n@pytest.mark.real_data\nclass TestReads:\n"
        "    def test_reads(self, real_data_dir):\n        pass\n",
    ],
    ids=["function", "module", "class"],
)
def test_a_marked_test_is_collected_and_selected_by_its_marker(
    project: pytest.Pytester, test_source: str
) -> None:
    project.makepyfile(test_marked=test_source, test_other="def test_other():\n    pass\n")
    project.runpytest("-m", "not real_data").assert_outcomes(passed=1, deselected=1)
    selected = project.runpytest("-m", "real_data", "--collect-only", "-q")
    selected.stdout.fnmatch_lines(["test_marked.py::*test_reads", "1/2 tests collected*"])
