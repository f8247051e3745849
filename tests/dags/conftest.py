import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
# The dag-processor puts the DAG bundle's folder on sys.path (BundleDagBag): the DAGs import their
# shared module, dags/lakecart_common.py, by its name. A plain DagBag does not, so the tests do.
if str(DAGS) not in sys.path:
    sys.path.append(str(DAGS))


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory):
    """A throwaway Airflow home on SQLite, migrated once per session."""
    home = tmp_path_factory.mktemp("airflow-home")
    os.environ.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return home
