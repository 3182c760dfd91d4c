"""`inbox`'s start-up: building the command tree (every `inbox` call, `--help` included) loads only the
standard library and the project's own packages; pandas, Feast, MLflow, torch ... wait for a handler."""
import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
before = set(sys.modules)
from inbox.cli import COMMAND_MODULES, main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
own = {name.split(".")[0] for name in COMMAND_MODULES}
loaded = {name.split(".")[0] for name in set(sys.modules) - before}
print(json.dumps(sorted(loaded - own - set(sys.stdlib_module_names))))
"""


@pytest.mark.parametrize("argv", [["--help"], ["score", "lead_scoring", "--help"], ["train", "--help"],
                                  ["bandit", "learn", "--help"], ["ab", "design", "--help"]])
def test_command_tree_loads_no_third_party_package(argv):
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [], f"inbox {' '.join(argv)} imported these at start-up"


def test_batch_scoring_modules_import_no_heavy_library():
    """`inbox score`'s modules import Feast (the registry), MLflow and the model libraries inside the functions
    that use them, so importing them (as the CLI handler does before any argument is checked) stays cheap."""
    probe = ("import sys\n"
             "import models.scoring, models.contact_batches, models.datasets, models.score_file, models.cli\n"
             "heavy = ('feast', 'mlflow', 'torch', 'bentoml', 'lightgbm', 'sklearn', 'dask', 'typeguard')\n"
             "print(sorted(name for name in heavy if name in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
